#include "host/client/wafer_client.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <vector>

#include "host/client/internal/backoff.h"
#include "host/client/internal/stream_tracker.h"
#include "host/wire/admin_codec.h"
#include "host/wire/job_codec.h"

namespace wafer::host {
namespace {

// How many finished submissions' tags and streams' job ids a client remembers, to drop their
// late messages (a reply to an earlier attempt, a chunk replayed twice).
constexpr size_t kRetiredLimit = 256;

// Fills `out` from the kernel's CSPRNG. UNAVAILABLE when it has none to give.
HostStatus RandomBytes(void* out, size_t size) {
  auto* bytes = static_cast<unsigned char*>(out);
  while (size > 0) {
    const ssize_t got = getrandom(bytes, size, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Error{StatusCode::kUnavailable, "getrandom failed"};
    }
    bytes += got;
    size -= static_cast<size_t>(got);
  }
  return HostOk();
}

// A fresh idempotency key: 128 random bits, as 32 hex digits after "auto-".
// UNAVAILABLE when the kernel gives no random bytes.
HostResult<std::string> NewIdempotencyKey() {
  unsigned char bits[16];
  if (!RandomBytes(bits, sizeof(bits)).ok()) {
    return Error{StatusCode::kUnavailable,
                 "no random bytes for an idempotency key (getrandom failed)"};
  }
  std::string key = "auto-";
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char b : bits) {
    key += kHex[b >> 4];
    key += kHex[b & 0xf];
  }
  return key;
}

// SplitMix64: one seed per resilient call from the client's jitter state.
uint64_t NextSeed(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::string InstanceName(uint64_t instance) {
  char text[32];
  std::snprintf(text, sizeof(text), "%016" PRIx64, instance);
  return text;
}

int64_t RealNowMs() { return SystemClock::Get().NowNanos() / 1'000'000; }

bool IsRetired(const std::deque<uint64_t>& retired, uint64_t id) {
  return std::find(retired.begin(), retired.end(), id) != retired.end();
}

// Connects a DEALER (linger 0, so closing never hangs on unsent messages). INVALID_ARGUMENT for
// a malformed endpoint or keys, UNAVAILABLE for any other failure; the message is the socket's.
HostResult<std::unique_ptr<net::Socket>> ConnectDealer(zmq::context_t& context,
                                                       const std::string& endpoint,
                                                       const ClientKeys& keys) {
  net::SocketOptions options;
  options.curve_server_key = keys.server_public_key;
  options.curve_public_key = keys.public_key;
  options.curve_secret_key = keys.secret_key;
  auto socket = net::Socket::Connect(context, net::SocketType::kDealer, endpoint, options);
  if (!socket.ok() && socket.code() != StatusCode::kInvalidArgument) {
    return Error{StatusCode::kUnavailable, std::move(socket).error().message};
  }
  return socket;
}

// UNAVAILABLE when the socket does not take the message.
HostStatus SendBytes(net::Socket& socket, const std::string& bytes) {
  switch (socket.Send(net::AsBytes(bytes))) {
    case net::SendOutcome::kSent:
      return HostOk();
    case net::SendOutcome::kPeerBacklog:
      return Error{StatusCode::kUnavailable, "send queue full (is waferd running?)"};
    case net::SendOutcome::kPeerGone:
    case net::SendOutcome::kError:
      break;
  }
  return Error{StatusCode::kUnavailable, "send failed"};
}

// Receives one single-frame message within `timeout_ms`: DEADLINE_EXCEEDED when none came,
// UNAVAILABLE when the socket failed, DATA_LOSS for a message of several frames.
HostResult<net::Message> ReceiveFrame(net::Socket& socket, int timeout_ms) {
  Result<net::Message> message = socket.Receive(timeout_ms);
  if (message.status().code() == StatusCode::kDeadlineExceeded) {
    // The usual causes, named: nothing listens there, or a CURVE daemon refused this client's
    // keys in the handshake (which gives the client no error of its own).
    char waited[32];
    std::snprintf(waited, sizeof(waited), "%.1f s", timeout_ms / 1000.0);
    return Error{StatusCode::kDeadlineExceeded,
                 "no waferd answering at " + socket.last_endpoint() +
                     ": nothing answered within " + waited +
                     " (is waferd running there? a CURVE daemon answers only listed client keys)"};
  }
  if (!message.ok()) {
    return Error{StatusCode::kUnavailable,
                 std::string("receive failed: ") + message.status().name()};
  }
  if (message->frame_count() != 1) {
    return Error{StatusCode::kDataLoss,
                 "message of " + std::to_string(message->frame_count()) + " frames from waferd"};
  }
  return std::move(message).value();
}

// The daemon's refusal of an admin request: FAILED_PRECONDITION, "CODE: detail".
Error Refusal(ErrorCode code, const std::string& detail) {
  return Error{StatusCode::kFailedPrecondition, std::string(ErrorCodeName(code)) + ": " + detail};
}

}  // namespace

// ---- JobClient ----

JobClient::JobClient(std::unique_ptr<zmq::context_t> context, std::string endpoint,
                     ClientKeys keys)
    : context_(std::move(context)), endpoint_(std::move(endpoint)), keys_(std::move(keys)) {}

JobClient::~JobClient() {
  socket_.reset();
  context_->close();
}

HostResult<std::unique_ptr<JobClient>> JobClient::Connect(const std::string& endpoint,
                                                          const ClientKeys& keys) {
  return Connect(endpoint, keys, RetryOptions{});
}

HostResult<std::unique_ptr<JobClient>> JobClient::Connect(const std::string& endpoint,
                                                          const ClientKeys& keys,
                                                          RetryOptions retry) {
  std::unique_ptr<JobClient> c(
      new JobClient(std::make_unique<zmq::context_t>(1), endpoint, keys));
  WAFER_HOST_RETURN_IF_ERROR(c->set_retry_options(std::move(retry)));
  WAFER_HOST_ASSIGN_OR_RETURN(c->socket_, ConnectDealer(*c->context_, endpoint, keys));
  return c;
}

HostStatus JobClient::set_retry_options(RetryOptions retry) {
  if (retry.attempt_timeout_ms <= 0 || retry.total_budget_ms < 0 ||
      retry.initial_backoff_ms < 0 || retry.max_backoff_ms < retry.initial_backoff_ms) {
    return Error{StatusCode::kInvalidArgument,
                 "retry options need attempt_timeout_ms > 0, total_budget_ms >= 0 and "
                 "0 <= initial_backoff_ms <= max_backoff_ms"};
  }
  jitter_state_ = retry.jitter_seed;
  if (jitter_state_ == 0 && !RandomBytes(&jitter_state_, sizeof(jitter_state_)).ok()) {
    jitter_state_ = static_cast<uint64_t>(SystemClock::Get().NowNanos());
  }
  retry_ = std::move(retry);
  return HostOk();
}

HostStatus JobClient::Send(const JobMessage& message) {
  return SendBytes(*socket_, EncodeJob(message));
}

HostStatus JobClient::ReceiveFresh(JobMessage* out, int timeout_ms) {
  const int64_t end_ms = RealNowMs() + timeout_ms;
  int wait_ms = timeout_ms;
  while (true) {
    WAFER_HOST_ASSIGN_OR_RETURN(net::Message frame, ReceiveFrame(*socket_, wait_ms));
    HostResult<JobMessage> decoded = DecodeJob(frame.frame(0));
    if (!decoded.ok()) {
      return Error{StatusCode::kDataLoss,
                   "undecodable message from waferd: " + decoded.error().message};
    }
    *out = std::move(decoded).value();
    uint64_t tag = 0, job = 0;
    if (auto* a = std::get_if<JobAccepted>(out)) tag = a->request_tag;
    if (auto* r = std::get_if<JobRejected>(out)) tag = r->request_tag;
    if (auto* e = std::get_if<ErrorReply>(out)) tag = e->request_tag;
    if (auto* q = std::get_if<CapacityReply>(out)) tag = q->request_tag;
    if (auto* c = std::get_if<TokenChunk>(out)) job = c->job_id;
    if (auto* f = std::get_if<JobFinished>(out)) job = f->job_id;
    const bool stale = (tag != 0 && IsRetired(retired_tags_, tag)) ||
                       (job != 0 && IsRetired(retired_jobs_, job));
    if (!stale) return HostOk();
    wait_ms = static_cast<int>(std::max<int64_t>(0, end_ms - RealNowMs()));
  }
}

HostStatus JobClient::Receive(JobMessage* out, int timeout_ms) {
  if (!buffered_.empty()) {
    *out = std::move(buffered_.front());
    buffered_.pop_front();
    return HostOk();
  }
  return ReceiveFresh(out, timeout_ms);
}

HostStatus JobClient::WaitFor(const Match& match, JobMessage* out, int timeout_ms) {
  for (auto it = buffered_.begin(); it != buffered_.end(); ++it) {
    if (match(*it)) {
      *out = std::move(*it);
      buffered_.erase(it);
      return HostOk();
    }
  }
  while (true) {
    JobMessage message;
    WAFER_HOST_RETURN_IF_ERROR(ReceiveFresh(&message, timeout_ms));
    if (match(message)) {
      *out = std::move(message);
      return HostOk();
    }
    buffered_.push_back(std::move(message));
  }
}

HostStatus JobClient::WaitWithin(const Match& match, JobMessage* out, int wait_ms) {
  for (auto it = buffered_.begin(); it != buffered_.end(); ++it) {
    if (match(*it)) {
      *out = std::move(*it);
      buffered_.erase(it);
      return HostOk();
    }
  }
  const int64_t end_ms = RealNowMs() + std::max(0, wait_ms);
  while (true) {
    const int left_ms = static_cast<int>(std::max<int64_t>(0, end_ms - RealNowMs()));
    JobMessage message;
    WAFER_HOST_RETURN_IF_ERROR(ReceiveFresh(&message, left_ms));
    if (match(message)) {
      *out = std::move(message);
      return HostOk();
    }
    buffered_.push_back(std::move(message));
  }
}

HostStatus JobClient::Reconnect() {
  HostResult<std::unique_ptr<net::Socket>> fresh = ConnectDealer(*context_, endpoint_, keys_);
  if (!fresh.ok()) return std::move(fresh).error().WithContext("cannot reconnect to " + endpoint_);
  // Keep what the old connection already delivered; it may answer what we wait for.
  while (true) {
    Result<net::Message> frame = socket_->Receive(0);
    if (!frame.ok()) break;
    if (frame->frame_count() != 1) continue;
    HostResult<JobMessage> message = DecodeJob(frame->frame(0));
    if (message.ok()) buffered_.push_back(std::move(message).value());
  }
  socket_ = std::move(fresh).value();
  return HostOk();
}

void JobClient::RetireTag(uint64_t tag) {
  if (IsRetired(retired_tags_, tag)) return;
  retired_tags_.push_back(tag);
  if (retired_tags_.size() > kRetiredLimit) retired_tags_.pop_front();
  std::erase_if(buffered_, [tag](const JobMessage& m) {
    if (auto* a = std::get_if<JobAccepted>(&m)) return a->request_tag == tag;
    if (auto* r = std::get_if<JobRejected>(&m)) return r->request_tag == tag;
    if (auto* e = std::get_if<ErrorReply>(&m)) return e->request_tag == tag;
    if (auto* q = std::get_if<CapacityReply>(&m)) return q->request_tag == tag;
    return false;
  });
}

void JobClient::RetireJob(uint64_t job_id) {
  if (IsRetired(retired_jobs_, job_id)) return;
  retired_jobs_.push_back(job_id);
  if (retired_jobs_.size() > kRetiredLimit) retired_jobs_.pop_front();
  std::erase_if(buffered_, [job_id](const JobMessage& m) {
    if (auto* c = std::get_if<TokenChunk>(&m)) return c->job_id == job_id;
    if (auto* f = std::get_if<JobFinished>(&m)) return f->job_id == job_id;
    return false;
  });
}

HostStatus JobClient::Pause(int wait_ms) {
  JobMessage unused;
  HostStatus s = WaitWithin([](const JobMessage&) { return false; }, &unused, wait_ms);
  if (s.code() == StatusCode::kDeadlineExceeded) return HostOk();
  return s;
}

int64_t JobClient::BudgetNowMs() const {
  const Clock& clock = retry_.clock != nullptr ? *retry_.clock : SystemClock::Get();
  return clock.NowNanos() / 1'000'000;
}

void JobClient::NotifyRetry(const RetryEvent& event) const {
  if (retry_.on_retry) retry_.on_retry(event);
}

HostStatus JobClient::Submit(const SubmitJob& job, SubmitOutcome* outcome, int timeout_ms) {
  SubmitJob tagged = job;
  tagged.request_tag = next_tag_++;
  WAFER_HOST_RETURN_IF_ERROR(Send(tagged));
  const uint64_t tag = tagged.request_tag;
  JobMessage reply;
  WAFER_HOST_RETURN_IF_ERROR(WaitFor(
      [tag](const JobMessage& m) {
        if (auto* a = std::get_if<JobAccepted>(&m)) return a->request_tag == tag;
        if (auto* r = std::get_if<JobRejected>(&m)) return r->request_tag == tag;
        if (auto* e = std::get_if<ErrorReply>(&m)) return e->request_tag == tag || e->request_tag == 0;
        return false;
      },
      &reply, timeout_ms));
  *outcome = SubmitOutcome{};
  if (auto* a = std::get_if<JobAccepted>(&reply)) {
    outcome->accepted = true;
    outcome->accepted_reply = *a;
  } else if (auto* r = std::get_if<JobRejected>(&reply)) {
    outcome->rejection = *r;
  } else {
    const ErrorReply& e = std::get<ErrorReply>(reply);
    outcome->rejection = JobRejected{tag, e.code, e.detail, 0};
  }
  return HostOk();
}

HostStatus JobClient::Run(const SubmitJob& job,
                          const std::function<void(const TokenChunk&)>& on_chunk,
                          SubmitOutcome* outcome, JobFinished* finished, int timeout_ms) {
  WAFER_HOST_RETURN_IF_ERROR(Submit(job, outcome, timeout_ms));
  if (!outcome->accepted) return HostOk();
  const uint64_t id = outcome->accepted_reply.job_id;
  while (true) {
    JobMessage m;
    WAFER_HOST_RETURN_IF_ERROR(WaitFor(
        [id](const JobMessage& x) {
          if (auto* c = std::get_if<TokenChunk>(&x)) return c->job_id == id;
          if (auto* f = std::get_if<JobFinished>(&x)) return f->job_id == id;
          return false;
        },
        &m, timeout_ms));
    if (auto* chunk = std::get_if<TokenChunk>(&m)) {
      on_chunk(*chunk);
    } else {
      *finished = std::get<JobFinished>(m);
      return HostOk();
    }
  }
}

HostStatus JobClient::SubmitWithRetry(const SubmitJob& job, SubmitOutcome* outcome) {
  *outcome = SubmitOutcome{};
  SubmitJob attempt = job;
  if (attempt.idempotency_key.empty()) {
    WAFER_HOST_ASSIGN_OR_RETURN(attempt.idempotency_key, NewIdempotencyKey());
  }
  outcome->idempotency_key = attempt.idempotency_key;
  internal::Backoff backoff(retry_.initial_backoff_ms, retry_.max_backoff_ms,
                            NextSeed(&jitter_state_));
  const int64_t give_up_ms = BudgetNowMs() + retry_.total_budget_ms;
  // Every attempt's tag: the answer to any of them is the answer (same key, same job).
  std::vector<uint64_t> tags;
  const Match answers = [&tags](const JobMessage& m) {
    uint64_t tag = 0;
    if (auto* a = std::get_if<JobAccepted>(&m)) tag = a->request_tag;
    if (auto* r = std::get_if<JobRejected>(&m)) tag = r->request_tag;
    if (auto* e = std::get_if<ErrorReply>(&m)) {
      // An untagged ErrorReply refuses the message it answers; UNKNOWN_JOB answers a resume.
      if (e->request_tag == 0) return e->code != ErrorCode::kUnknownJob;
      tag = e->request_tag;
    }
    return tag != 0 && std::find(tags.begin(), tags.end(), tag) != tags.end();
  };
  const auto done = [&](HostStatus status) {
    for (uint64_t tag : tags) RetireTag(tag);
    return status;
  };
  const auto send_attempt = [&](JobMessage* reply) -> HostStatus {
    attempt.request_tag = next_tag_++;
    tags.push_back(attempt.request_tag);
    ++outcome->attempts;
    WAFER_HOST_RETURN_IF_ERROR(Send(attempt));
    return WaitWithin(answers, reply, retry_.attempt_timeout_ms);
  };

  JobMessage reply;
  HostStatus got = send_attempt(&reply);
  uint32_t retries = 0;
  while (true) {
    RetryEvent event;
    int at_least_ms = 0;
    bool answered = false;
    if (got.ok()) {
      if (auto* a = std::get_if<JobAccepted>(&reply)) {
        outcome->accepted = true;
        outcome->accepted_reply = *a;
        outcome->rejection = JobRejected{};
        return done(HostOk());
      }
      if (auto* e = std::get_if<ErrorReply>(&reply)) {
        outcome->rejection = JobRejected{e->request_tag, e->code, e->detail, 0};
        return done(HostOk());
      }
      const JobRejected& r = std::get<JobRejected>(reply);
      outcome->rejection = r;
      // A key that names another request must not be retried: it would never succeed.
      if (r.retry_after_ms == 0 || r.code == ErrorCode::kIdempotencyConflict) {
        return done(HostOk());
      }
      answered = true;
      at_least_ms = static_cast<int>(std::min<uint32_t>(r.retry_after_ms, INT32_MAX));
      event.reason = std::string(ErrorCodeName(r.code)) + ": " + r.detail + " (retry after " +
                     std::to_string(r.retry_after_ms) + " ms)";
    } else if (got.code() == StatusCode::kDeadlineExceeded ||
               got.code() == StatusCode::kUnavailable) {
      // No answer, or the socket would not take the message: a new connection for the next
      // attempt (a restarted daemon knows this client only by a new one).
      event.reconnect = true;
      event.reason = got.code() == StatusCode::kDeadlineExceeded
                         ? "no reply within " + std::to_string(retry_.attempt_timeout_ms) +
                               " ms from " + endpoint_
                         : got.error().message;
    } else {
      return done(got);  // DATA_LOSS: not something a retry mends.
    }
    const int delay_ms = std::max(at_least_ms, backoff.NextMs());
    if (BudgetNowMs() + delay_ms > give_up_ms) {
      if (answered) return done(HostOk());  // The last rejection stands.
      return done(Error{
          StatusCode::kDeadlineExceeded,
          "no answer from " + endpoint_ + " to " + std::to_string(outcome->attempts) +
              " attempts to submit (idempotency key " + attempt.idempotency_key +
              ") within the retry budget of " + std::to_string(retry_.total_budget_ms) +
              " ms (is waferd running there? a CURVE daemon answers only listed client keys)"});
    }
    if (event.reconnect) {
      if (HostStatus s = Reconnect(); !s.ok()) return done(s);
    }
    event.kind = RetryEvent::Kind::kResubmit;
    event.retry = ++retries;
    event.delay_ms = delay_ms;
    NotifyRetry(event);
    // A late answer to an earlier attempt may come during the wait; it is as good as any.
    got = WaitWithin(answers, &reply, delay_ms);
    if (got.code() == StatusCode::kDeadlineExceeded) got = send_attempt(&reply);
  }
}

HostStatus JobClient::RunWithRetry(const SubmitJob& job,
                                   const std::function<void(const TokenChunk&)>& on_chunk,
                                   SubmitOutcome* outcome, JobFinished* finished) {
  WAFER_HOST_RETURN_IF_ERROR(SubmitWithRetry(job, outcome));
  if (!outcome->accepted) return HostOk();
  const uint64_t id = outcome->accepted_reply.job_id;
  internal::StreamTracker stream(id, outcome->accepted_reply.instance_id);
  internal::Backoff backoff(retry_.initial_backoff_ms, retry_.max_backoff_ms,
                            NextSeed(&jitter_state_));
  // An untagged UNKNOWN_JOB still buffered answered an earlier stream's resume, not this one's.
  std::erase_if(buffered_, [](const JobMessage& m) {
    auto* e = std::get_if<ErrorReply>(&m);
    return e != nullptr && e->request_tag == 0 && e->code == ErrorCode::kUnknownJob;
  });
  bool resumed = false;     // A ResumeStream is out: an UNKNOWN_JOB may answer it.
  bool recovering = false;  // A resume for the current gap is out: further gaps wait for it.
  uint32_t retries = 0;     // Since the last progress.
  std::vector<uint64_t> probes;  // Tags of the CapacityQuery sent after each resume.
  int64_t give_up_ms = BudgetNowMs() + retry_.total_budget_ms;
  int64_t stall_at_ms = RealNowMs() + retry_.attempt_timeout_ms;
  const Match about_job = [id, &resumed, &probes](const JobMessage& m) {
    if (auto* c = std::get_if<TokenChunk>(&m)) return c->job_id == id;
    if (auto* f = std::get_if<JobFinished>(&m)) return f->job_id == id;
    if (auto* q = std::get_if<CapacityReply>(&m)) {
      return std::find(probes.begin(), probes.end(), q->request_tag) != probes.end();
    }
    if (auto* e = std::get_if<ErrorReply>(&m)) {
      return resumed && e->request_tag == 0 && e->code == ErrorCode::kUnknownJob;
    }
    return false;
  };
  const auto where = [&]() {
    return "job " + std::to_string(id) + " (job store instance " +
           InstanceName(stream.instance_id()) + ", " + std::to_string(stream.next_seq()) +
           " chunks delivered) at " + endpoint_;
  };
  const auto done = [&](HostStatus status) {
    RetireJob(id);
    for (uint64_t tag : probes) RetireTag(tag);
    return status;
  };
  // Asks for the chunks from next_seq() on, then probes with a CapacityQuery: the daemon answers
  // in order, so its CapacityReply without an UNKNOWN_JOB before it says that it holds the job
  // (perhaps queued, with nothing to stream yet). A send that fails is a silence like any other:
  // the stall timer retries it.
  const auto resume = [&]() {
    resumed = true;
    recovering = true;
    (void)Send(ResumeStream{id, stream.next_seq(), stream.instance_id()});
    probes.push_back(next_tag_++);
    (void)Send(CapacityQuery{probes.back()});
  };
  // A duplicate acceptance: an earlier attempt's job may have streamed to an earlier connection.
  if (outcome->accepted_reply.duplicate) resume();

  while (true) {
    JobMessage m;
    const int until_stall_ms = static_cast<int>(std::max<int64_t>(0, stall_at_ms - RealNowMs()));
    const HostStatus got = WaitWithin(about_job, &m, until_stall_ms);
    if (got.code() == StatusCode::kDeadlineExceeded) {
      // No progress for attempt_timeout_ms: the daemon died, restarted or dropped this
      // connection, or the job is waiting in the queue (the probe tells which).
      const int delay_ms = backoff.NextMs();
      if (BudgetNowMs() + delay_ms > give_up_ms) {
        return done(Error{StatusCode::kDeadlineExceeded,
                          "no sign of " + where() + " within the retry budget of " +
                              std::to_string(retry_.total_budget_ms) + " ms (" +
                              std::to_string(retries) + " resumes)"});
      }
      if (HostStatus s = Reconnect(); !s.ok()) return done(s);
      RetryEvent event;
      event.kind = RetryEvent::Kind::kResume;
      event.job_id = id;
      event.from_seq = stream.next_seq();
      event.reconnect = true;
      event.retry = ++retries;
      event.delay_ms = delay_ms;
      event.reason = "no progress for " + std::to_string(retry_.attempt_timeout_ms) + " ms";
      NotifyRetry(event);
      if (HostStatus s = Pause(delay_ms); !s.ok()) return done(s);
      resume();
      stall_at_ms = RealNowMs() + retry_.attempt_timeout_ms;
      continue;
    }
    if (!got.ok()) return done(got);
    if (auto* e = std::get_if<ErrorReply>(&m)) {
      return done(Error{StatusCode::kNotFound,
                        "waferd no longer knows " + where() +
                            ": it lost the job (UNKNOWN_JOB in answer to a resume: " + e->detail +
                            ")"});
    }
    if (std::holds_alternative<CapacityReply>(m)) {
      // The daemon is up and holds the job: the budget starts again. The stall timer does not:
      // a job waiting in the queue is probed again after the next attempt_timeout_ms.
      give_up_ms = BudgetNowMs() + retry_.total_budget_ms;
      backoff.Reset();
      continue;
    }
    switch (stream.Step(m)) {
      case internal::StreamStep::kDeliver:
        if (on_chunk) on_chunk(std::get<TokenChunk>(m));
        give_up_ms = BudgetNowMs() + retry_.total_budget_ms;
        stall_at_ms = RealNowMs() + retry_.attempt_timeout_ms;
        backoff.Reset();
        retries = 0;
        recovering = false;
        break;
      case internal::StreamStep::kDuplicate:
        break;
      case internal::StreamStep::kGap:
        if (!recovering) {
          RetryEvent event;
          event.kind = RetryEvent::Kind::kResume;
          event.job_id = id;
          event.from_seq = stream.next_seq();
          event.retry = ++retries;
          if (auto* c = std::get_if<TokenChunk>(&m)) {
            event.reason = "chunk " + std::to_string(c->seq) + " came while " +
                           std::to_string(stream.next_seq()) + " was due";
          } else {
            event.reason = "JobFinished counts " +
                           std::to_string(std::get<JobFinished>(m).chunks) + " chunks, " +
                           std::to_string(stream.next_seq()) + " came";
          }
          NotifyRetry(event);
          resume();
        }
        break;
      case internal::StreamStep::kFinished:
        *finished = std::get<JobFinished>(m);
        return done(HostOk());
      case internal::StreamStep::kInstanceChanged:
        return done(Error{StatusCode::kNotFound,
                          "a reply for " + where() + " came from job store instance " +
                              InstanceName(stream.foreign_instance()) +
                              ": the daemon lost the job and the id now names another; nothing "
                              "of it was delivered"});
    }
  }
}

HostStatus JobClient::Cancel(uint64_t job_id, CancelResult* result, int timeout_ms) {
  WAFER_HOST_RETURN_IF_ERROR(Send(CancelJob{job_id}));
  JobMessage m;
  WAFER_HOST_RETURN_IF_ERROR(WaitFor(
      [job_id](const JobMessage& x) {
        auto* r = std::get_if<CancelResult>(&x);
        return r != nullptr && r->job_id == job_id;
      },
      &m, timeout_ms));
  *result = std::get<CancelResult>(m);
  return HostOk();
}

HostStatus JobClient::QueryCapacity(CapacityReply* reply, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  WAFER_HOST_RETURN_IF_ERROR(Send(CapacityQuery{tag}));
  JobMessage m;
  WAFER_HOST_RETURN_IF_ERROR(WaitFor(
      [tag](const JobMessage& x) {
        auto* r = std::get_if<CapacityReply>(&x);
        return r != nullptr && r->request_tag == tag;
      },
      &m, timeout_ms));
  *reply = std::get<CapacityReply>(m);
  return HostOk();
}

HostStatus JobClient::QueryJob(uint64_t job_id, JobStatusReply* reply, int timeout_ms) {
  WAFER_HOST_RETURN_IF_ERROR(Send(JobStatusQuery{job_id}));
  JobMessage m;
  WAFER_HOST_RETURN_IF_ERROR(WaitFor(
      [job_id](const JobMessage& x) {
        auto* r = std::get_if<JobStatusReply>(&x);
        return r != nullptr && r->job_id == job_id;
      },
      &m, timeout_ms));
  *reply = std::get<JobStatusReply>(m);
  return HostOk();
}

// ---- AdminClient ----

AdminClient::AdminClient(std::unique_ptr<zmq::context_t> context)
    : context_(std::move(context)) {}

AdminClient::~AdminClient() {
  socket_.reset();
  context_->close();
}

HostResult<std::unique_ptr<AdminClient>> AdminClient::Connect(const std::string& endpoint,
                                                              const ClientKeys& keys) {
  std::unique_ptr<AdminClient> c(new AdminClient(std::make_unique<zmq::context_t>(1)));
  WAFER_HOST_ASSIGN_OR_RETURN(c->socket_, ConnectDealer(*c->context_, endpoint, keys));
  return c;
}

HostStatus AdminClient::Receive(AdminMessage* out, int timeout_ms) {
  WAFER_HOST_ASSIGN_OR_RETURN(net::Message frame, ReceiveFrame(*socket_, timeout_ms));
  HostResult<AdminMessage> decoded = DecodeAdmin(frame.frame(0));
  if (!decoded.ok()) {
    return Error{StatusCode::kDataLoss,
                 "undecodable message from waferd: " + decoded.error().message};
  }
  *out = std::move(decoded).value();
  return HostOk();
}

HostStatus AdminClient::QueryStatus(StatusReply* reply, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(StatusQuery{tag}, tag, reply, timeout_ms);
}

template <typename Reply, typename Progress>
HostStatus AdminClient::Ask(const AdminMessage& request, uint64_t tag, Reply* reply,
                            int timeout_ms,
                            const std::function<void(const Progress&)>& on_progress) {
  WAFER_HOST_RETURN_IF_ERROR(SendBytes(*socket_, EncodeAdmin(request)));
  while (true) {
    AdminMessage m;
    WAFER_HOST_RETURN_IF_ERROR(Receive(&m, timeout_ms));
    if constexpr (!std::is_same_v<Progress, std::monostate>) {
      if (auto* p = std::get_if<Progress>(&m); p != nullptr && p->request_tag == tag) {
        if (on_progress) on_progress(*p);
        continue;
      }
    }
    if (auto* r = std::get_if<Reply>(&m); r != nullptr && r->request_tag == tag) {
      *reply = std::move(*r);
      return HostOk();
    }
    if (auto* r = std::get_if<OperationResult>(&m); r != nullptr && r->request_tag == tag) {
      return Refusal(r->code, r->detail);
    }
    if (auto* e = std::get_if<ErrorReply>(&m)) {
      return Refusal(e->code, e->detail);
    }
  }
}

HostStatus AdminClient::ReadBoardLog(uint32_t board, uint64_t from_sequence,
                                     BoardLogReply* reply, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::ReadBoardLog{tag, board, from_sequence}, tag, reply, timeout_ms);
}

HostStatus AdminClient::ShowBoard(uint32_t board, BoardDetail* detail, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::ShowBoard{tag, board}, tag, detail, timeout_ms);
}

HostStatus AdminClient::ListJobs(host::ListJobs query, JobList* reply, int timeout_ms) {
  query.request_tag = next_tag_++;
  return Ask(query, query.request_tag, reply, timeout_ms);
}

HostStatus AdminClient::QueryHealth(int32_t board, HealthReply* reply, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::HealthQuery{tag, board}, tag, reply, timeout_ms);
}

HostStatus AdminClient::RunDiagnostics(
                                       uint32_t board, uint32_t level,
    const std::function<void(const DiagnosticProgress&)>& on_progress, DiagnosticReport* report,
                                       int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::RunDiagnostics{tag, board, level}, tag, report, timeout_ms, on_progress);
}

HostStatus AdminClient::TailJob(uint64_t job_id, uint32_t from_seq,
                                const std::function<void(const JobTokens&)>& on_tokens,
                                int timeout_ms) {
  const uint64_t tag = next_tag_++;
  WAFER_HOST_RETURN_IF_ERROR(
      SendBytes(*socket_, EncodeAdmin(host::TailJob{tag, job_id, from_seq})));
  while (true) {
    AdminMessage m;
    WAFER_HOST_RETURN_IF_ERROR(Receive(&m, timeout_ms));
    if (auto* t = std::get_if<JobTokens>(&m); t != nullptr && t->request_tag == tag) {
      if (on_tokens) on_tokens(*t);
      if (t->finished) return HostOk();
    } else if (auto* r = std::get_if<OperationResult>(&m); r != nullptr && r->request_tag == tag) {
      return Refusal(r->code, r->detail);
    } else if (auto* e = std::get_if<ErrorReply>(&m)) {
      return Refusal(e->code, e->detail);
    }
  }
}

HostStatus AdminClient::QueryFirmware(uint32_t board, FirmwareInfo* info, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::FirmwareQuery{tag, board}, tag, info, timeout_ms);
}

HostStatus AdminClient::ShowJob(uint64_t job_id, JobDetail* detail, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::ShowJob{tag, job_id}, tag, detail, timeout_ms);
}

HostStatus AdminClient::Operate(AdminMessage request,
                                const std::function<void(const LoadProgress&)>& on_progress,
                                OperationResult* result, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  std::visit(
      [tag](auto& m) {
        if constexpr (requires { m.request_tag; }) m.request_tag = tag;
      },
      request);
  WAFER_HOST_RETURN_IF_ERROR(SendBytes(*socket_, EncodeAdmin(request)));
  while (true) {
    AdminMessage m;
    WAFER_HOST_RETURN_IF_ERROR(Receive(&m, timeout_ms));
    if (auto* p = std::get_if<LoadProgress>(&m); p != nullptr && p->request_tag == tag) {
      if (on_progress) on_progress(*p);
    } else if (auto* r = std::get_if<OperationResult>(&m); r != nullptr && r->request_tag == tag) {
      *result = std::move(*r);
      return HostOk();
    } else if (auto* e = std::get_if<ErrorReply>(&m)) {
      *result = OperationResult{tag, e->code, e->detail, 0};
      return HostOk();
    }
  }
}

}  // namespace wafer::host

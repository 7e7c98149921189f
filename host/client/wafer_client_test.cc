// JobClient's resilient path (SubmitWithRetry, RunWithRetry) against a scripted fake daemon: a
// ZeroMQ ROUTER on tcp://127.0.0.1 (ephemeral port) speaking the real job codec on its own
// thread, which can "restart" by closing its socket and binding a new one on the same port.
// Tests assert what was sent and delivered, in order and in number, never how long it took.
#include "host/client/wafer_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/net/socket.h"
#include "host/wire/job_codec.h"
#include "tests/host_result_assertions.h"

namespace wafer::host {
namespace {

constexpr int kBoundMs = 5000;  // Bounds a wait in a script that should end at once.

// A scripted waferd. The script runs on the daemon's thread for each message received and
// answers through Reply(); Restart() stands for a kill -9 and a restart (every connection is
// dropped; the port stays). What the script keeps across a restart is its "durable store".
class FakeDaemon {
 public:
  using Script = std::function<void(FakeDaemon& daemon, const JobMessage& message)>;

  explicit FakeDaemon(Script script) : script_(std::move(script)) {
    auto bound = net::Socket::Bind(context_, net::SocketType::kRouter, "tcp://127.0.0.1:*", {});
    EXPECT_TRUE(bound.ok()) << bound.error().message;
    socket_ = std::move(bound).value();
    endpoint_ = socket_->last_endpoint();
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeDaemon() { Stop(); }

  const std::string& endpoint() const { return endpoint_; }

  // Joins the daemon's thread; received() is final afterwards.
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // Every message received, in order, and the connection it came on (0, 1, ... in order of
  // first appearance; a restart or a client's reconnect makes a new one).
  std::vector<JobMessage> received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_;
  }
  std::vector<int> connections() {
    std::lock_guard<std::mutex> lock(mutex_);
    return connections_;
  }

  // From the script: the connection the current message came on (numbered as connections()).
  int connection() const { return connection_; }

  // From the script: answers the connection the current message came on.
  void Reply(const JobMessage& message) {
    if (socket_ == nullptr) return;
    const std::string bytes = EncodeJob(message);
    socket_->Send({net::AsBytes(peer_), net::AsBytes(bytes)});
  }

  // From the script: drops every connection and listens again on the same port. libzmq closes
  // the old listener on its I/O thread, so the port may stay taken for a moment.
  void Restart() {
    socket_.reset();
    std::string detail;
    for (int i = 0; i < kBoundMs; ++i) {
      auto bound = net::Socket::Bind(context_, net::SocketType::kRouter, endpoint_, {});
      if (bound.ok()) {
        socket_ = std::move(bound).value();
        ++generation_;
        return;
      }
      detail = bound.error().message;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    FAIL() << detail;
  }

 private:
  void Loop() {
    while (!stop_ && socket_ != nullptr) {
      Result<net::Message> m = socket_->Receive(10);
      if (!m.ok() || m->frame_count() != 2) continue;
      auto id = m->frame(0);
      peer_.assign(reinterpret_cast<const char*>(id.data()), id.size());
      HostResult<JobMessage> decoded = DecodeJob(m->frame(1));
      if (!decoded.ok()) {
        ADD_FAILURE() << "fake daemon got an undecodable message: " << decoded.error().message;
        continue;
      }
      JobMessage& message = *decoded;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        const std::string key = std::to_string(generation_) + "/" + peer_;
        auto [it, added] = peer_numbers_.emplace(key, static_cast<int>(peer_numbers_.size()));
        received_.push_back(message);
        connections_.push_back(it->second);
        connection_ = it->second;
      }
      script_(*this, message);
      if (socket_ == nullptr) return;  // A restart that could not bind again (a failure).
    }
    socket_.reset();
  }

  Script script_;
  zmq::context_t context_{1};
  std::unique_ptr<net::Socket> socket_;  // Used by the daemon's thread only, once it runs.
  std::string endpoint_;
  std::string peer_;
  int connection_ = -1;
  int generation_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<JobMessage> received_;
  std::vector<int> connections_;
  std::map<std::string, int> peer_numbers_;
};

template <typename T>
std::vector<T> All(const std::vector<JobMessage>& messages) {
  std::vector<T> out;
  for (const JobMessage& m : messages) {
    if (auto* t = std::get_if<T>(&m)) out.push_back(*t);
  }
  return out;
}

TokenChunk Chunk(uint64_t job, uint32_t seq, uint64_t instance) {
  return TokenChunk{job, seq, seq * 2, {100 + seq * 2, 101 + seq * 2}, "", instance};
}

JobFinished Finished(uint64_t job, uint32_t chunks, uint64_t instance) {
  JobFinished f;
  f.job_id = job;
  f.completion_tokens = chunks * 2;
  f.chunks = chunks;
  f.instance_id = instance;
  return f;
}

// Waits (in the script, on the daemon's thread) until the client has delivered `n` chunks, so
// that a restart comes after them and not while they are still in a socket buffer.
void AwaitDelivered(const std::atomic<int>& delivered, int n) {
  for (int i = 0; i < kBoundMs && delivered.load() < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GE(delivered.load(), n);
}

CapacityReply Capacity(uint64_t tag) {
  CapacityReply r;
  r.request_tag = tag;
  return r;
}

// The probe RunWithRetry sends after a resume: a live daemon answers it.
void AnswerProbe(FakeDaemon& d, const JobMessage& m) {
  if (auto* q = std::get_if<CapacityQuery>(&m)) d.Reply(Capacity(q->request_tag));
}

class JobClientRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = std::random_device{}() | 1;
    std::printf("jitter seed: %llu\n", static_cast<unsigned long long>(seed_));
    RecordProperty("jitter_seed", std::to_string(seed_));
  }

  // Short waits, so that a test with a restart takes well under a second.
  RetryOptions Fast(int attempt_timeout_ms = 300) {
    RetryOptions o;
    o.attempt_timeout_ms = attempt_timeout_ms;
    o.total_budget_ms = 5000;
    o.initial_backoff_ms = 1;
    o.max_backoff_ms = 20;
    o.jitter_seed = seed_;
    o.on_retry = [this](const RetryEvent& e) { events_.push_back(e); };
    return o;
  }

  std::unique_ptr<JobClient> Client(const FakeDaemon& daemon, RetryOptions options) {
    auto c = JobClient::Connect(daemon.endpoint(), {}, std::move(options));
    EXPECT_TRUE(c.ok());
    return c.ok() ? std::move(c).value() : nullptr;
  }

  static SubmitJob Job() {
    SubmitJob j;
    j.model = "m";
    j.prompt_tokens = {1, 2, 3};
    j.max_tokens = 12;
    return j;
  }

  // Runs `job`, collecting the seqs that on_chunk saw.
  HostStatus Run(JobClient& client, std::vector<uint32_t>* seqs, std::atomic<int>* delivered,
                 SubmitOutcome* outcome, JobFinished* finished) {
    return client.RunWithRetry(
        Job(),
        [&](const TokenChunk& c) {
          seqs->push_back(c.seq);
          ++*delivered;
        },
        outcome, finished);
  }

  uint64_t seed_ = 0;
  std::vector<RetryEvent> events_;
};

// (a) QUEUE_FULL with a retry-after, then accepted: the second SubmitJob carries the key that
// the client generated for the first, and the daemon makes exactly one job.
TEST_F(JobClientRetryTest, QueueFullIsRetriedWithTheSameGeneratedKeyAndMakesOneJob) {
  std::map<std::string, uint64_t> jobs_by_key;  // The daemon's idempotency table.
  int submits = 0;
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    auto* s = std::get_if<SubmitJob>(&m);
    if (s == nullptr) return;
    if (++submits == 1) {
      d.Reply(JobRejected{s->request_tag, ErrorCode::kQueueFull, "queue full", 30});
      return;
    }
    auto [it, added] = jobs_by_key.emplace(s->idempotency_key, 40 + jobs_by_key.size());
    d.Reply(JobAccepted{s->request_tag, it->second, 0, !added, 7});
  });
  auto client = Client(daemon, Fast());
  ASSERT_TRUE(client);
  SubmitOutcome outcome;
  ASSERT_TRUE(IsOk(client->SubmitWithRetry(Job(), &outcome)));
  daemon.Stop();

  EXPECT_TRUE(outcome.accepted);
  EXPECT_EQ(outcome.accepted_reply.job_id, 40u);
  EXPECT_EQ(outcome.accepted_reply.instance_id, 7u);
  EXPECT_EQ(outcome.attempts, 2u);
  const std::vector<SubmitJob> sent = All<SubmitJob>(daemon.received());
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].idempotency_key, sent[1].idempotency_key);
  EXPECT_EQ(sent[0].idempotency_key, outcome.idempotency_key);
  EXPECT_EQ(outcome.idempotency_key.rfind("auto-", 0), 0u);
  EXPECT_EQ(outcome.idempotency_key.size(), 5u + 32u);  // 128 bits in hex.
  EXPECT_NE(sent[0].request_tag, sent[1].request_tag);
  EXPECT_EQ(jobs_by_key.size(), 1u);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].kind, RetryEvent::Kind::kResubmit);
  EXPECT_FALSE(events_[0].reconnect);
  EXPECT_GE(events_[0].delay_ms, 30);  // max(retry_after_ms, backoff).
  EXPECT_NE(events_[0].reason.find("QUEUE_FULL"), std::string::npos) << events_[0].reason;
}

// (a) A caller's own key is kept, and a lost answer is retried on a new connection with it:
// the daemon had made the job, so the retry gets the same job back.
TEST_F(JobClientRetryTest, ALostAnswerIsRetriedOnANewConnectionWithTheCallersKey) {
  std::map<std::string, uint64_t> jobs_by_key;
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    auto* s = std::get_if<SubmitJob>(&m);
    if (s == nullptr) return;
    auto [it, added] = jobs_by_key.emplace(s->idempotency_key, 40 + jobs_by_key.size());
    if (added) return;  // Accepted, but the answer is lost.
    d.Reply(JobAccepted{s->request_tag, it->second, 0, true, 7});
  });
  auto client = Client(daemon, Fast(100));
  ASSERT_TRUE(client);
  SubmitJob job = Job();
  job.idempotency_key = "scheduler-key-1";
  SubmitOutcome outcome;
  const HostStatus submitted = client->SubmitWithRetry(job, &outcome);
  ASSERT_TRUE(IsOk(submitted));
  daemon.Stop();

  EXPECT_TRUE(outcome.accepted);
  EXPECT_TRUE(outcome.accepted_reply.duplicate);
  EXPECT_EQ(outcome.accepted_reply.job_id, 40u);
  EXPECT_EQ(outcome.idempotency_key, "scheduler-key-1");
  const std::vector<SubmitJob> sent = All<SubmitJob>(daemon.received());
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1].idempotency_key, "scheduler-key-1");
  EXPECT_EQ(jobs_by_key.size(), 1u);
  const std::vector<int> connections = daemon.connections();
  EXPECT_NE(connections[0], connections[1]);  // The retry came on a new connection.
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_TRUE(events_[0].reconnect);
  // The first attempt's silence was mended by the retry: it is no error of this call.
  EXPECT_EQ(Describe(submitted), "OK");
}

// (b) The daemon goes away mid-stream and comes back on the same port with the job: the client
// reconnects and resumes from the first chunk it lacks; the caller sees every chunk once.
TEST_F(JobClientRetryTest, ADaemonRestartMidStreamIsResumedFromTheNextSeq) {
  std::atomic<int> delivered{0};
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    AnswerProbe(d, m);
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobAccepted{s->request_tag, 51, 0, false, 7});
      for (uint32_t seq = 0; seq < 3; ++seq) d.Reply(Chunk(51, seq, 7));
      AwaitDelivered(delivered, 3);
      d.Restart();  // kill -9, restart: chunk 3 was never sent.
    } else if (auto* r = std::get_if<ResumeStream>(&m)) {
      // A recovered store replays from the chunk asked for; one before it, too, as an overlap.
      if (r->from_seq > 0) d.Reply(Chunk(51, r->from_seq - 1, 7));
      for (uint32_t seq = r->from_seq; seq < 6; ++seq) d.Reply(Chunk(51, seq, 7));
      d.Reply(Finished(51, 6, 7));
    }
  });
  auto client = Client(daemon, Fast());
  ASSERT_TRUE(client);
  std::vector<uint32_t> seqs;
  SubmitOutcome outcome;
  JobFinished finished;
  const HostStatus ran = Run(*client, &seqs, &delivered, &outcome, &finished);
  ASSERT_TRUE(IsOk(ran));
  daemon.Stop();

  EXPECT_EQ(seqs, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(finished.job_id, 51u);
  EXPECT_EQ(finished.chunks, 6u);
  const std::vector<JobMessage> received = daemon.received();
  EXPECT_EQ(All<SubmitJob>(received).size(), 1u);
  const std::vector<ResumeStream> resumes = All<ResumeStream>(received);
  ASSERT_GE(resumes.size(), 1u);
  EXPECT_EQ(resumes[0].job_id, 51u);
  EXPECT_EQ(resumes[0].from_seq, 3u);
  EXPECT_EQ(resumes[0].instance_id, 7u);
  ASSERT_GE(events_.size(), 1u);
  EXPECT_EQ(events_[0].kind, RetryEvent::Kind::kResume);
  EXPECT_TRUE(events_[0].reconnect);
  EXPECT_EQ(events_[0].from_seq, 3u);
  EXPECT_EQ(Describe(ran), "OK");  // Nor is the stall that the resume mended.
}

// A retried submission answered as a duplicate: the job may already have streamed to the
// connection the client gave up, so the client resumes from chunk 0 at once (on the connection
// of the retry) instead of waiting for a stall.
TEST_F(JobClientRetryTest, ADuplicateAcceptanceResumesAtOnce) {
  int submits = 0;
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    AnswerProbe(d, m);
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      if (++submits == 1) return;  // Accepted; the answer (and chunks 0 and 1) are lost.
      d.Reply(JobAccepted{s->request_tag, 12, 0, true, 7});
    } else if (auto* r = std::get_if<ResumeStream>(&m)) {
      for (uint32_t seq = r->from_seq; seq < 3; ++seq) d.Reply(Chunk(12, seq, 7));
      d.Reply(Finished(12, 3, 7));
    }
  });
  auto client = Client(daemon, Fast(300));
  ASSERT_TRUE(client);
  std::vector<uint32_t> seqs;
  std::atomic<int> delivered{0};
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE(IsOk(Run(*client, &seqs, &delivered, &outcome, &finished)));
  daemon.Stop();

  EXPECT_EQ(seqs, (std::vector<uint32_t>{0, 1, 2}));
  const std::vector<JobMessage> received = daemon.received();
  const std::vector<int> connections = daemon.connections();
  ASSERT_EQ(received.size(), connections.size());
  int resume_connection = -1, second_submit_connection = -1;
  for (size_t i = 0; i < received.size(); ++i) {
    if (std::holds_alternative<SubmitJob>(received[i])) second_submit_connection = connections[i];
    if (std::holds_alternative<ResumeStream>(received[i]) && resume_connection < 0) {
      resume_connection = connections[i];
      EXPECT_EQ(std::get<ResumeStream>(received[i]).from_seq, 0u);
    }
  }
  EXPECT_EQ(resume_connection, second_submit_connection);
  ASSERT_EQ(events_.size(), 1u);  // The resubmission; no stall before the resume.
  EXPECT_EQ(events_[0].kind, RetryEvent::Kind::kResubmit);
}

// (b) The connection goes quiet without closing (a hung peer, a half-open TCP connection): the
// daemon ignores everything that comes on it. A resume only helps on a new connection.
TEST_F(JobClientRetryTest, AConnectionThatGoesQuietIsReplacedBeforeTheResume) {
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    if (d.connection() == 0) {
      if (auto* s = std::get_if<SubmitJob>(&m)) {
        d.Reply(JobAccepted{s->request_tag, 51, 0, false, 7});
        for (uint32_t seq = 0; seq < 3; ++seq) d.Reply(Chunk(51, seq, 7));
      }
      return;  // Nothing more ever answers on connection 0.
    }
    AnswerProbe(d, m);
    if (auto* r = std::get_if<ResumeStream>(&m)) {
      for (uint32_t seq = r->from_seq; seq < 6; ++seq) d.Reply(Chunk(51, seq, 7));
      d.Reply(Finished(51, 6, 7));
    }
  });
  auto client = Client(daemon, Fast());
  ASSERT_TRUE(client);
  std::vector<uint32_t> seqs;
  std::atomic<int> delivered{0};
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE(IsOk(Run(*client, &seqs, &delivered, &outcome, &finished)));
  daemon.Stop();

  EXPECT_EQ(seqs, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5}));
  const std::vector<JobMessage> received = daemon.received();
  const std::vector<int> connections = daemon.connections();
  int resumes_on_new_connections = 0;
  for (size_t i = 0; i < received.size(); ++i) {
    if (std::holds_alternative<ResumeStream>(received[i])) {
      EXPECT_NE(connections[i], 0);
      EXPECT_EQ(std::get<ResumeStream>(received[i]).from_seq, 3u);
      ++resumes_on_new_connections;
    }
  }
  EXPECT_GE(resumes_on_new_connections, 1);
}

// (c) Duplicates, chunks resent out of order, a gap and a JobFinished that comes before chunks
// it counts: the caller still sees 0..5 once each, in order.
TEST_F(JobClientRetryTest, DuplicateAndOutOfOrderChunksAreDroppedAndAGapIsResumed) {
  std::atomic<int> delivered{0};
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    AnswerProbe(d, m);
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobAccepted{s->request_tag, 8, 0, false, 7});
      for (uint32_t seq : {0, 1, 1, 0, 2, 4}) d.Reply(Chunk(8, seq, 7));  // 3 is missing.
      d.Reply(Finished(8, 6, 7));
    } else if (std::holds_alternative<ResumeStream>(m)) {
      for (uint32_t seq : {3, 4, 2, 5}) d.Reply(Chunk(8, seq, 7));  // 2 again, out of order.
      d.Reply(Finished(8, 6, 7));
    }
  });
  auto client = Client(daemon, Fast(3000));  // No silence here: only the gap resumes.
  ASSERT_TRUE(client);
  std::vector<uint32_t> seqs;
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE(IsOk(Run(*client, &seqs, &delivered, &outcome, &finished)));
  daemon.Stop();

  EXPECT_EQ(seqs, (std::vector<uint32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(finished.chunks, 6u);
  const std::vector<ResumeStream> resumes = All<ResumeStream>(daemon.received());
  ASSERT_GE(resumes.size(), 1u);
  EXPECT_EQ(resumes[0].from_seq, 3u);
  ASSERT_GE(events_.size(), 1u);
  EXPECT_FALSE(events_[0].reconnect);
  EXPECT_NE(events_[0].reason.find("chunk 4"), std::string::npos) << events_[0].reason;
}

// (d) After a restart the daemon answers the resume from another job store instance (its job
// 51 is somebody else's): a typed error naming both instances, and none of its tokens.
TEST_F(JobClientRetryTest, AnotherInstanceAfterARestartIsALostJobAndNoForeignTokens) {
  std::atomic<int> delivered{0};
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    AnswerProbe(d, m);
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobAccepted{s->request_tag, 51, 0, false, 7});
      d.Reply(Chunk(51, 0, 7));
      d.Reply(Chunk(51, 1, 7));
      AwaitDelivered(delivered, 2);
      d.Restart();  // With a new, empty store: instance 9.
    } else if (auto* r = std::get_if<ResumeStream>(&m)) {
      for (uint32_t seq = r->from_seq; seq < 4; ++seq) d.Reply(Chunk(51, seq, 9));
      d.Reply(Finished(51, 4, 9));
    }
  });
  auto client = Client(daemon, Fast());
  ASSERT_TRUE(client);
  std::vector<uint32_t> seqs;
  SubmitOutcome outcome;
  JobFinished finished;
  const HostStatus s = Run(*client, &seqs, &delivered, &outcome, &finished);
  daemon.Stop();

  ASSERT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(seqs, (std::vector<uint32_t>{0, 1}));
  const std::string& why = s.error().message;
  EXPECT_NE(why.find("job 51"), std::string::npos) << why;
  EXPECT_NE(why.find("0000000000000007"), std::string::npos) << why;
  EXPECT_NE(why.find("0000000000000009"), std::string::npos) << why;
  // What the other instance still sends for "job 51" never reaches a later caller either.
  JobMessage m;
  EXPECT_EQ(client->Receive(&m, 50).code(), StatusCode::kDeadlineExceeded);
}

// (d) After a restart the daemon does not know the job at all: UNKNOWN_JOB to the resume.
TEST_F(JobClientRetryTest, UnknownJobInAnswerToAResumeIsALostJob) {
  std::atomic<int> delivered{0};
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobAccepted{s->request_tag, 51, 0, false, 7});
      d.Reply(Chunk(51, 0, 7));
      AwaitDelivered(delivered, 1);
      d.Restart();
    } else if (std::holds_alternative<ResumeStream>(m)) {
      d.Reply(ErrorReply{ErrorCode::kUnknownJob, "job 51 is not known", 0});
    }
    AnswerProbe(d, m);
  });
  auto client = Client(daemon, Fast());
  ASSERT_TRUE(client);
  std::vector<uint32_t> seqs;
  SubmitOutcome outcome;
  JobFinished finished;
  const HostStatus s = Run(*client, &seqs, &delivered, &outcome, &finished);
  daemon.Stop();

  ASSERT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(seqs, (std::vector<uint32_t>{0}));
  EXPECT_NE(s.error().message.find("job 51"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("UNKNOWN_JOB"), std::string::npos) << s.error().message;
}

// (e) A rejection without a retry-after is final: one SubmitJob, no retry.
TEST_F(JobClientRetryTest, ARejectionWithoutRetryAfterIsNotRetried) {
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobRejected{s->request_tag, ErrorCode::kUnknownModel, "no model m", 0});
    }
  });
  auto client = Client(daemon, Fast());
  ASSERT_TRUE(client);
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE(client->RunWithRetry(Job(), nullptr, &outcome, &finished).ok());
  daemon.Stop();

  EXPECT_FALSE(outcome.accepted);
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kUnknownModel);
  EXPECT_EQ(outcome.attempts, 1u);
  EXPECT_EQ(All<SubmitJob>(daemon.received()).size(), 1u);
  EXPECT_TRUE(events_.empty());
}

// (e) IDEMPOTENCY_CONFLICT is final even with a retry-after: the key names another request.
TEST_F(JobClientRetryTest, AnIdempotencyConflictIsNeverRetried) {
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobRejected{s->request_tag, ErrorCode::kIdempotencyConflict, "other request", 500});
    }
  });
  auto client = Client(daemon, Fast());
  ASSERT_TRUE(client);
  SubmitOutcome outcome;
  ASSERT_TRUE(client->SubmitWithRetry(Job(), &outcome).ok());
  daemon.Stop();

  EXPECT_EQ(outcome.rejection.code, ErrorCode::kIdempotencyConflict);
  EXPECT_EQ(All<SubmitJob>(daemon.received()).size(), 1u);
  EXPECT_TRUE(events_.empty());
}

// The budget, on a FakeClock that on_retry moves 300 ms per retry: with a budget of 1000 ms and
// waits of at most 4 ms, retries start at 0, 300, 600 and 900; the one due at 1200 is not made,
// and the last rejection is the answer.
TEST_F(JobClientRetryTest, TheBudgetEndsRetriesWithTheLastRejection) {
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobRejected{s->request_tag, ErrorCode::kStorageUnavailable, "disk full", 1});
    }
  });
  FakeClock clock;
  RetryOptions o = Fast();
  o.total_budget_ms = 1000;
  o.max_backoff_ms = 4;
  o.clock = &clock;
  o.on_retry = [&](const RetryEvent&) { clock.Advance(300'000'000); };
  auto client = Client(daemon, std::move(o));
  ASSERT_TRUE(client);
  SubmitOutcome outcome;
  ASSERT_TRUE(client->SubmitWithRetry(Job(), &outcome).ok());
  daemon.Stop();

  EXPECT_FALSE(outcome.accepted);
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kStorageUnavailable);
  EXPECT_EQ(outcome.attempts, 5u);
  EXPECT_EQ(All<SubmitJob>(daemon.received()).size(), 5u);
}

// No answer at all: every attempt on a new connection with the same key, then
// DEADLINE_EXCEEDED once the budget (on a FakeClock, 400 ms per retry) is spent.
TEST_F(JobClientRetryTest, SilenceUntilTheBudgetEndsIsDeadlineExceeded) {
  FakeDaemon daemon([](FakeDaemon&, const JobMessage&) {});
  FakeClock clock;
  RetryOptions o = Fast(50);
  o.total_budget_ms = 1000;
  o.clock = &clock;
  o.on_retry = [&](const RetryEvent&) { clock.Advance(400'000'000); };
  auto client = Client(daemon, std::move(o));
  ASSERT_TRUE(client);
  SubmitOutcome outcome;
  const HostStatus given_up = client->SubmitWithRetry(Job(), &outcome);
  ASSERT_EQ(given_up.code(), StatusCode::kDeadlineExceeded);
  daemon.Stop();

  EXPECT_EQ(outcome.attempts, 4u);  // At 0, 400, 800; the one due at 1200 is not made.
  const std::vector<SubmitJob> sent = All<SubmitJob>(daemon.received());
  ASSERT_EQ(sent.size(), 4u);
  for (const SubmitJob& s : sent) EXPECT_EQ(s.idempotency_key, outcome.idempotency_key);
  const std::vector<int> connections = daemon.connections();
  EXPECT_EQ(std::set<int>(connections.begin(), connections.end()).size(), 4u);
  EXPECT_NE(given_up.error().message.find("4 attempts"), std::string::npos)
      << given_up.error().message;
}

// A job waiting in the queue streams nothing for longer than the budget: the probe's answers
// show the daemon still holds it, so the client waits on (budget on a FakeClock, 600 ms per
// retry against 1000 ms: without the probes it would give up at the third stall).
TEST_F(JobClientRetryTest, AQueuedJobThatStaysSilentIsProbedNotGivenUp) {
  int resumes = 0;
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    if (auto* s = std::get_if<SubmitJob>(&m)) d.Reply(JobAccepted{s->request_tag, 3, 9, false, 7});
    if (std::holds_alternative<ResumeStream>(m)) ++resumes;
    if (auto* q = std::get_if<CapacityQuery>(&m)) {
      d.Reply(Capacity(q->request_tag));
      if (resumes == 4) {  // Out of the queue at last.
        d.Reply(Chunk(3, 0, 7));
        d.Reply(Finished(3, 1, 7));
      }
    }
  });
  FakeClock clock;
  RetryOptions o = Fast(60);
  o.total_budget_ms = 1000;
  o.clock = &clock;
  o.on_retry = [&](const RetryEvent&) { clock.Advance(600'000'000); };
  auto client = Client(daemon, std::move(o));
  ASSERT_TRUE(client);
  std::vector<uint32_t> seqs;
  std::atomic<int> delivered{0};
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE(IsOk(Run(*client, &seqs, &delivered, &outcome, &finished)));
  daemon.Stop();

  EXPECT_EQ(seqs, (std::vector<uint32_t>{0}));
  EXPECT_EQ(All<ResumeStream>(daemon.received()).size(), 4u);
  EXPECT_EQ(All<SubmitJob>(daemon.received()).size(), 1u);
}

// The old one-attempt calls keep their behaviour: a retryable rejection comes straight back.
TEST_F(JobClientRetryTest, RunStillMakesOneAttempt) {
  FakeDaemon daemon([&](FakeDaemon& d, const JobMessage& m) {
    if (auto* s = std::get_if<SubmitJob>(&m)) {
      d.Reply(JobRejected{s->request_tag, ErrorCode::kQueueFull, "queue full", 100});
    }
  });
  auto client = JobClient::Connect(daemon.endpoint());
  ASSERT_TRUE(client.ok());
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE((*client)->Run(Job(), nullptr, &outcome, &finished, kBoundMs).ok());
  daemon.Stop();
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kQueueFull);
  EXPECT_TRUE(outcome.idempotency_key.empty());
  EXPECT_EQ(All<SubmitJob>(daemon.received()).size(), 1u);
}

TEST(JobClientOptionsTest, OptionsOutOfRangeAreRefused) {
  RetryOptions o;
  o.attempt_timeout_ms = 0;
  EXPECT_EQ(JobClient::Connect("tcp://127.0.0.1:1", {}, o).status().code(),
            StatusCode::kInvalidArgument);
  o = RetryOptions{};
  o.initial_backoff_ms = 10;
  o.max_backoff_ms = 5;
  EXPECT_EQ(JobClient::Connect("tcp://127.0.0.1:1", {}, o).status().code(),
            StatusCode::kInvalidArgument);
  auto ok = JobClient::Connect("tcp://127.0.0.1:1");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)->set_retry_options(o).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*ok)->retry_options().max_backoff_ms, RetryOptions{}.max_backoff_ms);
}

}  // namespace
}  // namespace wafer::host

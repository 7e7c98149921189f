#include "host/client/wafer_client.h"

#include "host/wire/admin_codec.h"
#include "host/wire/job_codec.h"

namespace wafer::host {
namespace {

// Connects a DEALER (linger 0, so closing never hangs on unsent messages).
Result<std::unique_ptr<net::Socket>> ConnectDealer(zmq::context_t& context,
                                                   const std::string& endpoint,
                                                   const ClientKeys& keys, std::string* error) {
  net::SocketOptions options;
  options.curve_server_key = keys.server_public_key;
  options.curve_public_key = keys.public_key;
  options.curve_secret_key = keys.secret_key;
  auto socket =
      net::Socket::Connect(context, net::SocketType::kDealer, endpoint, options, error);
  if (!socket.ok() && socket.status().code() != StatusCode::kInvalidArgument) {
    return Unavailable();
  }
  return socket;
}

wafer::Status SendBytes(net::Socket& socket, const std::string& bytes, std::string* error) {
  switch (socket.Send(net::AsBytes(bytes))) {
    case net::SendOutcome::kSent:
      return OkStatus();
    case net::SendOutcome::kPeerBacklog:
      *error = "send queue full (is waferd running?)";
      return Unavailable();
    case net::SendOutcome::kPeerGone:
    case net::SendOutcome::kError:
      break;
  }
  *error = "send failed";
  return Unavailable();
}

// Receives one single-frame message within `timeout_ms`.
Result<net::Message> ReceiveFrame(net::Socket& socket, int timeout_ms, std::string* error) {
  Result<net::Message> message = socket.Receive(timeout_ms);
  if (message.status().code() == StatusCode::kDeadlineExceeded) {
    // The usual causes, named: nothing listens there, or a CURVE daemon refused this client's
    // keys in the handshake (which gives the client no error of its own).
    *error = "no reply within " + std::to_string(timeout_ms) + " ms from " +
             socket.last_endpoint() +
             " (is waferd running there? a CURVE daemon answers only listed client keys)";
    return DeadlineExceeded();
  }
  if (!message.ok()) {
    *error = std::string("receive failed: ") + message.status().name();
    return Unavailable();
  }
  if (message->frame_count() != 1) {
    *error = "message of " + std::to_string(message->frame_count()) + " frames from waferd";
    return DataLoss();
  }
  return message;
}

}  // namespace

// ---- JobClient ----

JobClient::JobClient(std::unique_ptr<zmq::context_t> context) : context_(std::move(context)) {}

JobClient::~JobClient() {
  socket_.reset();
  context_->close();
}

Result<std::unique_ptr<JobClient>> JobClient::Connect(const std::string& endpoint,
                                                      const ClientKeys& keys) {
  std::unique_ptr<JobClient> c(new JobClient(std::make_unique<zmq::context_t>(1)));
  WAFER_ASSIGN_OR_RETURN(c->socket_,
                         ConnectDealer(*c->context_, endpoint, keys, &c->last_error_));
  return c;
}

Status JobClient::Send(const JobMessage& message) {
  return SendBytes(*socket_, EncodeJob(message), &last_error_);
}

Status JobClient::Receive(JobMessage* out, int timeout_ms) {
  if (!buffered_.empty()) {
    *out = std::move(buffered_.front());
    buffered_.pop_front();
    return OkStatus();
  }
  WAFER_ASSIGN_OR_RETURN(net::Message frame, ReceiveFrame(*socket_, timeout_ms, &last_error_));
  DecodeError error;
  if (!DecodeJob(frame.frame(0), out, &error)) {
    last_error_ = "undecodable message from waferd: " + error.detail;
    return DataLoss();
  }
  return OkStatus();
}

Status JobClient::WaitFor(const std::function<bool(const JobMessage&)>& match, JobMessage* out,
                          int timeout_ms) {
  for (auto it = buffered_.begin(); it != buffered_.end(); ++it) {
    if (match(*it)) {
      *out = std::move(*it);
      buffered_.erase(it);
      return OkStatus();
    }
  }
  while (true) {
    WAFER_ASSIGN_OR_RETURN(net::Message frame, ReceiveFrame(*socket_, timeout_ms, &last_error_));
    JobMessage message;
    DecodeError error;
    if (!DecodeJob(frame.frame(0), &message, &error)) {
      last_error_ = "undecodable message from waferd: " + error.detail;
      return DataLoss();
    }
    if (match(message)) {
      *out = std::move(message);
      return OkStatus();
    }
    buffered_.push_back(std::move(message));
  }
}

Status JobClient::Submit(const SubmitJob& job, SubmitOutcome* outcome, int timeout_ms) {
  SubmitJob tagged = job;
  tagged.request_tag = next_tag_++;
  WAFER_RETURN_IF_ERROR(Send(tagged));
  const uint64_t tag = tagged.request_tag;
  JobMessage reply;
  WAFER_RETURN_IF_ERROR(WaitFor(
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
  return OkStatus();
}

Status JobClient::Run(const SubmitJob& job, const std::function<void(const TokenChunk&)>& on_chunk,
                      SubmitOutcome* outcome, JobFinished* finished, int timeout_ms) {
  WAFER_RETURN_IF_ERROR(Submit(job, outcome, timeout_ms));
  if (!outcome->accepted) return OkStatus();
  const uint64_t id = outcome->accepted_reply.job_id;
  while (true) {
    JobMessage m;
    WAFER_RETURN_IF_ERROR(WaitFor(
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
      return OkStatus();
    }
  }
}

Status JobClient::Cancel(uint64_t job_id, CancelResult* result, int timeout_ms) {
  WAFER_RETURN_IF_ERROR(Send(CancelJob{job_id}));
  JobMessage m;
  WAFER_RETURN_IF_ERROR(WaitFor(
      [job_id](const JobMessage& x) {
        auto* r = std::get_if<CancelResult>(&x);
        return r != nullptr && r->job_id == job_id;
      },
      &m, timeout_ms));
  *result = std::get<CancelResult>(m);
  return OkStatus();
}

Status JobClient::QueryCapacity(CapacityReply* reply, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  WAFER_RETURN_IF_ERROR(Send(CapacityQuery{tag}));
  JobMessage m;
  WAFER_RETURN_IF_ERROR(WaitFor(
      [tag](const JobMessage& x) {
        auto* r = std::get_if<CapacityReply>(&x);
        return r != nullptr && r->request_tag == tag;
      },
      &m, timeout_ms));
  *reply = std::get<CapacityReply>(m);
  return OkStatus();
}

Status JobClient::QueryJob(uint64_t job_id, JobStatusReply* reply, int timeout_ms) {
  WAFER_RETURN_IF_ERROR(Send(JobStatusQuery{job_id}));
  JobMessage m;
  WAFER_RETURN_IF_ERROR(WaitFor(
      [job_id](const JobMessage& x) {
        auto* r = std::get_if<JobStatusReply>(&x);
        return r != nullptr && r->job_id == job_id;
      },
      &m, timeout_ms));
  *reply = std::get<JobStatusReply>(m);
  return OkStatus();
}

// ---- AdminClient ----

AdminClient::AdminClient(std::unique_ptr<zmq::context_t> context)
    : context_(std::move(context)) {}

AdminClient::~AdminClient() {
  socket_.reset();
  context_->close();
}

Result<std::unique_ptr<AdminClient>> AdminClient::Connect(const std::string& endpoint,
                                                          const ClientKeys& keys) {
  std::unique_ptr<AdminClient> c(new AdminClient(std::make_unique<zmq::context_t>(1)));
  WAFER_ASSIGN_OR_RETURN(c->socket_,
                         ConnectDealer(*c->context_, endpoint, keys, &c->last_error_));
  return c;
}

wafer::Status AdminClient::Receive(AdminMessage* out, int timeout_ms) {
  WAFER_ASSIGN_OR_RETURN(net::Message frame, ReceiveFrame(*socket_, timeout_ms, &last_error_));
  DecodeError error;
  if (!DecodeAdmin(frame.frame(0), out, &error)) {
    last_error_ = "undecodable message from waferd: " + error.detail;
    return DataLoss();
  }
  return OkStatus();
}

wafer::Status AdminClient::QueryStatus(StatusReply* reply, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(StatusQuery{tag}, tag, reply, timeout_ms);
}

template <typename Reply>
wafer::Status AdminClient::Ask(const AdminMessage& request, uint64_t tag, Reply* reply,
                               int timeout_ms) {
  WAFER_RETURN_IF_ERROR(SendBytes(*socket_, EncodeAdmin(request), &last_error_));
  while (true) {
    AdminMessage m;
    WAFER_RETURN_IF_ERROR(Receive(&m, timeout_ms));
    if (auto* r = std::get_if<Reply>(&m); r != nullptr && r->request_tag == tag) {
      *reply = std::move(*r);
      return OkStatus();
    }
    if (auto* r = std::get_if<OperationResult>(&m); r != nullptr && r->request_tag == tag) {
      last_error_ = std::string(ErrorCodeName(r->code)) + ": " + r->detail;
      return FailedPrecondition();
    }
    if (auto* e = std::get_if<ErrorReply>(&m)) {
      last_error_ = std::string(ErrorCodeName(e->code)) + ": " + e->detail;
      return FailedPrecondition();
    }
  }
}

wafer::Status AdminClient::ReadBoardLog(uint32_t board, uint64_t from_sequence,
                                        BoardLogReply* reply, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::ReadBoardLog{tag, board, from_sequence}, tag, reply, timeout_ms);
}

wafer::Status AdminClient::ShowBoard(uint32_t board, BoardDetail* detail, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  return Ask(host::ShowBoard{tag, board}, tag, detail, timeout_ms);
}

wafer::Status AdminClient::Operate(AdminMessage request,
                                   const std::function<void(const LoadProgress&)>& on_progress,
                                   OperationResult* result, int timeout_ms) {
  const uint64_t tag = next_tag_++;
  std::visit(
      [tag](auto& m) {
        if constexpr (requires { m.request_tag; }) m.request_tag = tag;
      },
      request);
  WAFER_RETURN_IF_ERROR(SendBytes(*socket_, EncodeAdmin(request), &last_error_));
  while (true) {
    AdminMessage m;
    WAFER_RETURN_IF_ERROR(Receive(&m, timeout_ms));
    if (auto* p = std::get_if<LoadProgress>(&m); p != nullptr && p->request_tag == tag) {
      if (on_progress) on_progress(*p);
    } else if (auto* r = std::get_if<OperationResult>(&m); r != nullptr && r->request_tag == tag) {
      *result = std::move(*r);
      return OkStatus();
    } else if (auto* e = std::get_if<ErrorReply>(&m)) {
      *result = OperationResult{tag, e->code, e->detail, 0};
      return OkStatus();
    }
  }
}

}  // namespace wafer::host

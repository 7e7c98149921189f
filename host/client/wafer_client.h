// libwafer_client: what a cluster scheduler links to submit jobs to waferd and stream their
// tokens (JobClient), and what waferctl uses for the admin plane (AdminClient). Both speak the
// FlatBuffers protocols over one ZeroMQ DEALER socket (made by common/net); no exception leaves
// this API.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/net/socket.h"
#include "common/result.h"
#include "host/wire/messages.h"

namespace wafer::host {

inline constexpr const char* kDefaultJobEndpoint = "tcp://127.0.0.1:7421";
inline constexpr const char* kDefaultAdminEndpoint = "tcp://127.0.0.1:7422";

// The CURVE keys a client connects with (Z85, 40 characters each): the daemon's public key and
// the client's own pair, which the daemon's allowlist must name. All empty: plaintext. A wrong
// server key never connects and never errors: every call then times out.
struct ClientKeys {
  std::string server_public_key;
  std::string public_key;
  std::string secret_key;
};

struct SubmitOutcome {
  bool accepted = false;
  JobAccepted accepted_reply;  // When accepted.
  JobRejected rejection;       // When not.
};

// Not thread-safe: one thread owns a client (and its socket).
class JobClient {
 public:
  // Connects a DEALER to `endpoint` (it need not be listening yet). INVALID_ARGUMENT for a
  // malformed endpoint, UNAVAILABLE when no socket could be made; last_error() says which.
  static Result<std::unique_ptr<JobClient>> Connect(const std::string& endpoint,
                                                    const ClientKeys& keys = {});
  ~JobClient();

  // Sends one message. UNAVAILABLE when the socket cannot take it.
  Status Send(const JobMessage& message);
  // Receives the next message (buffered ones first). DEADLINE_EXCEEDED on timeout; DATA_LOSS
  // when the daemon sent something undecodable or not of one frame (detail in last_error());
  // UNAVAILABLE when the socket failed.
  Status Receive(JobMessage* out, int timeout_ms);

  // Submits and waits for JobAccepted or JobRejected; other messages that arrive meanwhile stay
  // buffered for Receive(). An ErrorReply from the daemon is returned as a rejection.
  Status Submit(const SubmitJob& job, SubmitOutcome* outcome, int timeout_ms);

  // Submits and streams: `on_chunk` sees each TokenChunk of this job in order, `finished` gets
  // its JobFinished. `timeout_ms` bounds the wait for each message.
  Status Run(const SubmitJob& job, const std::function<void(const TokenChunk&)>& on_chunk,
             SubmitOutcome* outcome, JobFinished* finished, int timeout_ms);

  Status Cancel(uint64_t job_id, CancelResult* result, int timeout_ms);
  Status QueryCapacity(CapacityReply* reply, int timeout_ms);
  Status QueryJob(uint64_t job_id, JobStatusReply* reply, int timeout_ms);

  const std::string& last_error() const { return last_error_; }

 private:
  explicit JobClient(std::unique_ptr<zmq::context_t> context);
  // Waits for the first message `match` accepts; others are buffered.
  Status WaitFor(const std::function<bool(const JobMessage&)>& match, JobMessage* out,
                 int timeout_ms);

  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<net::Socket> socket_;  // Set by Connect(); closed before context_.
  std::deque<JobMessage> buffered_;
  uint64_t next_tag_ = 1;
  std::string last_error_;
};

// Not thread-safe.
class AdminClient {
 public:
  // As JobClient::Connect.
  static Result<std::unique_ptr<AdminClient>> Connect(const std::string& endpoint,
                                                      const ClientKeys& keys = {});
  ~AdminClient();

  Status QueryStatus(StatusReply* reply, int timeout_ms);
  // Runs an operation (LoadModel, UnloadModel, Drain, ResetBoard; its request_tag is set here)
  // until its OperationResult, passing LoadProgress messages to `on_progress`. `timeout_ms`
  // bounds the silence between two messages, not the whole operation.
  wafer::Status Operate(AdminMessage request,
                        const std::function<void(const LoadProgress&)>& on_progress,
                        OperationResult* result, int timeout_ms);

  // Reads board `board`'s firmware error log from `from_sequence`. FAILED_PRECONDITION when the
  // daemon refused (detail in last_error()).
  wafer::Status ReadBoardLog(uint32_t board, uint64_t from_sequence, BoardLogReply* reply,
                             int timeout_ms);

  // Geometry, harvesting map and sensors of board `board`. FAILED_PRECONDITION when the daemon
  // refused (detail in last_error()).
  wafer::Status ShowBoard(uint32_t board, BoardDetail* detail, int timeout_ms);

  const std::string& last_error() const { return last_error_; }

 private:
  // Sends `request` and waits for its answer of type Reply (matched by request_tag); an
  // OperationResult or ErrorReply instead is a refusal (FAILED_PRECONDITION).
  template <typename Reply>
  wafer::Status Ask(const AdminMessage& request, uint64_t tag, Reply* reply, int timeout_ms);

  explicit AdminClient(std::unique_ptr<zmq::context_t> context);
  wafer::Status Receive(AdminMessage* out, int timeout_ms);

  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<net::Socket> socket_;  // Set by Connect(); closed before context_.
  uint64_t next_tag_ = 1;
  std::string last_error_;
};

}  // namespace wafer::host

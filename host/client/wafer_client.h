// libwafer_client: what a cluster scheduler links to submit jobs to waferd and stream their
// tokens (JobClient), and what waferctl uses for the admin plane (AdminClient). Both speak the
// FlatBuffers protocols over one ZeroMQ DEALER socket (made by common/net); no exception leaves
// this API.
//
// A scheduler should call JobClient::SubmitWithRetry and RunWithRetry: they ride out a daemon
// restart (retrying with one idempotency key, reconnecting, resuming the stream where it
// stopped) and tell a lost job apart from a paused one. Submit and Run make one attempt each.
//
// Every fallible call returns a HostStatus or HostResult (common/error.h): the code its comment
// lists, with a message that says what went wrong (for logs and command-line output).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include <zmq.hpp>

#include "common/clock.h"
#include "common/net/socket.h"
#include "common/error.h"
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
  // Set by SubmitWithRetry and RunWithRetry: the key every attempt carried (the caller's, or
  // the one generated for it), and how many SubmitJob messages were sent.
  std::string idempotency_key;
  uint32_t attempts = 0;
};

// One retry that SubmitWithRetry or RunWithRetry is about to make, for logs.
struct RetryEvent {
  enum class Kind {
    kResubmit,  // The SubmitJob is sent again, with the same idempotency key.
    kResume,    // ResumeStream{job_id, from_seq} is sent (after a reconnect when `reconnect`).
  };
  Kind kind = Kind::kResubmit;
  uint64_t job_id = 0;    // kResume.
  uint32_t from_seq = 0;  // kResume.
  bool reconnect = false;
  uint32_t retry = 0;     // 1 for the first retry of this submission or of this stall.
  int delay_ms = 0;       // The wait before it.
  std::string reason;     // "QUEUE_FULL: ... (retry after 100 ms)", "no reply within 2000 ms".
};

// How SubmitWithRetry and RunWithRetry retry. The defaults suit a scheduler on the same network
// as the daemon; a daemon restart that reloads its models fits in the budget.
struct RetryOptions {
  // How long one attempt waits for its answer (JobAccepted or JobRejected), and how long a
  // stream may stay silent before the client reconnects and resumes it. > 0.
  int attempt_timeout_ms = 2000;
  // No new attempt starts later than this after the submission began, or, for a stream, after
  // the daemon last showed that it holds the job (a chunk, or an answer to a probe); an
  // attempt already started still gets its attempt_timeout_ms. >= 0; 0: give up at the first
  // silence or retryable rejection (a gap in a stream that still flows is resumed all the same).
  int total_budget_ms = 60000;
  // The backoff between retries: from initial_backoff_ms, doubling, up to max_backoff_ms, each
  // wait drawn from [b/2, b]. A rejection's retry_after_ms is honoured when it is longer.
  // 0 <= initial_backoff_ms <= max_backoff_ms.
  int initial_backoff_ms = 50;
  int max_backoff_ms = 2000;
  // Seeds the jitter; 0: drawn from the OS at Connect (or set_retry_options).
  uint64_t jitter_seed = 0;
  // What the budget is measured on; nullptr: the system's monotonic clock. Waits on the socket
  // are always real time. Borrowed: it must outlive the client. A FakeClock must be advanced by
  // the caller (for example from on_retry), or a silent daemon is retried forever.
  const Clock* clock = nullptr;
  // Called before each retry's wait; may be empty. Runs on the caller's thread.
  std::function<void(const RetryEvent&)> on_retry;
};

// Not thread-safe: one thread owns a client (and its socket).
class JobClient {
 public:
  // Connects a DEALER to `endpoint` (it need not be listening yet), with the default
  // RetryOptions. INVALID_ARGUMENT for a malformed endpoint, UNAVAILABLE when no socket could be
  // made; the Error's message says why.
  static HostResult<std::unique_ptr<JobClient>> Connect(const std::string& endpoint,
                                                        const ClientKeys& keys = {});
  // The same with `retry` for SubmitWithRetry and RunWithRetry; INVALID_ARGUMENT also for
  // options out of range.
  static HostResult<std::unique_ptr<JobClient>> Connect(const std::string& endpoint,
                                                        const ClientKeys& keys,
                                                        RetryOptions retry);
  ~JobClient();

  // Replaces the retry options. INVALID_ARGUMENT (the old ones stay) when out of range.
  HostStatus set_retry_options(RetryOptions retry);
  const RetryOptions& retry_options() const { return retry_; }

  // Sends one message. UNAVAILABLE when the socket cannot take it.
  HostStatus Send(const JobMessage& message);
  // Receives the next message (buffered ones first). DEADLINE_EXCEEDED on timeout; DATA_LOSS
  // when the daemon sent something undecodable or not of one frame (the message says which);
  // UNAVAILABLE when the socket failed.
  HostStatus Receive(JobMessage* out, int timeout_ms);

  // Submits and waits for JobAccepted or JobRejected; other messages that arrive meanwhile stay
  // buffered for Receive(). An ErrorReply from the daemon is returned as a rejection.
  HostStatus Submit(const SubmitJob& job, SubmitOutcome* outcome, int timeout_ms);

  // Submits and streams: `on_chunk` sees each TokenChunk of this job in order, `finished` gets
  // its JobFinished. `timeout_ms` bounds the wait for each message.
  HostStatus Run(const SubmitJob& job, const std::function<void(const TokenChunk&)>& on_chunk,
                 SubmitOutcome* outcome, JobFinished* finished, int timeout_ms);

  // Submits `job` until the daemon accepts it or refuses it for good, every attempt with the
  // same idempotency key (the job's, or a random 128-bit one when it has none), so a retry never
  // makes a second job. Retries when no answer comes within attempt_timeout_ms (reconnecting
  // first) and when a JobRejected has retry_after_ms > 0, waiting max(retry_after_ms, backoff);
  // IDEMPOTENCY_CONFLICT and retry_after_ms == 0 are answered at once. A late answer to an
  // earlier attempt counts. Other messages stay buffered for Receive().
  //
  // Returns:
  //   OK                - *outcome says accepted, or rejected (the last rejection when the
  //                       budget ran out while the daemon kept refusing).
  //   DEADLINE_EXCEEDED - no answer to any attempt within the budget; the message says how many.
  //   DATA_LOSS         - the daemon sent something undecodable (the message says what).
  //   UNAVAILABLE       - no new socket could be made for a retry, or the OS gave no random
  //                       bytes for a key (a failed send or receive is retried).
  HostStatus SubmitWithRetry(const SubmitJob& job, SubmitOutcome* outcome);

  // SubmitWithRetry, then streams the job: `on_chunk` sees each chunk exactly once, in seq
  // order, with no gap, and `finished` gets the JobFinished. Duplicate chunks are dropped; on a
  // gap, or on silence longer than attempt_timeout_ms (then after reconnecting and a backoff),
  // the client sends ResumeStream{job_id, next seq, instance_id} and a CapacityQuery as a probe,
  // and waits on. The budget runs from the daemon's last sign that it holds the job (a chunk, or
  // the probe's answer with no UNKNOWN_JOB before it), so a job that waits long in the queue
  // is not given up.
  //
  // Returns:
  //   OK                - rejected (see *outcome), or finished (*finished).
  //   NOT_FOUND         - the daemon lost the job: it answered a resume with UNKNOWN_JOB, or a
  //                       reply for the job came from another job store instance than the one
  //                       that accepted it (the job id now names somebody else's job; nothing
  //                       of that one was delivered). Resubmitting makes a new job.
  //   DEADLINE_EXCEEDED - no sign of the job for the whole budget.
  //   DATA_LOSS         - the daemon sent something undecodable.
  //   UNAVAILABLE       - as SubmitWithRetry, or the socket failed while streaming.
  // Any error but DATA_LOSS can come after some chunks were delivered. The Error's message names
  // the job, the instance ids and how many chunks were delivered.
  HostStatus RunWithRetry(const SubmitJob& job,
                          const std::function<void(const TokenChunk&)>& on_chunk,
                          SubmitOutcome* outcome, JobFinished* finished);

  HostStatus Cancel(uint64_t job_id, CancelResult* result, int timeout_ms);
  HostStatus QueryCapacity(CapacityReply* reply, int timeout_ms);
  HostStatus QueryJob(uint64_t job_id, JobStatusReply* reply, int timeout_ms);

 private:
  using Match = std::function<bool(const JobMessage&)>;

  JobClient(std::unique_ptr<zmq::context_t> context, std::string endpoint, ClientKeys keys);
  // Waits for the first message `match` accepts; others are buffered.
  HostStatus WaitFor(const Match& match, JobMessage* out, int timeout_ms);
  // As WaitFor, but `wait_ms` bounds the whole wait, not the silence between two messages.
  // DEADLINE_EXCEEDED when nothing matched in time.
  HostStatus WaitWithin(const Match& match, JobMessage* out, int wait_ms);
  // Receives one message from the socket within `timeout_ms`, dropping what answers a finished
  // resilient call (a late reply to a retried submission, a chunk replayed twice).
  HostStatus ReceiveFresh(JobMessage* out, int timeout_ms);
  // Closes the socket and connects a new one to the same endpoint with the same keys, keeping
  // what the old one had already received.
  HostStatus Reconnect();
  // Remembers a finished submission's tag, or a finished stream's job id, so that their later
  // messages are dropped (up to the last 256 of each), and drops what is buffered for them.
  void RetireTag(uint64_t tag);
  void RetireJob(uint64_t job_id);
  // Waits `wait_ms` on the socket, buffering what arrives. UNAVAILABLE or DATA_LOSS as Receive.
  HostStatus Pause(int wait_ms);
  int64_t BudgetNowMs() const;
  void NotifyRetry(const RetryEvent& event) const;

  std::unique_ptr<zmq::context_t> context_;
  const std::string endpoint_;
  const ClientKeys keys_;
  std::unique_ptr<net::Socket> socket_;  // Set by Connect(); closed before context_.
  std::deque<JobMessage> buffered_;
  uint64_t next_tag_ = 1;
  RetryOptions retry_;
  uint64_t jitter_state_ = 0;  // Advanced per resilient call: its backoff's seed.
  std::deque<uint64_t> retired_tags_;
  std::deque<uint64_t> retired_jobs_;
};

// Not thread-safe.
class AdminClient {
 public:
  // As JobClient::Connect.
  static HostResult<std::unique_ptr<AdminClient>> Connect(const std::string& endpoint,
                                                          const ClientKeys& keys = {});
  ~AdminClient();

  HostStatus QueryStatus(StatusReply* reply, int timeout_ms);
  // Runs an operation (LoadModel, UnloadModel, Drain, DrainBoard, ResetBoard, InjectFault,
  // CancelJobRequest, UpdateFirmware, RollbackFirmware; its request_tag is set here) until its OperationResult, passing LoadProgress messages to `on_progress`. `timeout_ms`
  // bounds the silence between two messages, not the whole operation.
  HostStatus Operate(AdminMessage request,
                     const std::function<void(const LoadProgress&)>& on_progress,
                     OperationResult* result, int timeout_ms);

  // Reads board `board`'s firmware error log from `from_sequence`. FAILED_PRECONDITION when the
  // daemon refused (the daemon's detail in the message).
  HostStatus ReadBoardLog(uint32_t board, uint64_t from_sequence, BoardLogReply* reply,
                          int timeout_ms);

  // Geometry, harvesting map and sensors of board `board`. FAILED_PRECONDITION when the daemon
  // refused (the daemon's detail in the message).
  HostStatus ShowBoard(uint32_t board, BoardDetail* detail, int timeout_ms);

  // The jobs `query` asks for (its request_tag is set here). FAILED_PRECONDITION when the daemon
  // refused (a field out of range; the daemon's detail in the message).
  HostStatus ListJobs(host::ListJobs query, JobList* reply, int timeout_ms);

  // Job `job_id` in detail. FAILED_PRECONDITION when the daemon refused; the message then
  // starts with the code ("UNKNOWN_JOB: job 12 is not known ...").
  HostStatus ShowJob(uint64_t job_id, JobDetail* detail, int timeout_ms);

  // The health of board `board` (-1: every board). FAILED_PRECONDITION when the daemon refused
  // (a board not configured; the daemon's detail in the message).
  HostStatus QueryHealth(int32_t board, HealthReply* reply, int timeout_ms);

  // Runs diagnostics of `level` (1-3) on board `board`, passing DiagnosticProgress messages to
  // `on_progress`, until the DiagnosticReport. FAILED_PRECONDITION when the daemon refused (a
  // board not configured, a level not 1-3, diagnostics already under way; the daemon's detail
  // in the message). `timeout_ms` bounds the silence between two messages.
  HostStatus RunDiagnostics(uint32_t board, uint32_t level,
                            const std::function<void(const DiagnosticProgress&)>& on_progress,
                            DiagnosticReport* report, int timeout_ms);

  // Follows job `job_id`'s tokens from chunk `from_seq` on (admin TailJob): `on_tokens` sees
  // every JobTokens the daemon sends, chunks and signs of life (no tokens) alike, the last one
  // (finished) included. `timeout_ms` bounds the silence between two messages (the daemon sends
  // a sign of life every second).
  // Returns OK once the job ended; FAILED_PRECONDITION when the daemon refused (an unknown job,
  // too many tails; the message is "CODE: detail"); DEADLINE_EXCEEDED, UNAVAILABLE, DATA_LOSS
  // as every other call.
  HostStatus TailJob(uint64_t job_id, uint32_t from_seq,
                     const std::function<void(const JobTokens&)>& on_tokens, int timeout_ms);

  // Board `board`'s firmware slots. FAILED_PRECONDITION when the daemon refused (a board not
  // configured, a board that did not answer; the daemon's detail in the message).
  HostStatus QueryFirmware(uint32_t board, FirmwareInfo* info, int timeout_ms);

 private:
  // Sends `request` and waits for its answer of type Reply (matched by request_tag); an
  // OperationResult or ErrorReply instead is a refusal (FAILED_PRECONDITION).
  // With a Progress type, messages of that type with the tag go to `on_progress` meanwhile.
  template <typename Reply, typename Progress = std::monostate>
  HostStatus Ask(const AdminMessage& request, uint64_t tag, Reply* reply, int timeout_ms,
                 const std::function<void(const Progress&)>& on_progress = {});

  explicit AdminClient(std::unique_ptr<zmq::context_t> context);
  HostStatus Receive(AdminMessage* out, int timeout_ms);

  std::unique_ptr<zmq::context_t> context_;
  std::unique_ptr<net::Socket> socket_;  // Set by Connect(); closed before context_.
  uint64_t next_tag_ = 1;
};

}  // namespace wafer::host

// The job socket: every message a cluster scheduler sends is verified, validated and answered
// here (submit, cancel, status, resume, capacity, heartbeat); accepted jobs go to the job table
// and the scheduler's queue. Also the way out for tokens and endings (JobReplies).
//
// Replies that promise something (JobAccepted, TokenChunk, JobFinished, CancelResult) wait
// until the job store has made what they tell durable: each is held with the store generation
// it needs, and goes out, in order, once durable() reaches it (Release()).
#pragma once

#include <deque>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "common/clock.h"
#include "common/error.h"
#include "host/boards/board_manager.h"
#include "host/health/health_monitor.h"
#include "host/config/daemon_config.h"
#include "host/serving/model_manager.h"
#include "host/serving/job_replies.h"
#include "host/frontend/access.h"
#include "host/frontend/router_socket.h"
#include "host/jobs/job_table.h"
#include "host/scheduler/admission.h"
#include "host/scheduler/scheduler.h"
#include "host/scheduler/wait_estimator.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

class StepLoop;

// Not thread-safe; owned by the step loop's thread.
class JobFrontend final : public JobReplies {
 public:
  // Longest tenant name and idempotency key a submission may carry (job.fbs says so too).
  static constexpr size_t kMaxTenantBytes = 256;
  static constexpr size_t kMaxKeyBytes = 256;

  // REQUIRES: every argument outlives the front end.
  JobFrontend(zmq::context_t& context, const DaemonConfig& config, const Clock& clock,
              const AccessPolicy& access, JobStore& store, JobTable& jobs, Scheduler& scheduler,
              Admission& admission, const WaitEstimator& waits,
              ModelManager& models, StepLoop& steps, BoardManager& boards,
              const HealthMonitor& health, telemetry::DaemonMetrics& metrics);

  // See RouterSocket::Bind (CURVE when `curve_secret_key` is not empty).
  HostStatus Bind(const std::string& curve_secret_key);
  // See RouterSocket::monitor_handle and DrainRefusedHandshakes.
  void* monitor_handle() { return socket_.monitor_handle(); }
  void DrainRefusedHandshakes(AuditLog& audit) { socket_.DrainRefusedHandshakes(audit); }
  // See RouterSocket::Rebind: the server key rotated.
  HostStatus Rekey(const std::string& new_secret_key, const std::string& old_secret_key) {
    return socket_.Rebind(config_, new_secret_key, old_secret_key);
  }
  const std::string& endpoint() const { return socket_.endpoint(); }
  void* handle() { return socket_.handle(); }

  // Handles the messages waiting on the socket (at most `burst`).
  void Pump(int burst);
  // Stamps the store's instance id on replies that name a job. Sends now, or holds the reply
  // until Flush() (see above). A job with no client listening (recovered after a restart,
  // before a ResumeStream) has an empty `peer`: nothing is sent.
  void Send(const std::string& peer, JobMessage message) override;
  void SendInPlace(const std::string& peer, JobMessage& message) override;
  // Commits the store's writes of this turn (one transaction) and sends the replies that are
  // durable by now. When the disk refuses, they keep waiting.
  void Flush();
  // Sends the held replies whose writes are durable now (the store's eventfd fired).
  void Release();

  // Heartbeats (config heartbeat): sends the opted-in clients theirs when due, marks the silent
  // ones gone, and ends with kAbandoned the unfinished jobs still addressed to a client gone
  // for longer than the grace period. Call every turn of the loop; cheap with no opted-in client.
  void CheckHeartbeats();
  // Most clients tracked at once; a further opt-in is answered but not tracked (logged).
  static constexpr size_t kMaxHeartbeatPeers = 4096;
  size_t held() const { return held_.size(); }

  // New submissions are refused with DRAINING from now on; accepted jobs run to completion.
  void StopAccepting() { accepting_ = false; }
  bool accepting() const { return accepting_; }

 private:
  // `key` is the caller's client key (CURVE), or nullptr (plaintext: anonymous, any tenant).
  void OnFrame(const std::string& peer, const ClientKeyConfig* key,
               std::span<const std::byte> payload);
  void OnSubmit(const std::string& peer, const ClientKeyConfig* key, SubmitJob& submit);
  void OnCancel(const std::string& peer, const ClientKeyConfig* key, const CancelJob& cancel);
  void OnJobStatus(const std::string& peer, const ClientKeyConfig* key,
                   const JobStatusQuery& query);
  void OnResume(const std::string& peer, const ClientKeyConfig* key, const ResumeStream& resume);
  // The job `id` as `key` may see it: another tenant's job is nullptr, as if it did not exist.
  JobRecord* Visible(uint64_t id, const ClientKeyConfig* key);
  void OnCapacity(const std::string& peer, const CapacityQuery& query);
  void Reject(const std::string& peer, uint64_t tag, ErrorCode code, std::string detail,
              uint32_t retry_after_ms = 0);

  const DaemonConfig& config_;
  const Clock& clock_;
  JobStore& store_;
  JobTable& jobs_;
  Scheduler& scheduler_;
  Admission& admission_;
  const WaitEstimator& waits_;
  ModelManager& models_;
  StepLoop& steps_;
  BoardManager& boards_;
  const HealthMonitor& health_;
  telemetry::DaemonMetrics& metrics_;
  RouterSocket socket_;
  bool accepting_ = true;
  // An opted-in client: when it was last heard, when it is due its next heartbeat, and since
  // when it is gone (0: it is not).
  struct Liveness {
    int64_t last_heard_ns = 0;
    int64_t next_beat_ns = 0;
    int64_t gone_ns = 0;
  };
  void Heard(const std::string& peer, bool opts_in);
  void Abandon(const std::string& peer);

  std::unordered_map<std::string, Liveness> peers_;
  bool peer_limit_logged_ = false;
  struct HeldReply {
    uint64_t generation;  // The store generation that must be durable first.
    std::string peer;
    std::string bytes;  // Encoded.
  };
  std::deque<HeldReply> held_;  // In the order they were sent.
};

}  // namespace wafer::host

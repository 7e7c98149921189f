// The admin socket: status, model load/unload with progress, drain, board reset, logs, fault
// drills, board detail, and the jobs (list, show, cancel). Long operations are handed to the
// model manager or a board's worker; their outcome comes back through OperationSink.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>

#include <zmq.hpp>

#include "common/clock.h"
#include "common/error.h"
#include "host/boards/board_manager.h"
#include "host/health/health_monitor.h"
#include "host/config/daemon_config.h"
#include "host/serving/model_manager.h"
#include "host/serving/operation_sink.h"
#include "host/frontend/access.h"
#include "host/frontend/audit_log.h"
#include "host/frontend/job_frontend.h"
#include "host/frontend/router_socket.h"
#include "host/jobs/job_store.h"
#include "host/jobs/job_table.h"
#include "host/scheduler/scheduler.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

inline constexpr const char* kWaferdVersion = "0.1.0";

class StepLoop;

// Not thread-safe; owned by the step loop's thread.
class AdminFrontend final : public OperationSink {
 public:
  // REQUIRES: every argument outlives the front end (`steps` need only be constructed before
  // the first Pump()).
  AdminFrontend(zmq::context_t& context, const DaemonConfig& config, const Clock& clock,
                const AccessPolicy& access, AuditLog& audit, JobFrontend& job_frontend,
                JobStore& store, JobTable& jobs, Scheduler& scheduler, StepLoop& steps,
                ModelManager& models, BoardManager& boards, HealthMonitor& health,
                telemetry::DaemonMetrics& metrics);

  // Shown in status replies (known once the metrics endpoint is bound).
  void set_metrics_url(std::string url) { metrics_url_ = std::move(url); }

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

  // Sends the held replies whose job-store writes are durable by now, then handles the messages
  // waiting on the socket (at most `burst`). Call every turn of the loop.
  void Pump(int burst);

  void FinishOperation(const std::string& peer, uint64_t tag, Status status,
                       const std::string& detail, double elapsed_s) override;
  void SendProgress(const std::string& peer, const LoadProgress& progress) override;

  // Board workers' answers to admin requests.
  void OnGeometryDone(const Board& board, GeometryDone& done);
  void OnLogsDone(const Board& board, LogsDone& done);
  void OnDiagProgress(const Board& board, const DiagProgressEvent& event);
  void OnDiagDone(Board& board, DiagDone& done);
  void OnFirmwareInfoDone(const Board& board, FirmwareInfoDone& done);
  void OnFirmwareProgress(const Board& board, const FirmwareProgressEvent& event);

 private:
  // `key` is the caller's client key (CURVE), or nullptr (plaintext: anonymous, may do all).
  void OnFrame(const std::string& peer, const ClientKeyConfig* key,
               std::span<const std::byte> payload);
  // True when the message left (a vanished or backlogged peer loses it).
  bool Send(const std::string& peer, const AdminMessage& message);
  void OnStatus(const std::string& peer, const StatusQuery& query);
  void OnLoad(const std::string& peer, const LoadModel& load);
  // False (the client told PERMISSION_DENIED) when `path` resolves outside the model roots.
  bool UnderModelRoots(const std::string& peer, uint64_t tag, const std::string& path);
  void OnUnload(const std::string& peer, const UnloadModel& unload);
  void OnReset(const std::string& peer, const ResetBoard& reset);
  void OnDrainBoard(const std::string& peer, const DrainBoard& drain);
  void OnReadBoardLog(const std::string& peer, const ReadBoardLog& read);
  void OnInjectFault(const std::string& peer, const InjectFault& fault);
  void OnShowBoard(const std::string& peer, const ShowBoard& show);
  // False (the client told INVALID_ARGUMENT) when `board` is not configured.
  bool CheckBoard(const std::string& peer, uint64_t tag, uint32_t board);
  BoardInfo InfoOf(const Board& board) const;

  // ---- board health (admin_health.cc) ----
  void OnHealth(const std::string& peer, const HealthQuery& query);
  void OnClearHealth(const std::string& peer, const ClearHealthIncident& clear);

  // ---- diagnostics (admin_diagnostics.cc) ----
  void OnRunDiagnostics(const std::string& peer, const RunDiagnostics& run);

  // ---- jobs tail (admin_tail.cc) ----
  // Starts following a job's chunks for `peer` (TailJob); PumpTails() sends them.
  void OnTailJob(const std::string& peer, const TailJob& tail);
  // Sends each tail the chunks its job made since the last call, a sign of life after a
  // second without any, and the job's end (which ends the tail). Called every Pump().
  void PumpTails();

  // ---- firmware (admin_firmware.cc) ----
  void OnFirmwareQuery(const std::string& peer, const FirmwareQuery& query);
  void OnUpdateFirmware(const std::string& peer, UpdateFirmware& update);
  void OnRollbackFirmware(const std::string& peer, const RollbackFirmware& rollback);

  // ---- jobs (admin_jobs.cc) ----
  void OnListJobs(const std::string& peer, const ListJobs& list);
  void OnShowJob(const std::string& peer, const ShowJob& show);
  // As the job socket's cancel (JobFrontend::OnCancel), for any tenant; audited; the
  // OperationResult waits until the cancel is durable (SendWhenDurable).
  void OnCancelJob(const std::string& peer, const CancelJobRequest& cancel);
  // `job` as ListJobs shows it; `position` is its queue position when it is queued.
  JobSummary SummaryOf(const JobRecord& job, std::optional<size_t> position,
                       int64_t now_unix_ms) const;
  // Sends `message` once what the job store holds now is durable (at once when it is), after
  // every reply held before it; Pump() sends it later otherwise.
  void SendWhenDurable(const std::string& peer, const AdminMessage& message);
  void ReleaseDurable();

  const DaemonConfig& config_;
  const Clock& clock_;
  AuditLog& audit_;
  const int64_t start_ns_;
  JobFrontend& job_frontend_;
  JobStore& store_;
  JobTable& jobs_;
  Scheduler& scheduler_;
  StepLoop& steps_;
  ModelManager& models_;
  BoardManager& boards_;
  HealthMonitor& health_;
  std::string metrics_url_;
  RouterSocket socket_;
  struct HeldReply {
    uint64_t generation;  // The store generation that must be durable first.
    std::string peer;
    std::string bytes;  // Encoded.
  };
  std::deque<HeldReply> held_;  // In the order they were sent.
  std::map<uint32_t, int64_t> diag_started_ns_;  // Per board: when its diagnostics began.
  struct Tail {
    std::string peer;
    uint64_t tag = 0;
    uint64_t job_id = 0;
    uint32_t next_seq = 0;     // The next chunk to send.
    int64_t last_sent_ns = 0;  // When the last message went (a sign of life follows 1 s later).
  };
  std::vector<Tail> tails_;  // At most kMaxJobTails.
};

}  // namespace wafer::host

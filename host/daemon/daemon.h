// waferd's core: the step loop. One thread owns the job socket, the admin socket and the step
// loop's ends of the board-worker channels; it validates and queues jobs, plans each board's
// next Step (continuous batching), streams tokens back and answers the admin plane.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "common/clock.h"
#include "host/config/daemon_config.h"
#include "host/daemon/board_worker.h"
#include "host/daemon/worker_messages.h"
#include "host/placement/row_gaps.h"
#include "host/scheduler/scheduling_policy.h"
#include "host/wire/messages.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

inline constexpr const char* kWaferdVersion = "0.1.0";

// Thread-compatible: construct, then Run() on one thread. RequestStop() is thread-safe and
// async-signal-safe (it writes an eventfd).
class Daemon {
 public:
  // Binds the sockets and the metrics endpoint and starts the board workers. Returns
  // INVALID_ARGUMENT (bad config) or UNAVAILABLE (an endpoint could not be bound), with detail.
  // REQUIRES: `context` and `clock` outlive the daemon; embedded boards are already listening
  // on their inproc:// endpoints in `context`.
  static Status Create(zmq::context_t& context, const DaemonConfig& config, const Clock& clock,
                       std::unique_ptr<Daemon>* out, std::string* detail);
  ~Daemon();

  // Serves until RequestStop(), then drains: no new jobs, accepted ones run to completion (up to
  // drain_timeout_ms), then returns.
  void Run();
  void RequestStop();

  // The endpoints actually bound (a "tcp://127.0.0.1:*" config gets its real port here).
  const std::string& job_endpoint() const { return job_endpoint_; }
  const std::string& admin_endpoint() const { return admin_endpoint_; }
  int metrics_port() const { return metrics_.port(); }

 private:
  struct Job;
  struct Model;
  struct Board;
  struct Chain;

  // A model to load, from the admin socket, the config file or a reload.
  struct LoadRequest {
    uint64_t admin_tag = 0;
    std::string admin_peer;  // Empty: no client waits for the outcome.
    std::string name;
    std::string path;
    std::vector<uint32_t> boards;  // Pipeline order.
    uint32_t slots = 0;
    uint32_t context_length = 0;
  };

  Daemon(zmq::context_t& context, const DaemonConfig& config, const Clock& clock);
  Status Bind(std::string* detail);

  // Socket I/O.
  void PumpJobSocket();
  void PumpAdminSocket();
  void PumpWorkers();
  void SendTo(zmq::socket_t& socket, const char* socket_name, const std::string& peer,
              std::span<const std::byte> payload);
  void SendJob(const std::string& peer, const JobMessage& message);
  void SendAdmin(const std::string& peer, const AdminMessage& message);

  // Job socket handlers (daemon_jobs.cc).
  void OnJobFrame(const std::string& peer, std::span<const std::byte> payload);
  void OnSubmit(const std::string& peer, SubmitJob& submit);
  void OnCancel(const std::string& peer, const CancelJob& cancel);
  void OnJobStatus(const std::string& peer, const JobStatusQuery& query);
  void OnResume(const std::string& peer, const ResumeStream& resume);
  void OnCapacity(const std::string& peer, const CapacityQuery& query);
  void Reject(const std::string& peer, uint64_t tag, ErrorCode code, std::string detail,
              uint32_t retry_after_ms = 0);

  // Admin socket handlers (daemon_admin.cc).
  void OnAdminFrame(const std::string& peer, std::span<const std::byte> payload);
  void OnStatus(const std::string& peer, const StatusQuery& query);
  void OnLoad(const std::string& peer, const LoadModel& load);
  void OnUnload(const std::string& peer, const UnloadModel& unload);
  void OnReset(const std::string& peer, const ResetBoard& reset);
  void OnReadBoardLog(const std::string& peer, const ReadBoardLog& read);
  void OnInjectFault(const std::string& peer, const InjectFault& fault);
  void OnShowBoard(const std::string& peer, const ShowBoard& show);
  void OnGeometryDone(Board& board, GeometryDone& done);
  BoardInfo InfoOf(const Board& board) const;
  void OnLogsDone(Board& board, LogsDone& done);
  void FinishOperation(const std::string& peer, uint64_t tag, Status status,
                       const std::string& detail, double elapsed_s);

  // Loads (daemon_loads.cc): queued until their boards are ready and no other load is being
  // planned on them; the first board's worker opens and plans the model, then every board's
  // worker stages its part.
  void StartLoad(LoadRequest request);
  void StartPendingLoads();
  // True when `model`'s load began; false when it must wait (or failed: then it is gone).
  bool TryStartLoad(Model& model);
  void OnPrepareDone(PrepareDone& done);
  void OnLoadProgress(const LoadProgressEvent& progress);
  void OnLoadDone(LoadDone& done);
  void FailLoad(Model& model, Status status, const std::string& detail);
  // Frees instance `model_id` of `model` on every board it spans; nobody waits for the answer.
  void UnloadQuietly(const Model& model, uint32_t model_id);
  Model* ModelById(uint32_t model_id);

  // Boards and models coming and going (daemon_boards.cc).
  void OnWorkerEvent(Board& board, WorkerEvent& event);
  void OnOperationDone(Board& board, OperationDone& done);
  void OnBoardUpdate(Board& board, const BoardUpdate& update);
  void OnBoardLost(Board& board);
  // Takes a model off its board: running jobs are re-queued (prompt + output as prefill), the
  // model becomes kFailed; an unloading model is removed instead. `model` may be destroyed.
  void LoseModel(Model& model, const std::string& why);
  // Puts `model`'s running jobs back in the queue with prompt + output so far as prefill (a
  // cancelled one ends). Returns how many went back.
  size_t RequeueRunning(Model& model);
  // A step on `board` failed DATA_LOSS: the board rewrites only the tensors it lost (the model
  // waits in kLoading, its jobs re-queued), or, when that cannot be done, the model is reloaded.
  void RepairModel(Model& model, const Board& board, const std::string& why);
  void OnRepairDone(RepairDone& done);
  // Loads a kFailed model again under a new id (its queued jobs wait for it).
  void ReloadModel(Model& model);
  void ReloadLostModels(Board& board);

  // The step loop (daemon_steps.cc).
  void OnStepDone(Board& board, StepDone& done);
  // Sends a pipelined model's step on to its next board, with each sequence's hidden states;
  // sequences this stage refused end here.
  void ForwardStep(Chain& chain, Model& model, StepDone& done);
  void FinishRefusedSeq(Job& job, const Status& status);
  void ScheduleSteps();
  bool PlanStep(Board& board, Model& model);
  void AdmitQueued(Model& model);
  void ApplyTokens(Job& job, Model& model, const std::vector<uint32_t>& tokens, int64_t now);
  void FinishJob(Job& job, FinishReason reason, ErrorCode error = ErrorCode::kNone,
                 std::string detail = "");
  void ReleaseSlot(Job& job);
  void ExpireDeadlines();
  void ForgetOldJobs();
  void UpdateGauges();
  Model* FindModel(const std::string& name);

  zmq::context_t& context_;
  const DaemonConfig config_;
  const Clock& clock_;
  const int64_t start_ns_;
  int stop_fd_ = -1;
  bool stopping_ = false;
  bool draining_ = false;
  int64_t drain_deadline_ns_ = 0;

  zmq::socket_t job_socket_;
  zmq::socket_t admin_socket_;
  std::string job_endpoint_;
  std::string admin_endpoint_;
  telemetry::DaemonMetrics metrics_;
  std::string metrics_url_;

  std::unique_ptr<SchedulingPolicy> policy_;
  std::vector<std::unique_ptr<Board>> boards_;
  std::map<std::string, std::unique_ptr<Model>> models_;
  std::deque<std::string> load_queue_;  // Names of models waiting for their load to begin.
  std::unordered_map<uint64_t, Chain> chains_;  // Step serial -> a pipelined step under way.
  uint32_t next_model_id_ = 1;
  uint64_t next_step_serial_ = 1;

  std::unordered_map<uint64_t, std::unique_ptr<Job>> jobs_;
  std::unordered_map<std::string, uint64_t> idempotency_;  // tenant + '\0' + key -> job id.
  std::deque<uint64_t> finished_order_;
  std::multimap<uint64_t, uint64_t> deadlines_;  // deadline_unix_ms -> job id, unfinished jobs.
  uint64_t next_job_id_ = 1;
  // The TokenChunk that ApplyTokens fills and sends, kept between calls: streaming a chunk then
  // allocates nothing on this thread (a JobMessage built per chunk copied its token vector).
  JobMessage chunk_message_ = TokenChunk{};
  // SeqStep vectors handed back by finished steps (StepDone::seqs), reused by PlanStep, and
  // PlanStep's list of running jobs left out of a step: both only keep their capacity.
  static constexpr size_t kMaxSpareSeqs = 16;
  std::vector<std::vector<SeqStep>> spare_seqs_;
  std::vector<uint64_t> waiting_scratch_;
  uint64_t jobs_finished_ = 0;
  uint64_t tokens_generated_ = 0;
  uint32_t jobs_running_ = 0;
};

}  // namespace wafer::host

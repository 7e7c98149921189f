// The models waferd serves and their lives: loads (queued until their boards are ready and no
// other load is being planned on them; prepared by the loader thread; staged by each board's
// worker), unloads, and what happens when a board or a PE under a model fails (re-queue its
// jobs, repair in place, or reload).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/net/socket.h"
#include "host/boards/board_manager.h"
#include "host/config/daemon_config.h"
#include "host/jobs/job_store.h"
#include "host/serving/model_record.h"
#include "host/serving/operation_sink.h"
#include "host/loader/prepare_messages.h"
#include "host/scheduler/scheduler.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

class StepLoop;

// Not thread-safe; owned by the step loop's thread.
class ModelManager {
 public:
  // `loader_channel` is the step loop's end of the loader's channel (opened before the first
  // load is started).
  // REQUIRES: every argument outlives the manager (`steps` and `operations` need only be
  // constructed before the first call).
  // Loads that succeed are recorded in `store` (and dropped when the model goes), so that a
  // restart loads them again.
  ModelManager(const DaemonConfig& config, const Clock& clock, JobStore& store,
               BoardManager& boards, Scheduler& scheduler, StepLoop& steps,
               OperationSink& operations,
               std::unique_ptr<net::Socket>& loader_channel,
               telemetry::DaemonMetrics& metrics);

  ModelRecord* Find(const std::string& name);
  ModelRecord* FindById(uint32_t model_id);
  const std::map<std::string, std::unique_ptr<ModelRecord>>& models() const { return models_; }

  // ---- loads (model_loads.cc) ----
  // Checks the request's boards and name, then queues the load (answered through `operations`).
  void StartLoad(LoadRequest request);
  // Starts every queued load whose boards are ready (or fails those whose boards gave up).
  void StartPendingLoads();
  void OnPrepareDone(PrepareDone& done);
  void OnLoadProgress(const LoadProgressEvent& progress);
  void OnLoadDone(LoadDone& done);
  // Queued jobs end now; running ones finish their tokens; then the boards free the model.
  // FAILED_PRECONDITION (`detail`) unless the model is ready.
  Status BeginUnload(ModelRecord& model, const std::string& peer, uint64_t tag,
                     std::string* detail);
  // Once an unloading model's last job ended: tells its boards to free it (once).
  void SendUnloadWhenIdle(ModelRecord& model);
  void OnUnloadDone(OperationDone& done);

  // ---- failures (model_faults.cc) ----
  // Every model on `board` is lost (reset, offline): jobs re-queued, models kFailed.
  void OnBoardLost(const Board& board);
  // Models on `board` that were lost come back under new ids.
  void ReloadLostModels(const Board& board);
  // A step on `board` failed DATA_LOSS: the board rewrites only the tensors it lost (the model
  // waits in kLoading, its jobs re-queued), or, when that cannot be done, the model is reloaded.
  void RepairModel(ModelRecord& model, const Board& board, const std::string& why);
  void OnRepairDone(RepairDone& done);

 private:
  bool TryStartLoad(ModelRecord& model);
  void FailLoad(ModelRecord& model, Status status, const std::string& detail);
  // Frees instance `model_id` of `model` on every board it spans; nobody waits for the answer.
  void UnloadQuietly(const ModelRecord& model, uint32_t model_id);
  // Takes a model off its boards: running jobs are re-queued, the model becomes kFailed; an
  // unloading model is removed instead. `model` may be destroyed.
  void LoseModel(ModelRecord& model, const std::string& why);
  // Loads a kFailed model again under a new id (its queued jobs wait for it).
  void ReloadModel(ModelRecord& model);
  void Remove(const std::string& name);

  const DaemonConfig& config_;
  const Clock& clock_;
  JobStore& store_;
  BoardManager& boards_;
  Scheduler& scheduler_;
  StepLoop& steps_;
  OperationSink& operations_;
  std::unique_ptr<net::Socket>& loader_channel_;
  telemetry::DaemonMetrics& metrics_;
  std::map<std::string, std::unique_ptr<ModelRecord>> models_;
  std::deque<std::string> load_queue_;  // Names of models waiting for their load to begin.
  uint32_t next_model_id_ = 1;
};

}  // namespace wafer::host

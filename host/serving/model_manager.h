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
#include <vector>

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

  // Every replica of `name`, in the order they were loaded (empty: not loaded).
  std::vector<ModelRecord*> Replicas(const std::string& name);
  // True when `model` takes new jobs: ready, and none of its boards drained.
  bool TakesJobs(const ModelRecord& model) const;
  ModelRecord* FindById(uint32_t model_id);
  ModelRecord* FindReplica(uint32_t replica);
  // Every model replica, keyed by ModelRecord::replica (in load order).
  const std::map<uint32_t, std::unique_ptr<ModelRecord>>& models() const { return models_; }

  // ---- loads (model_loads.cc) ----
  // Checks the request's boards and name, then queues the load (answered through `operations`).
  // A name already loaded gets another replica on the request's boards, if they are boards it
  // does not use yet and the path is the same (ALREADY_EXISTS otherwise).
  void StartLoad(LoadRequest request);
  // Starts every queued load whose boards are ready (or fails those whose boards gave up).
  void StartPendingLoads();
  void OnPrepareDone(PrepareDone& done);
  void OnLoadProgress(const LoadProgressEvent& progress);
  void OnLoadDone(LoadDone& done);
  // Every replica of `name` (`board` < 0), or the one whose first board is `board`: no new job
  // goes to it, running ones finish their tokens, then the boards free it; the client is
  // answered once the last replica asked for is gone. Queued jobs end now when no replica stays,
  // else they wait for the replicas that stay.
  //
  // Returns (the message naming the model and board):
  //   OK                  - the unload has begun; the client is answered when it ends.
  //   NOT_FOUND           - no such replica is loaded.
  //   FAILED_PRECONDITION - a replica asked for is not ready (loading, unloading, failed).
  HostStatus BeginUnload(const std::string& name, int32_t board, const std::string& peer,
                         uint64_t tag);
  // Once an unloading model's last job ended: tells its boards to free it (once).
  void SendUnloadWhenIdle(ModelRecord& model);
  void OnUnloadDone(OperationDone& done);

  // ---- failures (model_unloads.cc) ----
  // Resets board `index` (an operator's or a health incident's): its running jobs are re-queued
  // and its models reloaded when it is ready again. `peer` (may be empty) is answered when the
  // reset is done.
  void ResetBoard(uint32_t index, const std::string& peer, uint64_t tag);
  // Every model on `board` is lost (reset, offline): jobs re-queued, models kFailed.
  void OnBoardLost(const Board& board);
  // Models on `board` that were lost come back under new ids.
  void ReloadLostModels(const Board& board);
  // A step on `board` failed DATA_LOSS: the board rewrites only the tensors it lost (the model
  // waits in kLoading, its jobs re-queued), or, when that cannot be done, the model is reloaded.
  void RepairModel(ModelRecord& model, const Board& board, const std::string& why);
  void OnRepairDone(RepairDone& done);
  // A later stage of `model` (direct hand-off) failed a pass without its board being known lost
  // (it did not answer in time, or lost the stage in a reset): the model is lost as with a
  // board (jobs re-queued) and loaded again at once, waiting for any board not ready.
  void OnPipelineBroken(ModelRecord& model, const std::string& why);

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
  // Drops a replica; the last replica of a name also drops its stored load.
  void Remove(uint32_t replica);
  // Answers the client waiting for `model`'s unload, unless other replicas of its name are
  // still going away (the last one answers).
  void FinishUnload(const ModelRecord& model, Status status, const std::string& detail,
                    double elapsed_s);

  const DaemonConfig& config_;
  const Clock& clock_;
  JobStore& store_;
  BoardManager& boards_;
  Scheduler& scheduler_;
  StepLoop& steps_;
  OperationSink& operations_;
  std::unique_ptr<net::Socket>& loader_channel_;
  telemetry::DaemonMetrics& metrics_;
  std::map<uint32_t, std::unique_ptr<ModelRecord>> models_;  // By ModelRecord::replica.
  std::deque<uint32_t> load_queue_;  // Replicas waiting for their load to begin.
  uint32_t next_model_id_ = 1;
  uint32_t next_replica_ = 1;
};

}  // namespace wafer::host

// Models going away: unloads asked for, and models lost with a board or a PE (their running
// jobs re-queued, then a repair in place or a reload under a new id).
#include <algorithm>

#include "common/log/log.h"
#include "host/serving/model_manager.h"
#include "host/serving/step_loop.h"

namespace wafer::host {

void ModelManager::UnloadQuietly(const ModelRecord& model, uint32_t model_id) {
  for (uint32_t board : model.boards) {
    boards_.Send(board, std::make_unique<WorkerRequest>(
                            UnloadWork{0, "", model.name, model_id, /*report=*/false}));
  }
}

HostStatus ModelManager::BeginUnload(const std::string& name, int32_t board,
                                     const std::string& peer, uint64_t tag) {
  const std::vector<ModelRecord*> all = Replicas(name);
  std::vector<ModelRecord*> going;
  for (ModelRecord* model : all) {
    if (board < 0 || model->boards[0] == static_cast<uint32_t>(board)) going.push_back(model);
  }
  if (going.empty()) {
    return Error{StatusCode::kNotFound,
                 "model '" + name + "' is not loaded" +
                     (all.empty() ? "" : " on board " + std::to_string(board))};
  }
  for (const ModelRecord* model : going) {
    if (model->state != ModelState::kReady) {
      return Error{StatusCode::kFailedPrecondition,
                   "model '" + name + "' is " + ModelStateName(model->state) +
                       (all.size() > 1 ? " on board " + std::to_string(model->boards[0]) : "")};
    }
  }
  for (ModelRecord* model : going) {
    model->state = ModelState::kUnloading;
    model->unload_peer = peer;
    model->unload_tag = tag;
  }
  const bool others_stay = std::any_of(all.begin(), all.end(), [](const ModelRecord* m) {
    return m->state != ModelState::kUnloading;
  });
  if (!others_stay) steps_.FailQueued(name, ErrorCode::kModelNotReady, "model unloaded");
  return HostOk();
}

void ModelManager::SendUnloadWhenIdle(ModelRecord& model) {
  if (model.unload_sent || !scheduler_.RunOrder(model.name, model.replica).empty()) return;
  model.unload_sent = true;
  model.unloads_pending = static_cast<uint32_t>(model.boards.size());
  for (uint32_t index : model.boards) {
    boards_.Send(index, std::make_unique<WorkerRequest>(UnloadWork{
                            model.unload_tag, model.unload_peer, model.name, model.model_id}));
  }
}

void ModelManager::FinishUnload(const ModelRecord& model, Status status,
                                const std::string& detail, double elapsed_s) {
  for (const ModelRecord* other : Replicas(model.name)) {
    if (other != &model && other->state == ModelState::kUnloading &&
        other->unload_peer == model.unload_peer && other->unload_tag == model.unload_tag) {
      return;  // Going with the same request: the last of them answers.
    }
  }
  operations_.FinishOperation(model.unload_peer, model.unload_tag, status, detail, elapsed_s);
}

void ModelManager::OnUnloadDone(OperationDone& done) {
  // A split model is gone once every board has answered.
  ModelRecord* model = FindById(done.model_id);
  if (model == nullptr || model->state != ModelState::kUnloading) return;
  if (!done.status.ok() && model->unload_status.ok()) {
    model->unload_status = done.status;
    model->unload_detail = done.detail;
  }
  if (model->unloads_pending > 1) {
    --model->unloads_pending;
    return;
  }
  done.status = model->unload_status;
  if (!done.status.ok()) done.detail = model->unload_detail;
  FinishUnload(*model, done.status, done.detail, done.elapsed_s);
  if (Replicas(model->name).size() > 1) {
    // One replica of several: its stored load goes, the others' stay.
    store_.ModelReplicaRemoved(model->name, model->boards).IgnoreError();
  }
  Remove(model->replica);  // `model` is gone after this line.
  StartPendingLoads();  // Its rows are free.
}

void ModelManager::ResetBoard(uint32_t index, const std::string& peer, uint64_t tag) {
  // The reset wipes the board: its running jobs are re-queued and its models reloaded when it
  // is ready again (OnBoardLost, ReloadLostModels).
  Board& board = boards_.at(index);
  OnBoardLost(board);
  board.state = BoardState::kResetting;
  board.resetting = true;  // No steps until the reset completes.
  boards_.Send(index, std::make_unique<WorkerRequest>(ResetWork{tag, peer}));
}

void ModelManager::OnBoardLost(const Board& board) {
  // The board's SRAM can no longer be trusted to hold the models or the KV caches. Steps still
  // in flight come back from the worker (with results for the old model, ignored). The models
  // come back in ReloadLostModels once the board is ready.
  std::vector<ModelRecord*> lost;
  for (auto& [replica, model] : models_) {
    // A model being repaired on another of its boards is lost too: that repair cannot bring
    // back the stage this board held.
    if (model->Spans(board.index) && (model->serving() || model->repairing)) {
      lost.push_back(model.get());
    }
  }
  for (ModelRecord* model : lost) {
    steps_.BlameBoardLoss(*model, board.detail);
    LoseModel(*model, "lost with board " + std::to_string(board.index));
  }
}

void ModelManager::LoseModel(ModelRecord& model, const std::string& why) {
  // Whatever of it is still on a board (a split model's other stages, or weights a PE fault
  // damaged) is freed; a board that was reset has nothing left to free.
  UnloadQuietly(model, model.model_id);
  model.rows = RowBand{};
  if (model.state == ModelState::kUnloading) {
    // It was going away anyway: its last jobs cannot finish, and there is nothing to unload.
    const size_t ended =
        steps_.FinishRunning(model, ErrorCode::kModelNotReady, "model unloaded; " + why);
    log::Warn("models", "model {} (unloading) {}; {} jobs ended", model.name, why, ended);
    FinishUnload(model, OkStatus(), "model " + model.name + " unloaded (" + why + ")", 0);
    Remove(model.replica);  // `model` is gone after this line.
    return;
  }
  // Running jobs go back to the queue with their output so far as prefill: nothing accepted is
  // lost, and clients see the stream continue once the model is back.
  model.state = ModelState::kFailed;
  model.repairing = false;
  model.prepared.reset();
  const size_t requeued = steps_.RequeueRunning(model);
  scheduler_.CloseModel(model.name, model.replica);
  log::Warn("models", "model {} {}; {} jobs re-queued", model.name, why, requeued);
}

void ModelManager::RepairModel(ModelRecord& model, const Board& board, const std::string& why) {
  if (model.state == ModelState::kUnloading) {
    LoseModel(model, why);  // Going away anyway: not worth repairing. `model` is gone.
    return;
  }
  const auto at = std::find(model.boards.begin(), model.boards.end(), board.index);
  if (model.prepared == nullptr || at == model.boards.end()) {
    LoseModel(model, why);
    ReloadModel(model);
    return;
  }
  // Its jobs wait in the queue: the KV cache may be gone with the PE, so they are prefilled
  // again (every stage resets their slots) once the model is back.
  model.state = ModelState::kLoading;
  model.repairing = true;
  const size_t requeued = steps_.RequeueRunning(model);
  const auto stage = static_cast<uint32_t>(at - model.boards.begin());
  log::Warn("models", "model {} {}; repairing on board {}, {} jobs re-queued", model.name, why,
            board.index, requeued);
  boards_.Send(board.index, std::make_unique<WorkerRequest>(
                                RepairWork{model.model_id, stage, model.prepared}));
}

void ModelManager::OnRepairDone(RepairDone& done) {
  ModelRecord* model = FindById(done.model_id);
  if (model == nullptr || !model->repairing) return;
  model->repairing = false;
  if (!done.status.ok()) {
    // Whatever the board could not repair (reports lost, no spare left, a board gone), a full
    // reload can: it is placed again from scratch.
    model->state = ModelState::kReady;  // LoseModel takes a serving model off its boards.
    LoseModel(*model, "repair failed (" + done.detail + ")");
    ReloadModel(*model);
    return;
  }
  model->state = ModelState::kReady;
  log::Info("models", "model {} repaired on board {}: {} tensors, {} bytes re-staged in {:.3f} s",
            model->name, model->boards[done.stage], done.report.tensors, done.report.bytes,
            done.elapsed_s);
}

void ModelManager::ReloadModel(ModelRecord& model) {
  // The same request again, under a new id; it waits in the load queue for its boards.
  LoadRequest request;
  request.name = model.name;
  request.path = model.path;
  request.boards = model.boards;
  request.slots = model.slots;
  request.context_length = model.context_length;
  const uint32_t old_id = model.model_id;
  model.model_id = next_model_id_++;
  model.state = ModelState::kLoading;
  model.loading = ModelRecord::Loading{};
  model.loading.request = std::move(request);
  model.loading.reload = true;
  model.loading.replaces_model_id = old_id;  // Freed first, in case a board kept it.
  log::Info("models", "reloading {}", model.name);
  load_queue_.push_back(model.replica);
  StartPendingLoads();
}

void ModelManager::OnPipelineBroken(ModelRecord& model, const std::string& why) {
  const uint32_t replica = model.replica;
  LoseModel(model, why);  // May remove it (an unloading model).
  auto it = models_.find(replica);
  if (it != models_.end() && it->second->state == ModelState::kFailed) ReloadModel(*it->second);
}

void ModelManager::ReloadLostModels(const Board& board) {
  std::vector<ModelRecord*> failed;
  for (auto& [replica, model] : models_) {
    if (model->Spans(board.index) && model->state == ModelState::kFailed) {
      failed.push_back(model.get());
    }
  }
  for (ModelRecord* model : failed) ReloadModel(*model);
}

}  // namespace wafer::host

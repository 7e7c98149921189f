// Boards and models as they come and go: worker events, board state changes, a lost board or
// model (its running jobs re-queued) and the reload that brings the model back, load results.
#include <algorithm>
#include <cstdio>

#include "host/daemon/daemon.h"
#include "common/net/owned_channel.h"
#include "host/daemon/internal/daemon_records.h"

namespace wafer::host {
namespace {

BoardState ToBoardState(const BoardUpdate& u) {
  if (!u.online) return BoardState::kOffline;
  switch (u.boot_state) {
    case BoardBootState::kPowerOn: return BoardState::kResetting;
    case BoardBootState::kSelfTest:
    case BoardBootState::kVerifyImage:
    case BoardBootState::kRemap: return BoardState::kBooting;
    case BoardBootState::kReady: return BoardState::kReady;
    case BoardBootState::kFaulted: return BoardState::kFaulted;
  }
  return BoardState::kOffline;
}

}  // namespace

void Daemon::OnWorkerEvent(Board& board, WorkerEvent& event) {
  if (auto* step = std::get_if<StepDone>(&event)) return OnStepDone(board, *step);
  if (auto* prepared = std::get_if<PrepareDone>(&event)) return OnPrepareDone(*prepared);
  if (auto* load = std::get_if<LoadDone>(&event)) return OnLoadDone(*load);
  if (auto* op = std::get_if<OperationDone>(&event)) return OnOperationDone(board, *op);
  if (auto* update = std::get_if<BoardUpdate>(&event)) return OnBoardUpdate(board, *update);
  if (auto* logs = std::get_if<LogsDone>(&event)) return OnLogsDone(board, *logs);
  if (auto* geometry = std::get_if<GeometryDone>(&event)) return OnGeometryDone(board, *geometry);
  if (auto* p = std::get_if<LoadProgressEvent>(&event)) return OnLoadProgress(*p);
  if (auto* repair = std::get_if<RepairDone>(&event)) return OnRepairDone(*repair);
}

void Daemon::OnBoardUpdate(Board& board, const BoardUpdate& update) {
  BoardState previous = board.state;
  board.state = ToBoardState(update);
  board.heard = true;
  board.detail = update.detail;
  if (update.online) board.identity = update.identity;
  telemetry::BoardSeries& series =
      metrics_.Board(board.index, update.has_telemetry ? update.telemetry.region_temp_c.size() : 0);
  for (size_t i = 0; i < series.state.size(); ++i) {
    series.state[i]->Set(i == static_cast<size_t>(board.state) ? 1 : 0);
  }
  if (update.has_telemetry) {
    board.telemetry = update.telemetry;
    float hottest = 0;
    for (size_t i = 0; i < update.telemetry.region_temp_c.size(); ++i) {
      hottest = std::max(hottest, update.telemetry.region_temp_c[i]);
      series.region_temperature[i]->Set(update.telemetry.region_temp_c[i]);
    }
    series.max_temperature->Set(hottest);
    series.power->Set(update.telemetry.power_w);
    series.sram_used->Set(static_cast<double>(update.telemetry.sram_used_bytes));
    series.sram_capacity->Set(static_cast<double>(update.telemetry.sram_total_bytes));
  }
  if (previous != board.state) {
    std::fprintf(stderr, "waferd: board %u %s -> %s (%s)\n", board.index, BoardStateName(previous),
                 BoardStateName(board.state), board.detail.c_str());
    if (previous == BoardState::kReady) OnBoardLost(board);
    if (board.state == BoardState::kReady) ReloadLostModels(board);
    StartPendingLoads();  // Loads waiting for this board may go, or fail if it gave up.
  }
}

void Daemon::OnBoardLost(Board& board) {
  // The board's SRAM can no longer be trusted to hold the models or the KV caches. Steps still
  // in flight come back from the worker (with results for the old model, ignored) and are
  // counted then. The models come back in ReloadLostModels once the board is ready.
  std::vector<Model*> lost;
  for (auto& [name, model] : models_) {
    const bool spans = std::find(model->boards.begin(), model->boards.end(), board.index) !=
                       model->boards.end();
    // A model being repaired on another of its boards is lost too: that repair cannot bring
    // back the stage this board held.
    if (spans && (model->state == ModelState::kReady || model->state == ModelState::kUnloading ||
                  model->repairing)) {
      lost.push_back(model.get());
    }
  }
  for (Model* model : lost) LoseModel(*model, "lost with board " + std::to_string(board.index));
}

void Daemon::LoseModel(Model& model, const std::string& why) {
  // Whatever of it is still on a board (a split model's other stages, or weights a PE fault
  // damaged) is freed; a board that was reset has nothing left to free.
  UnloadQuietly(model, model.model_id);
  model.rows = RowBand{};
  if (model.state == ModelState::kUnloading) {
    // It was going away anyway: its last jobs cannot finish, and there is nothing to unload.
    std::vector<uint64_t> running(model.running.begin(), model.running.end());
    for (uint64_t id : running) {
      FinishJob(*jobs_.at(id), FinishReason::kError, ErrorCode::kModelNotReady,
                "model unloaded; " + why);
    }
    std::fprintf(stderr, "waferd: model %s (unloading) %s; %zu jobs ended\n", model.name.c_str(),
                 why.c_str(), running.size());
    FinishOperation(model.unload_peer, model.unload_tag, OkStatus(),
                    "model " + model.name + " unloaded (" + why + ")", 0);
    models_.erase(model.name);  // `model` is gone after this line.
    return;
  }
  // Running jobs go back to the queue with their output so far as prefill: nothing accepted is
  // lost, and clients see the stream continue once the model is back.
  model.state = ModelState::kFailed;
  model.repairing = false;
  model.prepared.reset();
  const size_t requeued = RequeueRunning(model);
  model.free_slots.clear();
  std::fprintf(stderr, "waferd: model %s %s; %zu jobs re-queued\n", model.name.c_str(),
               why.c_str(), requeued);
}

size_t Daemon::RequeueRunning(Model& model) {
  std::vector<uint64_t> requeue(model.running.begin(), model.running.end());
  size_t requeued = 0;
  for (uint64_t id : requeue) {
    Job& job = *jobs_.at(id);
    ReleaseSlot(job);
    job.in_flight = false;
    if (job.cancel_requested) {
      FinishJob(job, FinishReason::kCancelled);
      continue;
    }
    job.state = JobState::kQueued;
    job.prefill = job.prompt;
    job.prefill.insert(job.prefill.end(), job.output.begin(), job.output.end());
    job.prefill_fed = 0;
    policy_->Push(QueuedJob{job.id, job.model, job.tenant, 0, job.accepted_ns,
                            job.deadline_unix_ms});
    ++requeued;
  }
  return requeued;
}

void Daemon::RepairModel(Model& model, const Board& board, const std::string& why) {
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
  const size_t requeued = RequeueRunning(model);
  const auto stage = static_cast<uint32_t>(at - model.boards.begin());
  std::fprintf(stderr, "waferd: model %s %s; repairing on board %u, %zu jobs re-queued\n",
               model.name.c_str(), why.c_str(), board.index, requeued);
  net::SendOwned(boards_[board.index]->channel,
            std::make_unique<WorkerRequest>(RepairWork{model.model_id, stage, model.prepared}));
}

void Daemon::OnRepairDone(RepairDone& done) {
  Model* model = ModelById(done.model_id);
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
  std::fprintf(stderr,
               "waferd: model %s repaired on board %u: %u tensors, %llu bytes re-staged in "
               "%.3f s\n",
               model->name.c_str(), model->boards[done.stage], done.report.tensors,
               static_cast<unsigned long long>(done.report.bytes), done.elapsed_s);
}

void Daemon::ReloadModel(Model& model) {
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
  model.loading = Model::Loading{};
  model.loading.request = std::move(request);
  model.loading.reload = true;
  model.loading.replaces_model_id = old_id;  // Freed first, in case a board kept it.
  std::fprintf(stderr, "waferd: reloading %s\n", model.name.c_str());
  load_queue_.push_back(model.name);
  StartPendingLoads();
}

void Daemon::ReloadLostModels(Board& board) {
  std::vector<Model*> failed;
  for (auto& [name, model] : models_) {
    const bool spans = std::find(model->boards.begin(), model->boards.end(), board.index) !=
                       model->boards.end();
    if (spans && model->state == ModelState::kFailed) failed.push_back(model.get());
  }
  for (Model* model : failed) ReloadModel(*model);
}

void Daemon::OnOperationDone(Board& board, OperationDone& done) {
  switch (done.kind) {
    case OperationDone::Kind::kUnload: {
      // A split model is gone once every board has answered.
      Model* model = FindModel(done.name);
      if (model == nullptr) return;
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
      models_.erase(done.name);
      StartPendingLoads();  // Its rows are free.
      break;
    }
    case OperationDone::Kind::kReset:
      board.resetting = false;
      StartPendingLoads();  // Reloads wait for the reset to finish.
      break;
    case OperationDone::Kind::kFault:
      break;
  }
  FinishOperation(done.admin_peer, done.admin_tag, done.status, done.detail, done.elapsed_s);
}

}  // namespace wafer::host

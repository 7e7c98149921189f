// Boards and models as they come and go: worker events, board state changes, a lost board or
// model (its running jobs re-queued) and the reload that brings the model back, load results.
#include <algorithm>
#include <cstdio>

#include "host/daemon/daemon.h"
#include "host/daemon/inproc_channel.h"
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
  if (auto* load = std::get_if<LoadDone>(&event)) return OnLoadDone(*load);
  if (auto* op = std::get_if<OperationDone>(&event)) return OnOperationDone(board, *op);
  if (auto* update = std::get_if<BoardUpdate>(&event)) return OnBoardUpdate(board, *update);
  if (auto* logs = std::get_if<LogsDone>(&event)) return OnLogsDone(board, *logs);
  if (auto* geometry = std::get_if<GeometryDone>(&event)) return OnGeometryDone(board, *geometry);
  if (auto* p = std::get_if<LoadProgressEvent>(&event)) {
    if (p->admin_peer.empty()) return;
    double rate = p->bytes_per_second;
    double eta = rate > 0 ? static_cast<double>(p->bytes_total - p->bytes_done) / rate : 0;
    SendAdmin(p->admin_peer,
              LoadProgress{p->admin_tag, p->bytes_done, p->bytes_total, rate, eta, p->phase});
  }
}

void Daemon::OnBoardUpdate(Board& board, const BoardUpdate& update) {
  BoardState previous = board.state;
  board.state = ToBoardState(update);
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
  }
  if (previous != board.state) {
    std::fprintf(stderr, "waferd: board %u %s -> %s (%s)\n", board.index, BoardStateName(previous),
                 BoardStateName(board.state), board.detail.c_str());
    if (previous == BoardState::kReady) OnBoardLost(board);
    if (board.state == BoardState::kReady) ReloadLostModels(board);
  }
}

void Daemon::OnBoardLost(Board& board) {
  // The board's SRAM can no longer be trusted to hold the models or the KV caches. Steps still
  // in flight come back from the worker (with results for the old model, ignored) and are
  // counted then. The models come back in ReloadLostModels once the board is ready.
  std::vector<Model*> lost;
  for (auto& [name, model] : models_) {
    if (model->board == board.index &&
        (model->state == ModelState::kReady || model->state == ModelState::kUnloading)) {
      lost.push_back(model.get());
    }
  }
  for (Model* model : lost) LoseModel(*model, "lost with board " + std::to_string(board.index));
}

void Daemon::LoseModel(Model& model, const std::string& why) {
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
  std::vector<uint64_t> requeue(model.running.begin(), model.running.end());
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
  }
  model.free_slots.clear();
  std::fprintf(stderr, "waferd: model %s %s; %zu jobs re-queued\n", model.name.c_str(),
               why.c_str(), requeue.size());
}

void Daemon::ReloadModel(Model& model) {
  LoadWork work;
  work.name = model.name;
  work.path = model.path;
  work.slots = model.slots;
  work.context_length = model.context_length;
  work.replaces_model_id = model.model_id;  // Freed first, in case the board kept it.
  model.model_id = next_model_id_++;
  work.model_id = model.model_id;
  model.state = ModelState::kLoading;
  std::fprintf(stderr, "waferd: reloading %s onto board %u\n", model.name.c_str(), model.board);
  SendOwned(boards_[model.board]->channel, std::make_unique<WorkerRequest>(std::move(work)));
}

void Daemon::ReloadLostModels(Board& board) {
  for (auto& [name, model] : models_) {
    if (model->board == board.index && model->state == ModelState::kFailed) ReloadModel(*model);
  }
}

void Daemon::OnLoadDone(LoadDone& done) {
  Model* model = nullptr;
  for (auto& [name, m] : models_) {
    if (m->model_id == done.model_id) model = m.get();
  }
  if (model == nullptr) return;  // Removed meanwhile (board reset).
  if (!done.status.ok()) {
    std::fprintf(stderr, "waferd: loading %s failed: %s\n", model->name.c_str(), done.detail.c_str());
    FinishOperation(done.admin_peer, done.admin_tag, done.status, done.detail, done.elapsed_s);
    if (done.status.code() == StatusCode::kUnavailable && policy_->QueuedFor(model->name) > 0) {
      model->state = ModelState::kFailed;  // The board went away again: retry when it is back.
      return;
    }
    while (std::optional<uint64_t> id = policy_->PopNext(model->name)) {
      Job& job = *jobs_.at(*id);
      job.state = JobState::kRunning;  // Out of the queue already.
      FinishJob(job, FinishReason::kError, ErrorCode::kModelNotReady,
                "model could not be loaded: " + done.detail);
    }
    models_.erase(model->name);
    return;
  }
  model->state = ModelState::kReady;
  model->arch = done.arch;
  model->text = done.text;
  model->parameters = done.parameters;
  model->weight_bytes = done.weight_bytes;
  model->slots = done.slots;
  model->context_length = done.context_length;
  model->shape_only = done.shape_only;
  model->free_slots.clear();
  for (uint32_t s = done.slots; s > 0; --s) model->free_slots.push_back(s - 1);
  metrics_.load_bytes().Increment(static_cast<double>(done.weight_bytes));
  metrics_.Model(model->name);
  std::fprintf(stderr, "waferd: model %s ready on board %u (%.2f s, %llu bytes, %u slots x %u)\n",
               model->name.c_str(), model->board, done.elapsed_s,
               static_cast<unsigned long long>(done.weight_bytes), model->slots,
               model->context_length);
  FinishOperation(done.admin_peer, done.admin_tag, OkStatus(), "model " + model->name + " ready",
                  done.elapsed_s);
}

void Daemon::OnOperationDone(Board& board, OperationDone& done) {
  switch (done.kind) {
    case OperationDone::Kind::kUnload:
      models_.erase(done.name);
      break;
    case OperationDone::Kind::kReset:
      board.resetting = false;
      break;
    case OperationDone::Kind::kFault:
      break;
  }
  FinishOperation(done.admin_peer, done.admin_tag, done.status, done.detail, done.elapsed_s);
}

}  // namespace wafer::host

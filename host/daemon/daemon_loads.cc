// Loading models: a load waits in a queue until every board it spans is ready and no other load
// is being planned on them; then the first board's worker opens, verifies and plans it (inside
// rows free on all its boards), every board's worker stages its pipeline stage, and the model
// is ready once all stages are committed. A failed stage unloads the others: nothing
// half-loaded stays.
#include <algorithm>
#include <cstdio>

#include "host/daemon/daemon.h"
#include "common/net/owned_channel.h"
#include "host/daemon/internal/daemon_records.h"

namespace wafer::host {
namespace {

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

std::string BoardList(const std::vector<uint32_t>& boards) {
  std::string out;
  for (uint32_t b : boards) {
    if (!out.empty()) out += ',';
    out += std::to_string(b);
  }
  return out;
}

}  // namespace

Daemon::Model* Daemon::ModelById(uint32_t model_id) {
  for (auto& [name, m] : models_) {
    if (m->model_id == model_id) return m.get();
  }
  return nullptr;
}

void Daemon::StartLoad(LoadRequest request) {
  if (request.name.empty()) request.name = ModelNameFromPath(request.path);
  if (request.boards.empty()) {
    return FinishOperation(request.admin_peer, request.admin_tag, InvalidArgument(),
                           "no board given", 0);
  }
  for (size_t i = 0; i < request.boards.size(); ++i) {
    if (request.boards[i] >= boards_.size()) {
      return FinishOperation(request.admin_peer, request.admin_tag, InvalidArgument(),
                             "board " + std::to_string(request.boards[i]) + " is not configured",
                             0);
    }
    for (size_t j = 0; j < i; ++j) {
      if (request.boards[j] == request.boards[i]) {
        return FinishOperation(request.admin_peer, request.admin_tag, InvalidArgument(),
                               "board " + std::to_string(request.boards[i]) + " is listed twice",
                               0);
      }
    }
  }
  if (FindModel(request.name) != nullptr) {
    return FinishOperation(request.admin_peer, request.admin_tag, AlreadyExists(),
                           "a model named '" + request.name + "' is already loaded", 0);
  }
  auto model = std::make_unique<Model>();
  model->name = request.name;
  model->path = request.path;
  model->boards = request.boards;
  model->model_id = next_model_id_++;
  model->state = ModelState::kLoading;
  model->slots = request.slots;
  model->context_length = request.context_length;
  model->loading.request = std::move(request);
  load_queue_.push_back(model->name);
  models_.emplace(model->name, std::move(model));
  StartPendingLoads();
}

void Daemon::StartPendingLoads() {
  std::deque<std::string> waiting;
  while (!load_queue_.empty()) {
    const std::string name = std::move(load_queue_.front());
    load_queue_.pop_front();
    Model* model = FindModel(name);
    if (model == nullptr || model->state != ModelState::kLoading || model->loading.started) {
      continue;
    }
    if (!TryStartLoad(*model)) {
      if (FindModel(name) != nullptr) waiting.push_back(name);
    }
  }
  load_queue_ = std::move(waiting);
}

bool Daemon::TryStartLoad(Model& model) {
  // Every board must be ready. A first load on a board that gave up (offline, faulted) fails
  // now; a reload after a loss waits for the board to come back.
  for (uint32_t index : model.boards) {
    const Board& board = *boards_[index];
    if (board.preparing) return false;
    if (board.state == BoardState::kReady && !board.resetting) continue;
    const bool settled = board.heard && !board.resetting &&
                         (board.state == BoardState::kOffline ||
                          board.state == BoardState::kFaulted);
    if (settled && !model.loading.reload) {
      FailLoad(model, Unavailable(),
               "board " + std::to_string(index) + " is " + BoardStateName(board.state) +
                   (board.detail.empty() ? "" : " (" + board.detail + ")"));
      return false;
    }
    return false;
  }
  // Rows free on all of its boards: each board's gaps between the bands of the models it holds.
  PrepareWork work;
  work.model_id = model.model_id;
  work.name = model.name;
  work.path = model.path;
  work.slots = model.loading.request.slots;
  work.context_length = model.loading.request.context_length;
  work.boards = model.boards;
  std::vector<std::vector<RowBand>> free;
  for (size_t i = 0; i < model.boards.size(); ++i) {
    const uint32_t index = model.boards[i];
    const BoardGeometry g = GeometryFromIdentity(boards_[index]->identity);
    if (i == 0) {
      work.geometry = g;
    } else {
      work.geometry.fabric_width = std::min(work.geometry.fabric_width, g.fabric_width);
      work.geometry.fabric_height = std::min(work.geometry.fabric_height, g.fabric_height);
      work.geometry.sram_per_pe = std::min(work.geometry.sram_per_pe, g.sram_per_pe);
    }
    std::vector<RowBand> used;
    for (const auto& [name, other] : models_) {
      if (other.get() != &model && other->rows.rows != 0 &&
          std::find(other->boards.begin(), other->boards.end(), index) != other->boards.end()) {
        used.push_back(other->rows);
      }
    }
    free.push_back(FreeRowGaps(g.fabric_height, used));
  }
  work.gaps = CommonRowGaps(free);
  work.spread = config_.placement == "spread";
  model.loading.started = true;
  model.loading.start_ns = clock_.NowNanos();
  for (uint32_t index : model.boards) boards_[index]->preparing = true;
  net::SendOwned(boards_[model.boards[0]]->channel,
                 std::make_unique<WorkerRequest>(std::move(work)));
  return true;
}

void Daemon::OnPrepareDone(PrepareDone& done) {
  Model* model = ModelById(done.model_id);
  if (model == nullptr) return;
  for (uint32_t index : model->boards) boards_[index]->preparing = false;
  if (!done.status.ok()) {
    FailLoad(*model, done.status, done.detail);
    StartPendingLoads();
    return;
  }
  const Plan& plan = done.model->plan;
  if (plan.boards.size() != model->boards.size()) {
    FailLoad(*model, Internal(),
             "the plan uses " + std::to_string(plan.boards.size()) + " boards, not the " +
                 std::to_string(model->boards.size()) + " given");
    StartPendingLoads();
    return;
  }
  model->rows = done.rows;
  Model::Loading& loading = model->loading;
  loading.prepared = done.model;
  loading.stages_pending = static_cast<uint32_t>(model->boards.size());
  loading.stage_bytes_done.assign(model->boards.size(), 0);
  for (uint32_t stage = 0; stage < model->boards.size(); ++stage) {
    StageLoadWork work{model->model_id, stage, loading.replaces_model_id, done.model};
    net::SendOwned(boards_[model->boards[stage]]->channel,
              std::make_unique<WorkerRequest>(std::move(work)));
  }
  std::fprintf(stderr, "waferd: %s planned on board%s %s, rows %u..%u\n", model->name.c_str(),
               model->pipelined() ? "s" : "", BoardList(model->boards).c_str(), done.rows.first,
               done.rows.end());
  StartPendingLoads();  // Its rows are known now: loads waiting on these boards may go.
}

void Daemon::OnLoadProgress(const LoadProgressEvent& progress) {
  Model* model = ModelById(progress.model_id);
  if (model == nullptr || model->state != ModelState::kLoading) return;
  Model::Loading& loading = model->loading;
  if (progress.stage >= loading.stage_bytes_done.size() || loading.prepared == nullptr) return;
  loading.stage_bytes_done[progress.stage] = progress.bytes_done;
  if (loading.request.admin_peer.empty()) return;
  uint64_t done = 0;
  for (uint64_t b : loading.stage_bytes_done) done += b;
  const ModelSource& source = loading.prepared->source;
  // A split model with tied embeddings stages the embedding twice.
  const uint64_t total = source.shape_only ? 0 : loading.prepared->plan.weight_bytes;
  const double rate = static_cast<double>(done) /
                      std::max(1e-9, Seconds(clock_.NowNanos() - loading.start_ns));
  const double eta = rate > 0 && total > done ? static_cast<double>(total - done) / rate : 0;
  SendAdmin(loading.request.admin_peer, LoadProgress{loading.request.admin_tag, done, total, rate,
                                                     eta, "transferring"});
}

void Daemon::OnLoadDone(LoadDone& done) {
  Model* model = ModelById(done.model_id);
  if (model == nullptr || model->state != ModelState::kLoading) return;
  Model::Loading& loading = model->loading;
  if (done.stage >= model->boards.size() || loading.stages_pending == 0) return;
  --loading.stages_pending;
  if (!done.status.ok() && loading.status.ok()) {
    loading.status = done.status;
    loading.detail = done.detail;
  }
  if (loading.stages_pending > 0) return;
  const double elapsed = Seconds(clock_.NowNanos() - loading.start_ns);
  if (!loading.status.ok()) {
    // Unload the stages that made it, so nothing half-loaded stays (the others answer
    // NOT_FOUND, which nobody waits for).
    UnloadQuietly(*model, model->model_id);
    FailLoad(*model, loading.status, loading.detail);
    StartPendingLoads();
    return;
  }
  const PreparedModel& prepared = *loading.prepared;
  const ModelSource& source = prepared.source;
  model->state = ModelState::kReady;
  model->arch = source.arch;
  model->text = source.text;
  model->parameters = source.parameters;
  model->weight_bytes = source.weight_bytes();
  model->slots = prepared.slots;
  model->context_length = prepared.context_length;
  model->shape_only = source.shape_only;
  model->free_slots.clear();
  for (uint32_t s = model->slots; s > 0; --s) model->free_slots.push_back(s - 1);
  metrics_.load_bytes().Increment(static_cast<double>(model->weight_bytes));
  metrics_.Model(model->name);
  std::fprintf(stderr,
               "waferd: model %s ready on board%s %s (%.2f s, %llu bytes, %u slots x %u)\n",
               model->name.c_str(), model->pipelined() ? "s" : "",
               BoardList(model->boards).c_str(), elapsed,
               static_cast<unsigned long long>(model->weight_bytes), model->slots,
               model->context_length);
  const LoadRequest request = loading.request;
  model->prepared = loading.prepared;  // For repairs after a PE fault.
  model->loading = Model::Loading{};
  FinishOperation(request.admin_peer, request.admin_tag, OkStatus(),
                  "model " + model->name + " ready", elapsed);
  StartPendingLoads();
}

void Daemon::FailLoad(Model& model, Status status, const std::string& detail) {
  std::fprintf(stderr, "waferd: loading %s failed: %s\n", model.name.c_str(), detail.c_str());
  const LoadRequest request = model.loading.request;
  const double elapsed =
      model.loading.started ? Seconds(clock_.NowNanos() - model.loading.start_ns) : 0;
  model.rows = RowBand{};
  FinishOperation(request.admin_peer, request.admin_tag, status, detail, elapsed);
  if (status.code() == StatusCode::kUnavailable && policy_->QueuedFor(model.name) > 0) {
    // A board went away again: its jobs wait, and the load is retried when it is back.
    model.state = ModelState::kFailed;
    model.loading = Model::Loading{};
    return;
  }
  while (std::optional<uint64_t> id = policy_->PopNext(model.name)) {
    Job& job = *jobs_.at(*id);
    job.state = JobState::kRunning;  // Out of the queue already.
    FinishJob(job, FinishReason::kError, ErrorCode::kModelNotReady,
              "model could not be loaded: " + detail);
  }
  models_.erase(model.name);  // `model` is gone after this line.
}

void Daemon::UnloadQuietly(const Model& model, uint32_t model_id) {
  for (uint32_t board : model.boards) {
    net::SendOwned(boards_[board]->channel,
              std::make_unique<WorkerRequest>(
                  UnloadWork{0, "", model.name, model_id, /*report=*/false}));
  }
}

}  // namespace wafer::host

// Loading and unloading models: a load waits in a queue until every board it spans is ready and
// no other load is being planned on them; then the loader thread opens, verifies and plans it
// (inside rows free on all its boards), every board's worker stages its pipeline stage, and the
// model is ready once all stages are committed. A failed stage unloads the others: nothing
// half-loaded stays.
#include <algorithm>

#include "common/log/log.h"
#include "common/net/owned_channel.h"
#include "host/serving/model_manager.h"
#include "host/serving/step_loop.h"

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

// Whether the boards of a split model can hand hidden states to each other: all embedded (one
// ZeroMQ context, so each reaches the next one's inproc:// endpoint), or all wafer-sim processes
// on plaintext links (a board connects to the next one's endpoint as waferd does; a CURVE link
// admits only waferd's key, which a board does not hold).
bool BoardsReachEachOther(const DaemonConfig& config, const std::vector<uint32_t>& boards) {
  size_t embedded = 0;
  for (uint32_t index : boards) {
    const BoardConfig& board = config.boards[index];
    if (board.embedded()) {
      ++embedded;
    } else if (!board.curve_public_key.empty()) {
      return false;
    }
  }
  return embedded == 0 || embedded == boards.size();
}

}  // namespace

ModelManager::ModelManager(const DaemonConfig& config, const Clock& clock, JobStore& store,
                           BoardManager& boards, Scheduler& scheduler, StepLoop& steps,
                           OperationSink& operations,
                           std::unique_ptr<net::Socket>& loader_channel,
                           telemetry::DaemonMetrics& metrics)
    : config_(config),
      clock_(clock),
      store_(store),
      boards_(boards),
      scheduler_(scheduler),
      steps_(steps),
      operations_(operations),
      loader_channel_(loader_channel),
      metrics_(metrics) {}

std::vector<ModelRecord*> ModelManager::Replicas(const std::string& name) {
  std::vector<ModelRecord*> out;
  for (auto& [replica, m] : models_) {
    if (m->name == name) out.push_back(m.get());
  }
  return out;
}

ModelRecord* ModelManager::FindById(uint32_t model_id) {
  for (auto& [replica, m] : models_) {
    if (m->model_id == model_id) return m.get();
  }
  return nullptr;
}

ModelRecord* ModelManager::FindReplica(uint32_t replica) {
  auto it = models_.find(replica);
  return it == models_.end() ? nullptr : it->second.get();
}

bool ModelManager::TakesJobs(const ModelRecord& model) const {
  if (model.state != ModelState::kReady) return false;
  for (uint32_t index : model.boards) {
    if (boards_.at(index).drain.drained()) return false;
  }
  return true;
}

void ModelManager::Remove(uint32_t replica) {
  auto it = models_.find(replica);
  if (it == models_.end()) return;
  const std::string name = it->second->name;
  scheduler_.CloseModel(name, replica);
  models_.erase(it);
  // The stored loads go with the last replica (an unload takes every replica). A replica that
  // goes while others stay (its first load failed) was never stored; one whose reload failed
  // keeps its row until the name goes, and a restart tries it again.
  if (Replicas(name).empty()) {
    store_.ModelRemoved(name).IgnoreError();  // NOT_FOUND: it never finished loading.
  }
}

void ModelManager::StartLoad(LoadRequest request) {
  if (request.name.empty()) request.name = ModelNameFromPath(request.path);
  const auto refuse = [&](Status status, const std::string& why) {
    operations_.FinishOperation(request.admin_peer, request.admin_tag, status, why, 0);
  };
  if (request.boards.empty()) return refuse(InvalidArgument(), "no board given");
  for (size_t i = 0; i < request.boards.size(); ++i) {
    const uint32_t index = request.boards[i];
    if (!boards_.has(index)) {
      return refuse(InvalidArgument(), "board " + std::to_string(index) + " is not configured");
    }
    for (size_t j = 0; j < i; ++j) {
      if (request.boards[j] == index) {
        return refuse(InvalidArgument(), "board " + std::to_string(index) + " is listed twice");
      }
    }
    const BoardDrain& drain = boards_.at(index).drain;
    if (drain.drained()) {
      return refuse(FailedPrecondition(), "board " + std::to_string(index) +
                                              " is drained: " + drain.Describe());
    }
  }
  // A name already loaded gets another replica: the same checkpoint on other boards.
  for (const ModelRecord* other : Replicas(request.name)) {
    if (other->path != request.path) {
      return refuse(AlreadyExists(), "a model named '" + request.name +
                                         "' is already loaded from " + other->path + ", not " +
                                         request.path);
    }
    if (other->state == ModelState::kUnloading) {
      return refuse(FailedPrecondition(), "model '" + request.name + "' is being unloaded");
    }
    for (uint32_t index : request.boards) {
      if (other->Spans(index)) {
        return refuse(AlreadyExists(), "model '" + request.name + "' is already loaded on board " +
                                           std::to_string(index));
      }
    }
  }
  auto model = std::make_unique<ModelRecord>();
  model->name = request.name;
  model->replica = next_replica_++;
  model->path = request.path;
  model->boards = request.boards;
  model->model_id = next_model_id_++;
  model->state = ModelState::kLoading;
  model->slots = request.slots;
  model->context_length = request.context_length;
  model->loading.request = std::move(request);
  load_queue_.push_back(model->replica);
  models_.emplace(model->replica, std::move(model));
  StartPendingLoads();
}

void ModelManager::StartPendingLoads() {
  std::deque<uint32_t> waiting;
  while (!load_queue_.empty()) {
    const uint32_t replica = load_queue_.front();
    load_queue_.pop_front();
    ModelRecord* model = FindReplica(replica);
    if (model == nullptr || model->state != ModelState::kLoading || model->loading.started) {
      continue;
    }
    if (!TryStartLoad(*model)) {
      if (FindReplica(replica) != nullptr) waiting.push_back(replica);
    }
  }
  load_queue_ = std::move(waiting);
}

bool ModelManager::TryStartLoad(ModelRecord& model) {
  // Every board must be ready. A first load on a board that gave up (offline, faulted) fails
  // now; a reload after a loss waits for the board to come back.
  for (uint32_t index : model.boards) {
    const Board& board = boards_.at(index);
    if (board.preparing) return false;
    if (board.runs_steps()) continue;
    const bool settled = board.heard && !board.resetting &&
                         (board.state == BoardState::kOffline ||
                          board.state == BoardState::kFaulted);
    if (settled && !model.loading.reload) {
      FailLoad(model, Unavailable(),
               "board " + std::to_string(index) + " is " + BoardStateName(board.state) +
                   (board.detail.empty() ? "" : " (" + board.detail + ")"));
    }
    return false;
  }
  // Rows free on all of its boards: each board's gaps between the bands of the models it holds.
  auto work = std::make_unique<PrepareWork>();
  work->model_id = model.model_id;
  work->name = model.name;
  work->path = model.path;
  work->slots = model.loading.request.slots;
  work->context_length = model.loading.request.context_length;
  work->boards = model.boards;
  std::vector<std::vector<RowBand>> free;
  for (size_t i = 0; i < model.boards.size(); ++i) {
    const uint32_t index = model.boards[i];
    const BoardGeometry g = GeometryFromIdentity(boards_.at(index).identity);
    if (i == 0) {
      work->geometry = g;
    } else {
      work->geometry.fabric_width = std::min(work->geometry.fabric_width, g.fabric_width);
      work->geometry.fabric_height = std::min(work->geometry.fabric_height, g.fabric_height);
      work->geometry.sram_per_pe = std::min(work->geometry.sram_per_pe, g.sram_per_pe);
    }
    std::vector<RowBand> used;
    for (const auto& [replica, other] : models_) {
      if (other.get() != &model && other->rows.rows != 0 && other->Spans(index)) {
        used.push_back(other->rows);
      }
    }
    free.push_back(FreeRowGaps(g.fabric_height, used));
  }
  work->gaps = CommonRowGaps(free);
  work->spread = config_.placement == "spread";
  model.loading.started = true;
  model.loading.start_ns = clock_.NowNanos();
  for (uint32_t index : model.boards) boards_.at(index).preparing = true;
  if (!net::SendOwned(*loader_channel_, std::move(work))) {
    for (uint32_t index : model.boards) boards_.at(index).preparing = false;
    FailLoad(model, Internal(), "the loader thread is gone");
  }
  return true;
}

void ModelManager::OnPrepareDone(PrepareDone& done) {
  ModelRecord* model = FindById(done.model_id);
  if (model == nullptr) return;
  for (uint32_t index : model->boards) boards_.at(index).preparing = false;
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
  ModelRecord::Loading& loading = model->loading;
  loading.prepared = done.model;
  loading.stages_pending = static_cast<uint32_t>(model->boards.size());
  loading.stage_bytes_done.assign(model->boards.size(), 0);
  model->direct_handoff = model->pipelined() && config_.pipeline_handoff == "direct" &&
                          BoardsReachEachOther(config_, model->boards);
  for (uint32_t stage = 0; stage < model->boards.size(); ++stage) {
    StageLoadWork work{model->model_id, stage, loading.replaces_model_id, done.model, {}};
    if (model->direct_handoff && stage + 1 < model->boards.size()) {
      // The board waits for the next one's answer for less than the host waits for it, so a
      // stage that stops answering fails the Step before the first board's link times out.
      const BoardConfig& next = config_.boards[model->boards[stage + 1]];
      work.next_stage = NextStage{next.endpoint, static_cast<uint32_t>(model->boards.size()),
                                  std::max<uint32_t>(100, next.timeout_ms / 2)};
    }
    boards_.Send(model->boards[stage], std::make_unique<WorkerRequest>(std::move(work)));
  }
  log::Info("models", "{} planned on board{} {}, rows {}..{}{}", model->name,
            model->pipelined() ? "s" : "", BoardList(model->boards), done.rows.first,
            done.rows.end(),
            !model->pipelined()        ? ""
            : model->direct_handoff ? " (boards hand hidden states to each other)"
                                    : " (waferd relays between the boards)");
  StartPendingLoads();  // Its rows are known now: loads waiting on these boards may go.
}

void ModelManager::OnLoadProgress(const LoadProgressEvent& progress) {
  ModelRecord* model = FindById(progress.model_id);
  if (model == nullptr || model->state != ModelState::kLoading) return;
  ModelRecord::Loading& loading = model->loading;
  if (progress.stage >= loading.stage_bytes_done.size() || loading.prepared == nullptr) return;
  loading.stage_bytes_done[progress.stage] = progress.bytes_done;
  if (loading.request.admin_peer.empty()) return;
  uint64_t done = 0;
  for (uint64_t b : loading.stage_bytes_done) done += b;
  // A split model with tied embeddings stages the embedding twice.
  const uint64_t total = loading.prepared->source.shape_only ? 0 : loading.prepared->plan.weight_bytes;
  const double rate = static_cast<double>(done) /
                      std::max(1e-9, Seconds(clock_.NowNanos() - loading.start_ns));
  const double eta = rate > 0 && total > done ? static_cast<double>(total - done) / rate : 0;
  operations_.SendProgress(loading.request.admin_peer,
                           LoadProgress{loading.request.admin_tag, done, total, rate, eta,
                                        "transferring"});
}

void ModelManager::OnLoadDone(LoadDone& done) {
  ModelRecord* model = FindById(done.model_id);
  if (model == nullptr || model->state != ModelState::kLoading) return;
  ModelRecord::Loading& loading = model->loading;
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
  scheduler_.OpenModel(model->name, model->replica, model->slots);
  metrics_.load_bytes().Increment(static_cast<double>(model->weight_bytes));
  metrics_.Model(model->name);
  log::Info("models", "model {} ready on board{} {} ({:.2f} s, {} bytes, {} slots x {})",
            model->name, model->pipelined() ? "s" : "", BoardList(model->boards), elapsed,
            model->weight_bytes, model->slots, model->context_length);
  const LoadRequest request = loading.request;
  // One stored load per replica: a restart loads every replica again.
  store_.ModelLoaded(StoredModelLoad{model->name, request.path, model->boards, request.slots,
                                     request.context_length})
      .IgnoreError();  // A write the disk refuses now is kept and retried.
  // The boards hold the weights now: the mapped checkpoint's pages leave the daemon's resident
  // memory (a repair after a PE fault reads them again).
  ReleaseResidentPages(prepared.source);
  model->prepared = loading.prepared;  // For repairs after a PE fault.
  model->loading = ModelRecord::Loading{};
  operations_.FinishOperation(request.admin_peer, request.admin_tag, OkStatus(),
                              "model " + model->name + " ready", elapsed);
  StartPendingLoads();
}

void ModelManager::FailLoad(ModelRecord& model, Status status, const std::string& detail) {
  log::Error("models", "loading {} failed: {}", model.name, detail);
  const LoadRequest request = model.loading.request;
  const double elapsed =
      model.loading.started ? Seconds(clock_.NowNanos() - model.loading.start_ns) : 0;
  model.rows = RowBand{};
  operations_.FinishOperation(request.admin_peer, request.admin_tag, status, detail, elapsed);
  if (status.code() == StatusCode::kUnavailable && scheduler_.QueuedFor(model.name) > 0) {
    // A board went away again: its jobs wait, and the load is retried when it is back.
    model.state = ModelState::kFailed;
    model.loading = ModelRecord::Loading{};
    return;
  }
  // Queued jobs end only with the last replica: another one may still serve them.
  if (Replicas(model.name).size() == 1) {
    steps_.FailQueued(model.name, ErrorCode::kModelNotReady,
                      "model could not be loaded: " + detail);
  }
  Remove(model.replica);  // `model` is gone after this line.
}

}  // namespace wafer::host

// The step loop: admission of queued jobs into KV-cache slots, Step planning per board
// (continuous batching), token delivery and job completion.
#include <algorithm>
#include <cstdio>

#include "host/daemon/daemon.h"
#include "host/daemon/inproc_channel.h"
#include "host/daemon/internal/daemon_records.h"

namespace wafer::host {
namespace {

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

ErrorCode ToErrorCode(Status s) {
  switch (s.code()) {
    case StatusCode::kOk: return ErrorCode::kNone;
    case StatusCode::kInvalidArgument: return ErrorCode::kInvalidArgument;
    case StatusCode::kNotFound: return ErrorCode::kUnknownModel;
    case StatusCode::kAlreadyExists: return ErrorCode::kAlreadyExists;
    case StatusCode::kResourceExhausted: return ErrorCode::kResourceExhausted;
    case StatusCode::kFailedPrecondition: return ErrorCode::kFailedPrecondition;
    case StatusCode::kUnavailable: return ErrorCode::kBoardUnavailable;
    case StatusCode::kDataLoss: return ErrorCode::kDataLoss;
    case StatusCode::kOutOfRange: return ErrorCode::kOutOfRange;
    case StatusCode::kPermissionDenied: return ErrorCode::kPermissionDenied;
    case StatusCode::kDeadlineExceeded: return ErrorCode::kDeadlineExceeded;
    case StatusCode::kCancelled: return ErrorCode::kCancelled;
    case StatusCode::kUnimplemented: return ErrorCode::kUnimplemented;
    default: return ErrorCode::kInternal;
  }
}

BoardState ToBoardState(const BoardUpdate& u) {
  if (!u.online) return BoardState::kOffline;
  switch (u.boot_state) {
    case BoardBootState::kPowerOn: return BoardState::kResetting;
    case BoardBootState::kSelfTest: return BoardState::kBooting;
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

void Daemon::OnStepDone(Board& board, StepDone& done) {
  if (board.steps_in_flight > 0) --board.steps_in_flight;
  const int64_t now = clock_.NowNanos();
  Model* model = nullptr;
  for (auto& [name, m] : models_) {
    if (m->model_id == done.model_id) model = m.get();
  }
  std::vector<Job*> jobs;
  for (uint64_t id : done.job_ids) {
    auto it = jobs_.find(id);
    Job* job = it == jobs_.end() ? nullptr : it->second.get();
    // A job re-queued after a board loss may already be part of a newer step: leave it be.
    if (job != nullptr && job->step_serial != done.serial) job = nullptr;
    if (job != nullptr) job->in_flight = false;
    jobs.push_back(job);
  }
  // Results for a model that lost its board (or was removed) are void: its jobs were re-queued
  // by OnBoardLost and will be recomputed.
  if (model == nullptr ||
      (model->state != ModelState::kReady && model->state != ModelState::kUnloading)) {
    return;
  }
  if (!done.status.ok()) {
    if (done.status.code() == StatusCode::kUnavailable) {
      OnBoardLost(board);  // The worker reports the board offline too; either order works.
      return;
    }
    if (done.status.code() == StatusCode::kDataLoss) {
      // Some of the model's weights sat on a PE that failed (the board remapped it to a spare
      // and reports which tensors in ReadFaults). Re-staging everything is the simple, safe
      // repair: the jobs wait in the queue meanwhile.
      LoseModel(*model, "lost weights to a failed PE (" + done.detail + ")");
      ReloadModel(*model);
      return;
    }
    for (Job* job : jobs) {
      if (job != nullptr && !job->finished && job->state == JobState::kRunning) {
        FinishJob(*job, FinishReason::kError, ToErrorCode(done.status), "step failed: " + done.detail);
      }
    }
    return;
  }
  ++board.steps;
  telemetry::BoardSeries& series = metrics_.Board(board.index, 0);
  series.steps->Increment();
  series.device_seconds->Increment(Seconds(done.outcome.device_time.total_ns));
  const size_t n = std::min(jobs.size(), done.outcome.results.size());
  for (size_t i = 0; i < n; ++i) {
    Job* job = jobs[i];
    if (job == nullptr || job->finished || job->state != JobState::kRunning) continue;
    SeqResult& r = done.outcome.results[i];
    job->device_ns += done.outcome.device_time.total_ns;
    if (job->cancel_requested) {
      FinishJob(*job, FinishReason::kCancelled);
      continue;
    }
    ApplyTokens(*job, *model, r.tokens, now);
    if (job->finished) continue;
    if (!r.status.ok()) {
      if (r.status.code() == StatusCode::kResourceExhausted) {
        FinishJob(*job, FinishReason::kContextFull);
      } else {
        FinishJob(*job, FinishReason::kError, ToErrorCode(r.status), "board refused the sequence");
      }
    }
  }
}

void Daemon::ApplyTokens(Job& job, Model& model, const std::vector<uint32_t>& tokens, int64_t now) {
  if (tokens.empty()) return;
  size_t room = job.max_tokens - job.output.size();
  size_t take = std::min(room, tokens.size());
  bool stopped = false;
  for (size_t i = 0; i < take; ++i) {
    if (std::find(job.stop_tokens.begin(), job.stop_tokens.end(), tokens[i]) != job.stop_tokens.end()) {
      take = i + 1;
      stopped = true;
      break;
    }
  }
  if (take == 0) return;
  telemetry::ModelSeries& series = *job.series;
  if (job.first_token_ns == 0) {
    job.first_token_ns = now;
    series.ttft->Observe(Seconds(now - job.accepted_ns));
  } else {
    series.inter_token->Observe(Seconds(now - job.last_token_ns) / static_cast<double>(take));
  }
  job.last_token_ns = now;
  TokenChunk chunk;
  chunk.job_id = job.id;
  chunk.seq = static_cast<uint32_t>(job.chunk_starts.size());
  chunk.first_token_index = static_cast<uint32_t>(job.output.size());
  chunk.tokens.assign(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(take));
  if (job.want_text && model.text != nullptr) {
    model.text->DecodeIncremental(chunk.tokens, &job.text_pending, &chunk.text);
  }
  job.chunk_starts.push_back(chunk.first_token_index);
  job.chunk_texts.push_back(chunk.text);
  job.output.insert(job.output.end(), chunk.tokens.begin(), chunk.tokens.end());
  tokens_generated_ += take;
  series.tokens->Increment(static_cast<double>(take));
  SendJob(job.peer, chunk);
  if (stopped) {
    FinishJob(job, FinishReason::kStopToken);
  } else if (job.output.size() >= job.max_tokens) {
    FinishJob(job, FinishReason::kLength);
  }
}

void Daemon::FinishJob(Job& job, FinishReason reason, ErrorCode error, std::string detail) {
  if (job.finished) return;
  const int64_t now = clock_.NowNanos();
  if (job.state == JobState::kQueued) policy_->Remove(job.id);
  ReleaseSlot(job);
  JobFinished f;
  f.job_id = job.id;
  f.reason = reason;
  f.prompt_tokens = static_cast<uint32_t>(job.prompt.size());
  f.completion_tokens = static_cast<uint32_t>(job.output.size());
  f.timings.queued_ns = (job.first_step_ns != 0 ? job.first_step_ns : now) - job.accepted_ns;
  f.timings.ttft_ns = job.first_token_ns != 0 ? job.first_token_ns - job.accepted_ns : 0;
  f.timings.total_ns = now - job.accepted_ns;
  f.timings.device_ns = job.device_ns;
  f.chunks = static_cast<uint32_t>(job.chunk_starts.size());
  f.error_code = error;
  f.detail = std::move(detail);
  job.finished = f;
  job.state = JobState::kFinished;
  job.in_flight = false;
  ++jobs_finished_;
  metrics_.Finished(job.model, FinishReasonName(reason)).Increment();
  SendJob(job.peer, f);
  finished_order_.push_back(job.id);
  ForgetOldJobs();
}

void Daemon::ReleaseSlot(Job& job) {
  if (job.slot < 0) return;
  if (Model* model = FindModel(job.model)) {
    model->free_slots.push_back(static_cast<uint32_t>(job.slot));
    auto it = std::find(model->running.begin(), model->running.end(), job.id);
    if (it != model->running.end()) model->running.erase(it);
  }
  job.slot = -1;
  --jobs_running_;
}

void Daemon::ForgetOldJobs() {
  while (finished_order_.size() > config_.finished_job_retention) {
    uint64_t id = finished_order_.front();
    finished_order_.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    if (!it->second->idempotency_key.empty()) {
      idempotency_.erase(it->second->tenant + '\0' + it->second->idempotency_key);
    }
    jobs_.erase(it);
  }
}

void Daemon::ExpireDeadlines() {
  // Only jobs that carry a deadline are indexed, soonest first: the common case costs nothing.
  const int64_t now_ms = UnixMillisNow();
  while (!deadlines_.empty() && static_cast<int64_t>(deadlines_.begin()->first) <= now_ms) {
    auto [deadline, id] = *deadlines_.begin();
    deadlines_.erase(deadlines_.begin());
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second->finished) continue;
    Job& job = *it->second;
    if (job.in_flight) {
      deadlines_.emplace(deadline, id);  // Its step returns soon; look again then.
      return;
    }
    FinishJob(job, FinishReason::kDeadlineExceeded);
  }
}

void Daemon::AdmitQueued(Model& model) {
  while (!model.free_slots.empty() && model.running.size() < config_.max_batch) {
    std::optional<uint64_t> next = policy_->PopNext(model.name);
    if (!next) return;
    Job& job = *jobs_.at(*next);
    job.state = JobState::kRunning;
    job.slot = model.free_slots.back();
    model.free_slots.pop_back();
    model.running.push_back(job.id);
    ++jobs_running_;
  }
}

bool Daemon::PlanStep(Board& board, Model& model) {
  AdmitQueued(model);
  // With several steps in flight per board the running jobs are split between them, so the
  // board computes one group while this loop streams the previous group's tokens.
  const size_t per_step = std::min<size_t>(
      config_.max_batch,
      (model.running.size() + config_.steps_in_flight - 1) / config_.steps_in_flight);
  auto work = std::make_unique<WorkerRequest>(StepWork{});
  StepWork& step = std::get<StepWork>(*work);
  step.serial = next_step_serial_++;
  step.model_id = model.model_id;
  const int64_t now = clock_.NowNanos();
  std::deque<uint64_t> waiting;  // Running jobs left out of this step keep their order.
  for (uint64_t id : model.running) {
    Job& job = *jobs_.at(id);
    if (job.in_flight || step.seqs.size() >= per_step) {
      waiting.push_back(id);
      continue;
    }
    SeqStep seq;
    seq.slot = static_cast<uint32_t>(job.slot);
    seq.sampling = job.sampling;
    seq.stop_tokens = job.stop_tokens;
    const uint32_t remaining = job.max_tokens - static_cast<uint32_t>(job.output.size());
    if (job.prefill_fed < job.prefill.size()) {
      seq.reset = job.prefill_fed == 0;
      uint32_t n = std::min<uint32_t>(config_.prefill_chunk_tokens,
                                      static_cast<uint32_t>(job.prefill.size()) - job.prefill_fed);
      seq.input_tokens.assign(job.prefill.begin() + job.prefill_fed,
                              job.prefill.begin() + job.prefill_fed + n);
      job.prefill_fed += n;
      // The last prefill chunk yields the next token at once: time to first token matters.
      seq.generate = job.prefill_fed == job.prefill.size() ? 1 : 0;
    } else {
      seq.input_tokens.push_back(job.output.back());
      seq.generate = std::min(config_.decode_tokens_per_step, remaining);
    }
    if (job.first_step_ns == 0) {
      job.first_step_ns = now;
      job.series->queue_wait->Observe(Seconds(now - job.accepted_ns));
    }
    job.in_flight = true;
    job.step_serial = step.serial;
    step.job_ids.push_back(job.id);
    step.seqs.push_back(std::move(seq));
  }
  if (step.seqs.empty()) return false;
  // The jobs just planned go to the back, so every running job gets its turn.
  waiting.insert(waiting.end(), step.job_ids.begin(), step.job_ids.end());
  model.running = std::move(waiting);
  ++board.steps_in_flight;
  if (!SendOwned(board.channel, std::move(work))) {
    // The worker is gone (shutdown); nothing will answer this step.
    --board.steps_in_flight;
    std::fprintf(stderr, "waferd: board %u worker channel refused a step\n", board.index);
    return false;
  }
  return true;
}

void Daemon::ScheduleSteps() {
  for (auto& board : boards_) {
    if (board->state != BoardState::kReady || board->resetting) continue;
    std::vector<Model*> ready;
    for (auto& [name, model] : models_) {
      if (model->board == board->index &&
          (model->state == ModelState::kReady || model->state == ModelState::kUnloading)) {
        ready.push_back(model.get());
      }
    }
    bool planned = true;
    while (planned && board->steps_in_flight < config_.steps_in_flight) {
      planned = false;
      for (size_t k = 0; k < ready.size() && !planned; ++k) {
        Model& model = *ready[(board->next_model + k) % ready.size()];
        if (model.state == ModelState::kUnloading) {
          if (model.running.empty() && !model.unload_sent) {
            auto work = std::make_unique<WorkerRequest>(
                UnloadWork{model.unload_tag, model.unload_peer, model.name, model.model_id});
            model.unload_sent = true;
            SendOwned(board->channel, std::move(work));
          }
          if (model.running.empty()) continue;
        }
        if (PlanStep(*board, model)) {
          board->next_model = (board->next_model + k + 1) % ready.size();
          planned = true;
        }
      }
    }
  }
}

}  // namespace wafer::host

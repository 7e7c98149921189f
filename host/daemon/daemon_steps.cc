// The step loop: admission of queued jobs into KV-cache slots, Step planning per board
// (continuous batching), token delivery and job completion.
#include <algorithm>
#include <cstdio>
#include <variant>

#include "host/daemon/daemon.h"
#include "common/net/owned_channel.h"
#include "host/daemon/internal/daemon_records.h"
#include "host/daemon/internal/error_codes.h"

namespace wafer::host {
namespace {

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

// Output tokens reserved per job when it gets a slot (16 KB at most).
constexpr size_t kOutputReserveTokens = 4096;

}  // namespace

void Daemon::OnStepDone(Board& board, StepDone& done) {
  if (board.steps_in_flight > 0) --board.steps_in_flight;
  // Kept for PlanStep (see there); one spare per step that can be in flight is enough.
  if (spare_seqs_.size() < kMaxSpareSeqs) spare_seqs_.push_back(std::move(done.seqs));
  const int64_t now = clock_.NowNanos();
  Model* model = ModelById(done.model_id);
  // Results for a model that lost a board (or was removed) are void: its jobs were re-queued
  // by OnBoardLost and will be recomputed.
  const bool live = model != nullptr && (model->state == ModelState::kReady ||
                                         model->state == ModelState::kUnloading);
  if (live && done.status.ok()) {
    ++board.steps;
    telemetry::BoardSeries& series = metrics_.Board(board.index, 0);
    series.steps->Increment();
    series.device_seconds->Increment(Seconds(done.outcome.device_time.total_ns));
  }
  // A pipelined step goes on to its next board, or ends here with every stage's time.
  if (auto it = chains_.find(done.serial); it != chains_.end()) {
    Chain& chain = it->second;
    DeviceTime& t = chain.time;
    const DeviceTime& d = done.outcome.device_time;
    t.total_ns += d.total_ns;
    t.compute_ns += d.compute_ns;
    t.fabric_ns += d.fabric_ns;
    t.inter_wafer_ns += d.inter_wafer_ns;
    t.host_io_ns += d.host_io_ns;
    if (live && done.status.ok() && chain.stage + 1 < model->boards.size()) {
      ForwardStep(chain, *model, done);
      return;
    }
    done.outcome.device_time = chain.time;
    chains_.erase(it);
  }
  std::vector<Job*> jobs;
  jobs.reserve(done.job_ids.size());
  for (uint64_t id : done.job_ids) {
    auto it = jobs_.find(id);
    Job* job = it == jobs_.end() ? nullptr : it->second.get();
    // A job re-queued after a board loss may already be part of a newer step: leave it be.
    if (job != nullptr && job->step_serial != done.serial) job = nullptr;
    if (job != nullptr) job->in_flight = false;
    jobs.push_back(job);
  }
  if (!live) return;
  if (!done.status.ok()) {
    if (done.status.code() == StatusCode::kUnavailable) {
      OnBoardLost(board);  // The worker reports the board offline too; either order works.
      return;
    }
    if (done.status.code() == StatusCode::kDataLoss) {
      // Some of the model's weights sat on a PE that failed (the board remapped it to a spare
      // and reports which tensors in ReadFaults): the board gets those tensors again.
      RepairModel(*model, board, "lost weights to a failed PE (" + done.detail + ")");
      return;
    }
    for (Job* job : jobs) {
      if (job != nullptr && !job->finished && job->state == JobState::kRunning) {
        FinishJob(*job, FinishReason::kError, ErrorCodeFor(done.status, ErrorCode::kUnknownModel),
                  "step failed: " + done.detail);
      }
    }
    return;
  }
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
    if (!r.status.ok()) FinishRefusedSeq(*job, r.status);
  }
}

void Daemon::FinishRefusedSeq(Job& job, const Status& status) {
  if (status.code() == StatusCode::kResourceExhausted) {
    FinishJob(job, FinishReason::kContextFull);
  } else {
    FinishJob(job, FinishReason::kError, ErrorCodeFor(status, ErrorCode::kUnknownModel),
              "board refused the sequence");
  }
}

void Daemon::ForwardStep(Chain& chain, Model& model, StepDone& done) {
  ++chain.stage;
  const bool last = chain.stage + 1 == model.boards.size();
  auto work = std::make_unique<WorkerRequest>(StepWork{});
  StepWork& step = std::get<StepWork>(*work);
  step.serial = done.serial;
  step.model_id = done.model_id;
  std::vector<SeqStep> kept;
  const size_t n = std::min(done.job_ids.size(), done.outcome.results.size());
  for (size_t i = 0; i < n; ++i) {
    SeqResult& r = done.outcome.results[i];
    if (!r.status.ok()) {
      // Refused by this stage (its context is full): it goes no further.
      auto it = jobs_.find(done.job_ids[i]);
      if (it != jobs_.end() && it->second->step_serial == done.serial && !it->second->finished) {
        it->second->in_flight = false;
        FinishRefusedSeq(*it->second, r.status);
      }
      continue;
    }
    SeqStep seq = chain.seqs[i];
    // The board's reply is input from outside: the next stage needs exactly one hidden vector
    // per input token (none for a shape-only model).
    const size_t expected =
        model.shape_only ? 0 : seq.input_tokens.size() * size_t{model.arch.hidden_size};
    if (r.hidden_out.size() != expected) {
      auto it = jobs_.find(done.job_ids[i]);
      if (it != jobs_.end() && it->second->step_serial == done.serial && !it->second->finished) {
        it->second->in_flight = false;
        FinishJob(*it->second, FinishReason::kError, ErrorCode::kInternal,
                  "board " + std::to_string(model.boards[chain.stage - 1]) + " returned " +
                      std::to_string(r.hidden_out.size()) + " hidden values, not " +
                      std::to_string(expected));
      }
      continue;
    }
    seq.hidden_in = std::move(r.hidden_out);
    if (!last) seq.generate = 0;
    step.seqs.push_back(std::move(seq));
    step.job_ids.push_back(done.job_ids[i]);
    kept.push_back(std::move(chain.seqs[i]));
  }
  chain.seqs = std::move(kept);
  Board& next = *boards_[model.boards[chain.stage]];
  ++next.steps_in_flight;
  if (step.seqs.empty() || !net::SendOwned(next.channel, std::move(work))) {
    --next.steps_in_flight;
    chains_.erase(done.serial);
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
  // Every field is overwritten: the message is reused so that its buffers keep their capacity.
  TokenChunk& chunk = std::get<TokenChunk>(chunk_message_);
  chunk.job_id = job.id;
  chunk.seq = static_cast<uint32_t>(job.chunk_starts.size());
  chunk.first_token_index = static_cast<uint32_t>(job.output.size());
  chunk.tokens.assign(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(take));
  chunk.text.clear();
  if (job.want_text && model.text != nullptr) {
    model.text->DecodeIncremental(chunk.tokens, &job.text_pending, &chunk.text);
  }
  job.chunk_starts.push_back(chunk.first_token_index);
  job.chunk_texts.push_back(chunk.text);
  job.output.insert(job.output.end(), chunk.tokens.begin(), chunk.tokens.end());
  tokens_generated_ += take;
  series.tokens->Increment(static_cast<double>(take));
  SendJob(job.peer, chunk_message_);
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
    // Room for the output up front, so that streaming does not regrow these vectors every few
    // chunks (large reallocations take the allocator's lock, which other threads contend). The
    // cap bounds what a job that stops early holds unused.
    const size_t tokens = std::min<size_t>(job.max_tokens, kOutputReserveTokens);
    job.output.reserve(tokens);
    const size_t chunks = tokens / std::max<uint32_t>(1, config_.decode_tokens_per_step) + 2;
    job.chunk_starts.reserve(chunks);
    job.chunk_texts.reserve(chunks);
  }
}

bool Daemon::PlanStep(Board& board, Model& model) {
  AdmitQueued(model);
  // With several steps in flight per board the running jobs are split between them, so the
  // board computes one group while this loop streams the previous group's tokens. A model split
  // over boards keeps a group on every board: the pipeline's stages work at once.
  const size_t groups = size_t{config_.steps_in_flight} * model.boards.size();
  const size_t per_step =
      std::min<size_t>(config_.max_batch, (model.running.size() + groups - 1) / groups);
  // Hidden states between stages are bounded per step by the boards' link buffers.
  uint64_t hidden_budget = UINT64_MAX;
  if (model.pipelined() && !model.shape_only) {
    for (uint32_t index : model.boards) {
      hidden_budget = std::min<uint64_t>(
          hidden_budget, boards_[index]->identity.max_step_hidden_values / model.arch.hidden_size);
    }
  }
  auto work = std::make_unique<WorkerRequest>(StepWork{});
  StepWork& step = std::get<StepWork>(*work);
  step.serial = next_step_serial_++;
  step.model_id = model.model_id;
  // A step's SeqSteps come back with its StepDone: reusing them keeps their token buffers, so
  // planning allocates nothing per sequence once the loop is warm. `planned` counts the entries
  // filled; every field of a reused entry is overwritten.
  if (!spare_seqs_.empty()) {
    step.seqs = std::move(spare_seqs_.back());
    spare_seqs_.pop_back();
  }
  size_t planned = 0;
  const size_t step_size = std::min(per_step, model.running.size());
  step.job_ids.reserve(step_size);
  step.seqs.reserve(step_size);
  const int64_t now = clock_.NowNanos();
  std::vector<uint64_t>& waiting = waiting_scratch_;  // Running jobs left out of this step...
  waiting.clear();                                    // ...keep their order.
  for (uint64_t id : model.running) {
    Job& job = *jobs_.at(id);
    if (job.in_flight || planned >= per_step) {
      waiting.push_back(id);
      continue;
    }
    if (planned == step.seqs.size()) step.seqs.emplace_back();
    SeqStep& seq = step.seqs[planned];
    seq.slot = static_cast<uint32_t>(job.slot);
    seq.reset = false;
    seq.input_tokens.clear();
    seq.sampling = job.sampling;
    seq.stop_tokens.assign(job.stop_tokens.begin(), job.stop_tokens.end());
    seq.hidden_in = std::vector<float>();  // Hidden states can be large: none are kept.
    const uint32_t remaining = job.max_tokens - static_cast<uint32_t>(job.output.size());
    if (job.prefill_fed < job.prefill.size()) {
      uint32_t n = std::min<uint32_t>(config_.prefill_chunk_tokens,
                                      static_cast<uint32_t>(job.prefill.size()) - job.prefill_fed);
      n = static_cast<uint32_t>(std::min<uint64_t>(n, hidden_budget));
      if (n == 0) {
        waiting.push_back(id);  // No room left in this step's hidden states.
        continue;
      }
      hidden_budget -= n;
      seq.reset = job.prefill_fed == 0;
      seq.input_tokens.assign(job.prefill.begin() + job.prefill_fed,
                              job.prefill.begin() + job.prefill_fed + n);
      job.prefill_fed += n;
      // The last prefill chunk yields the next token at once: time to first token matters.
      seq.generate = job.prefill_fed == job.prefill.size() ? 1 : 0;
    } else {
      if (hidden_budget == 0) {
        waiting.push_back(id);
        continue;
      }
      if (hidden_budget != UINT64_MAX) --hidden_budget;
      seq.input_tokens.push_back(job.output.back());
      // A pipeline samples on its last board, so each pass through it yields one token.
      seq.generate = model.pipelined() ? 1 : std::min(config_.decode_tokens_per_step, remaining);
    }
    if (job.first_step_ns == 0) {
      job.first_step_ns = now;
      job.series->queue_wait->Observe(Seconds(now - job.accepted_ns));
    }
    job.in_flight = true;
    job.step_serial = step.serial;
    step.job_ids.push_back(job.id);
    ++planned;
  }
  if (planned == 0) {
    // Unused: it serves the next step.
    if (spare_seqs_.size() < kMaxSpareSeqs) spare_seqs_.push_back(std::move(step.seqs));
    return false;
  }
  step.seqs.resize(planned);
  // The jobs just planned go to the back, so every running job gets its turn.
  waiting.insert(waiting.end(), step.job_ids.begin(), step.job_ids.end());
  model.running.assign(waiting.begin(), waiting.end());
  if (model.pipelined()) {
    // The first board embeds and passes hidden states on; only the last one samples.
    Chain& chain = chains_[step.serial];
    chain.seqs = step.seqs;
    for (SeqStep& seq : step.seqs) seq.generate = 0;
  }
  ++board.steps_in_flight;
  if (!net::SendOwned(board.channel, std::move(work))) {
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
      // A split model's steps start on its first board and travel on from there.
      if (model->boards[0] == board->index &&
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
            model.unload_sent = true;
            model.unloads_pending = static_cast<uint32_t>(model.boards.size());
            for (uint32_t index : model.boards) {
              net::SendOwned(boards_[index]->channel,
                        std::make_unique<WorkerRequest>(UnloadWork{
                            model.unload_tag, model.unload_peer, model.name, model.model_id}));
            }
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

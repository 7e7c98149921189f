// What comes back from a Step: tokens streamed to their clients, a pipelined step handed on to
// its next board with each sequence's hidden states, and failures turned into re-queues,
// repairs or job endings.
#include <algorithm>

#include "common/log/log.h"
#include "host/wire/error_codes.h"
#include "host/serving/step_loop.h"

namespace wafer::host {
namespace {

double Seconds(int64_t ns) { return static_cast<double>(ns) / 1e9; }

}  // namespace

JobRecord* StepLoop::JobOfStep(uint64_t id, uint64_t serial) {
  JobRecord* job = jobs_.Find(id);
  // A job re-queued after a board loss may already be part of a newer step: leave it be.
  if (job == nullptr || job->step_serial != serial) return nullptr;
  return job;
}

void StepLoop::OnStepDone(Board& board, StepDone& done) {
  const int64_t now = clock_.NowNanos();
  board.StepReturned(now);
  planner_.Recycle(std::move(done.seqs));  // Reused by a later plan.
  ModelRecord* model = models_.FindById(done.model_id);
  // Results for a model that lost a board (or was removed) are void: its jobs were re-queued
  // when it was lost and will be recomputed.
  const bool live = model != nullptr && model->serving();
  if (live && !done.status.ok()) ++board.step_errors;
  if (live && done.status.ok() && done.outcome.pipeline.present) {
    // A Step run through the boards by the first one: each board computed its share.
    const PipelineReport& p = done.outcome.pipeline;
    for (size_t k = 0; k < model->boards.size() && k < p.stage_busy_ns.size(); ++k) {
      telemetry::BoardSeries& series = metrics_.Board(model->boards[k], 0);
      series.steps->Increment();
      series.device_seconds->Increment(Seconds(std::max<int64_t>(0, p.stage_busy_ns[k])));
      // The later boards had no Step of their own in flight: they count the busy time they
      // reported (waferctl top's utilisation); the first counts its Step's time in flight.
      if (k > 0) boards_.at(model->boards[k]).busy_ns += std::max<int64_t>(0, p.stage_busy_ns[k]);
    }
    ++board.steps;
  } else if (live && done.status.ok()) {
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
  std::vector<JobRecord*> jobs;
  jobs.reserve(done.job_ids.size());
  for (uint64_t id : done.job_ids) {
    JobRecord* job = JobOfStep(id, done.serial);
    if (job != nullptr) job->in_flight = false;
    jobs.push_back(job);
  }
  if (!live) return;
  if (done.status.ok() && done.outcome.pipeline.failed_stage != 0) {
    OnPipelineFailed(*model, done.outcome.pipeline);
    return;
  }
  if (!done.status.ok()) {
    if (done.status.code() == StatusCode::kUnavailable) {
      // The worker reports the board offline too; either order works.
      models_.OnBoardLost(board);
      return;
    }
    if (done.status.code() == StatusCode::kDataLoss) {
      // Some of the model's weights sat on a PE that failed (the board remapped it to a spare
      // and reports which tensors in ReadFaults): the board gets those tensors again.
      models_.RepairModel(*model, board, "lost weights to a failed PE (" + done.detail + ")");
      return;
    }
    for (JobRecord* job : jobs) {
      if (job != nullptr && !job->finished && job->state == JobState::kRunning) {
        FinishJob(*job, FinishReason::kError, ErrorCodeFor(done.status, ErrorCode::kUnknownModel),
                  "step failed: " + done.detail);
      }
    }
    return;
  }
  const size_t n = std::min(jobs.size(), done.outcome.results.size());
  for (size_t i = 0; i < n; ++i) {
    JobRecord* job = jobs[i];
    if (job == nullptr || job->finished || job->state != JobState::kRunning) continue;
    SeqResult& r = done.outcome.results[i];
    job->device_ns += done.outcome.device_time.total_ns;
    if (job->cancel_requested) {
      FinishJob(*job, job->cancel_reason);
      continue;
    }
    const size_t before = job->output.size();
    ApplyTokens(*job, *model, r.tokens, now);
    // Sampled by the last board of the model's pipeline, whichever board answered the Step.
    boards_.at(model->boards.back()).tokens_generated += job->output.size() - before;
    if (job->finished) continue;
    if (!r.status.ok()) {
      FinishRefusedSeq(*job, r.status);
    } else if (job->preempt_requested) {
      Preempt(*job);
    }
  }
}

void StepLoop::OnPipelineFailed(ModelRecord& model, const PipelineReport& pipeline) {
  // The first board gave up on a later stage: the Step produced nothing. Which board it was is
  // the board's word (hostile input): bounded by the model's boards.
  const size_t stage = std::min<size_t>(pipeline.failed_stage, model.boards.size() - 1);
  Board& failed = boards_.at(model.boards[stage]);
  const std::string why = "stage " + std::to_string(stage) + " (board " +
                          std::to_string(failed.index) + ") failed the pass: " +
                          pipeline.failed_detail;
  if (pipeline.failed.code() == StatusCode::kDataLoss) {
    // Weights on a PE of that board failed: that board rewrites what it lost.
    models_.RepairModel(model, failed, why);
    return;
  }
  // Down, hung, or reset behind our back (its stage gone): the model comes off its boards, its
  // jobs go back to the queue with their output so far, and it is loaded again.
  models_.OnPipelineBroken(model, why);
}

void StepLoop::FinishRefusedSeq(JobRecord& job, const Status& status) {
  if (status.code() == StatusCode::kResourceExhausted) {
    FinishJob(job, FinishReason::kContextFull);
  } else {
    FinishJob(job, FinishReason::kError, ErrorCodeFor(status, ErrorCode::kUnknownModel),
              "board refused the sequence");
  }
}

void StepLoop::ForwardStep(Chain& chain, ModelRecord& model, StepDone& done) {
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
    JobRecord* job = JobOfStep(done.job_ids[i], done.serial);
    if (!r.status.ok()) {
      // Refused by this stage (its context is full): it goes no further.
      if (job != nullptr && !job->finished) {
        job->in_flight = false;
        FinishRefusedSeq(*job, r.status);
      }
      continue;
    }
    SeqStep seq = chain.seqs[i];
    // The board's reply is input from outside: the next stage needs exactly one hidden vector
    // per input token (none for a shape-only model).
    const size_t expected =
        model.shape_only ? 0 : seq.input_tokens.size() * size_t{model.arch.hidden_size};
    if (r.hidden_out.size() != expected) {
      if (job != nullptr && !job->finished) {
        job->in_flight = false;
        FinishJob(*job, FinishReason::kError, ErrorCode::kInternal,
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
  Board& next = boards_.at(model.boards[chain.stage]);
  next.StepSent(clock_.NowNanos());
  if (step.seqs.empty() || !boards_.Send(next.index, std::move(work))) {
    next.StepReturned(clock_.NowNanos());
    chains_.erase(done.serial);
  }
}

void StepLoop::ApplyTokens(JobRecord& job, ModelRecord& model, const std::vector<uint32_t>& tokens,
                           int64_t now) {
  if (tokens.empty()) return;
  size_t room = job.max_tokens - job.output.size();
  size_t take = std::min(room, tokens.size());
  bool stopped = false;
  for (size_t i = 0; i < take; ++i) {
    if (std::find(job.stop_tokens.begin(), job.stop_tokens.end(), tokens[i]) !=
        job.stop_tokens.end()) {
      take = i + 1;
      stopped = true;
      break;
    }
  }
  if (take == 0) return;
  telemetry::ModelSeries& series = *job.series;
  scheduler_.Served(job.id, 0, static_cast<uint32_t>(take));
  if (job.tenant_output_tokens != nullptr) {
    job.tenant_output_tokens->Increment(static_cast<double>(take));
  }
  if (job.first_token_ns == 0) {
    job.first_token_ns = now;
    series.ttft->Observe(Seconds(now - job.accepted_ns));
    waits_.OnFirstToken(job.model, now - job.granted_ns);
    metrics_.scheduler()
        .Ttft(job.model, config_.scheduling.classes[job.priority_class].name, "served")
        .Observe(Seconds(now - job.accepted_ns));
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
  if (Status s = jobs_.AppendChunk(job, chunk.tokens, chunk.text); !s.ok()) {
    log::Error("jobs", "job store did not record chunk {} of job {}: {}", chunk.seq, job.id,
               s.name());
  }
  series.tokens->Increment(static_cast<double>(take));
  if (model.tokens_series == nullptr) {
    model.tokens_series = &metrics_.replicas().Tokens(model.name, model.boards[0]);
  }
  model.tokens_series->Increment(static_cast<double>(take));
  replies_.SendInPlace(job.peer, chunk_message_);
  if (stopped) {
    FinishJob(job, FinishReason::kStopToken);
  } else if (job.output.size() >= job.max_tokens) {
    FinishJob(job, FinishReason::kLength);
  }
}

}  // namespace wafer::host

// How jobs end or step back: finished, cancelled, expired, their model gone, or re-queued when
// their board went away or was evacuated.

#include "common/log/log.h"
#include "host/serving/step_loop.h"

namespace wafer::host {

void StepLoop::FinishJob(JobRecord& job, FinishReason reason, ErrorCode error,
                         std::string detail) {
  if (job.finished) return;
  const int64_t now = clock_.NowNanos();
  const bool was_queued = job.state == JobState::kQueued;
  if (was_queued) scheduler_.Dequeue(job.id);
  job.preempt_requested = false;
  if (job.slot >= 0) {
    waits_.OnReleased(job.model, job.priority_class, now - job.granted_ns);
    scheduler_.Release(job.model, job.id);
    jobs_.ClearSlot(job);
  }
  telemetry::SchedulerMetrics& sm = metrics_.scheduler();
  if (reason == FinishReason::kDeadlineExceeded) {
    sm.Expired(job.model, was_queued ? "queued" : "running").Increment();
  }
  if (job.first_token_ns == 0 &&
      (reason == FinishReason::kDeadlineExceeded || reason == FinishReason::kShed)) {
    // Jobs that never ran count in the class's TTFT too, or overload would look like speed.
    sm.Ttft(job.model, config_.scheduling.classes[job.priority_class].name,
            reason == FinishReason::kShed ? "shed" : "expired")
        .Observe(static_cast<double>(now - job.accepted_ns) / 1e9);
  }
  const JobFinished& f = jobs_.Finish(job, reason, error, std::move(detail), now);
  metrics_.Finished(job.model, FinishReasonName(reason)).Increment();
  replies_.Send(job.peer, f);
}

void StepLoop::Cancel(JobRecord& job, FinishReason reason) {
  if (job.in_flight) {
    jobs_.RequestCancel(job, reason);  // Finished when its step returns.
  } else {
    FinishJob(job, reason);
  }
}

void StepLoop::ExpireDeadlines() {
  expired_.clear();
  jobs_.TakeExpired(clock_.UnixMillis(), &expired_);
  for (uint64_t id : expired_) {
    if (JobRecord* job = jobs_.Find(id)) FinishJob(*job, FinishReason::kDeadlineExceeded);
  }
  const int64_t now = clock_.NowNanos();
  while (!ttft_watch_.empty() && ttft_watch_.begin()->first <= now) {
    JobRecord* job = jobs_.Find(ttft_watch_.begin()->second);
    ttft_watch_.erase(ttft_watch_.begin());
    // Only a job still waiting is shed; one that runs keeps running.
    if (job == nullptr || job->finished || job->state != JobState::kQueued ||
        job->first_token_ns != 0) {
      continue;
    }
    metrics_.scheduler().Shed(job->model, "ttft_missed").Increment();
    FinishJob(*job, FinishReason::kShed, ErrorCode::kNone,
              "still queued past its TTFT target of " + std::to_string(job->ttft_target_ms) +
                  " ms; its tenant sheds on a miss");
  }
}

void StepLoop::WatchTtftTarget(const JobRecord& job) {
  if (job.ttft_target_ms == 0 || job.first_token_ns != 0) return;
  ttft_watch_.emplace(job.accepted_ns + int64_t{job.ttft_target_ms} * 1'000'000, job.id);
}

size_t StepLoop::RequeueRunning(const ModelRecord& model) {
  const std::deque<uint64_t> running = scheduler_.RunOrder(model.name, model.replica);
  size_t requeued = 0;
  for (uint64_t id : running) {
    JobRecord* job = jobs_.Find(id);
    scheduler_.Release(model.name, id);
    if (job == nullptr) continue;
    jobs_.ClearSlot(*job);
    job->in_flight = false;
    job->preempt_requested = false;  // It is re-queued anyway.
    if (job->cancel_requested) {
      FinishJob(*job, job->cancel_reason);
      continue;
    }
    jobs_.MarkRequeued(*job);
    scheduler_.Enqueue(QueuedJobOf(*job));  // With its own priority, tenant and deadline.
    ++requeued;
  }
  return requeued;
}

size_t StepLoop::FinishRunning(const ModelRecord& model, ErrorCode error,
                               const std::string& detail) {
  const std::deque<uint64_t> running = scheduler_.RunOrder(model.name, model.replica);
  for (uint64_t id : running) {
    if (JobRecord* job = jobs_.Find(id)) FinishJob(*job, FinishReason::kError, error, detail);
  }
  return running.size();
}

size_t StepLoop::FailQueued(const std::string& name, ErrorCode error, const std::string& detail) {
  const std::vector<QueuedJob> queued = scheduler_.TakeQueued(name);
  for (const QueuedJob& q : queued) {
    if (JobRecord* job = jobs_.Find(q.job_id)) FinishJob(*job, FinishReason::kError, error, detail);
  }
  return queued.size();
}

void StepLoop::BlameBoardLoss(const ModelRecord& model, const std::string& why) {
  std::vector<JobRecord*> in_flight;
  for (uint64_t id : scheduler_.RunOrder(model.name, model.replica)) {
    JobRecord* job = jobs_.Find(id);
    if (job != nullptr && !job->finished && job->in_flight) in_flight.push_back(job);
  }
  if (in_flight.size() == 1 && in_flight[0]->Suspect()) {
    // It ran with nothing else in flight on its model, and the board went down again: it takes
    // boards down. Retried, it would take the board and its neighbours' streams down again.
    FinishJob(*in_flight[0], FinishReason::kPoison, ErrorCode::kBoardUnavailable,
              "its Steps took the board down twice, the second time alone (" + why + ")");
    return;
  }
  for (JobRecord* job : in_flight) {
    // A Step of its own that gets past this point (the tokens that Step was generating) clears
    // it.
    job->suspect_until_output =
        static_cast<uint32_t>(job->output.size()) + config_.decode_tokens_per_step;
  }
}

void StepLoop::OnDrainChanged(const Board& board) {
  if (!board.drain.drained() || board.drain.mode() != DrainMode::kEvacuate) return;
  for (const auto& [replica, model] : models_.models()) {
    if (model->state != ModelState::kReady || !model->Spans(board.index)) continue;
    const size_t requeued = RequeueRunning(*model);
    log::Info(log::BoardComponent(board.index), "evacuated: {} jobs of {} re-queued", requeued,
              model->name);
  }
}

}  // namespace wafer::host

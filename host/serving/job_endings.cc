// How jobs end or step back: finished, cancelled, expired, their model gone, or re-queued when
// their board went away or was evacuated.
#include <cstdio>

#include "host/serving/step_loop.h"

namespace wafer::host {

void StepLoop::FinishJob(JobRecord& job, FinishReason reason, ErrorCode error,
                         std::string detail) {
  if (job.finished) return;
  if (job.state == JobState::kQueued) scheduler_.Dequeue(job.id);
  if (job.slot >= 0) {
    scheduler_.Release(job.model, job.id);
    jobs_.ClearSlot(job);
  }
  const JobFinished& f = jobs_.Finish(job, reason, error, std::move(detail), clock_.NowNanos());
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
}

size_t StepLoop::RequeueRunning(const std::string& model) {
  const std::deque<uint64_t> running = scheduler_.RunOrder(model);
  size_t requeued = 0;
  for (uint64_t id : running) {
    JobRecord* job = jobs_.Find(id);
    scheduler_.Release(model, id);
    if (job == nullptr) continue;
    jobs_.ClearSlot(*job);
    job->in_flight = false;
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

size_t StepLoop::FinishRunning(const std::string& model, ErrorCode error,
                               const std::string& detail) {
  const std::deque<uint64_t> running = scheduler_.RunOrder(model);
  for (uint64_t id : running) {
    if (JobRecord* job = jobs_.Find(id)) FinishJob(*job, FinishReason::kError, error, detail);
  }
  return running.size();
}

size_t StepLoop::FailQueued(const std::string& model, ErrorCode error, const std::string& detail) {
  const std::vector<QueuedJob> queued = scheduler_.TakeQueued(model);
  for (const QueuedJob& q : queued) {
    if (JobRecord* job = jobs_.Find(q.job_id)) FinishJob(*job, FinishReason::kError, error, detail);
  }
  return queued.size();
}

void StepLoop::BlameBoardLoss(const std::string& model, const std::string& why) {
  std::vector<JobRecord*> in_flight;
  for (uint64_t id : scheduler_.RunOrder(model)) {
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
  for (const auto& [name, model] : models_.models()) {
    if (model->state != ModelState::kReady || !model->Spans(board.index)) continue;
    const size_t requeued = RequeueRunning(name);
    std::fprintf(stderr, "waferd: board %u evacuated: %zu jobs of %s re-queued\n", board.index,
                 requeued, name.c_str());
  }
}

}  // namespace wafer::host

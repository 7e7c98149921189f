// The admin socket's view of the jobs: ListJobs, ShowJob and CancelJobRequest (waferctl jobs).
// Part of AdminFrontend (admin_frontend.h); runs on the step loop's thread like the rest of it.
#include <algorithm>
#include <cstddef>
#include <tuple>
#include <vector>

#include "host/frontend/admin_frontend.h"
#include "host/serving/step_loop.h"
#include "host/wire/admin_codec.h"

namespace wafer::host {
namespace {

JobState StateOf(const JobRecord& job) { return job.finished ? JobState::kFinished : job.state; }

bool Wanted(JobStateFilter filter, JobState state) {
  switch (filter) {
    case JobStateFilter::kUnfinished: return state != JobState::kFinished;
    case JobStateFilter::kQueued: return state == JobState::kQueued;
    case JobStateFilter::kRunning: return state == JobState::kRunning;
    case JobStateFilter::kFinished: return state == JobState::kFinished;
    case JobStateFilter::kAll: return true;
  }
  return false;  // Not reached: the codec lets only the values above through.
}

// When a finished job ended, on this process's clock (its acceptance plus its total time; for a
// job recovered from the store, acceptance is translated from Unix time).
int64_t FinishedNs(const JobRecord& job) {
  return job.accepted_ns + job.finished->timings.total_ns;
}

std::string JobName(uint64_t id) { return "job " + std::to_string(id); }

}  // namespace

JobSummary AdminFrontend::SummaryOf(const JobRecord& job, std::optional<size_t> position,
                                    int64_t now_unix_ms) const {
  JobSummary s;
  s.job_id = job.id;
  s.tenant = job.tenant;
  s.model = job.model;
  s.state = StateOf(job);
  const std::vector<PriorityClassConfig>& classes = config_.scheduling.classes;
  s.priority_class = job.priority_class < classes.size()
                         ? classes[job.priority_class].name
                         : "class " + std::to_string(job.priority_class);
  s.priority = job.priority;
  if (s.state == JobState::kQueued && position.has_value()) {
    s.queue_position = static_cast<uint32_t>(std::min<size_t>(*position, UINT32_MAX));
  }
  s.age_ms = static_cast<uint64_t>(std::max<int64_t>(0, now_unix_ms - job.accepted_unix_ms));
  s.tokens_generated = static_cast<uint32_t>(job.output.size());
  if (job.finished) s.finish_reason = FinishReasonName(job.finished->reason);
  return s;
}

void AdminFrontend::OnListJobs(const std::string& peer, const ListJobs& list) {
  // The order of admin.fbs JobList: (group, then two keys) ascending.
  struct Match {
    const JobRecord* job;
    std::optional<size_t> position;
    std::tuple<int, int64_t, int64_t> order;
  };
  std::vector<Match> matches;
  // Read only: every job the table holds (the store's records), finished and retained included.
  store_.ForEach([&](JobRecord& job) {
    const JobState state = StateOf(job);
    if (!Wanted(list.state, state)) return;
    if (!list.tenant.empty() && job.tenant != list.tenant) return;
    const int64_t seq = static_cast<int64_t>(job.accept_seq);
    switch (state) {
      case JobState::kQueued: {
        const std::optional<size_t> position = scheduler_.Position(job.id);
        const int64_t at = position ? static_cast<int64_t>(*position) : INT64_MAX;
        matches.push_back(Match{&job, position, {0, at, seq}});
        break;
      }
      case JobState::kRunning:
        matches.push_back(Match{&job, std::nullopt, {1, seq, 0}});
        break;
      case JobState::kFinished:
        matches.push_back(Match{&job, std::nullopt, {2, -FinishedNs(job), -seq}});
        break;
      case JobState::kUnknown:  // Never held by a job record.
        break;
    }
  });
  const size_t limit = list.limit == 0 ? kDefaultJobListLimit : list.limit;
  const size_t n = std::min(limit, matches.size());
  std::partial_sort(matches.begin(), matches.begin() + static_cast<ptrdiff_t>(n), matches.end(),
                    [](const Match& a, const Match& b) { return a.order < b.order; });
  JobList reply;
  reply.request_tag = list.request_tag;
  reply.total = static_cast<uint32_t>(std::min<size_t>(matches.size(), UINT32_MAX));
  reply.truncated = matches.size() > n;
  reply.jobs.reserve(n);
  const int64_t now = clock_.UnixMillis();
  for (size_t i = 0; i < n; ++i) {
    reply.jobs.push_back(SummaryOf(*matches[i].job, matches[i].position, now));
  }
  Send(peer, reply);
}

void AdminFrontend::OnShowJob(const std::string& peer, const ShowJob& show) {
  const JobRecord* found = jobs_.Find(show.job_id);
  if (found == nullptr) {
    Send(peer, OperationResult{show.request_tag, ErrorCode::kUnknownJob,
                               JobName(show.job_id) +
                                   " is not known (never accepted, or finished and no longer "
                                   "retained)",
                               0});
    return;
  }
  const JobRecord& job = *found;
  const int64_t now_ns = clock_.NowNanos();
  JobDetail d;
  d.request_tag = show.request_tag;
  d.summary = SummaryOf(job, scheduler_.Position(job.id), clock_.UnixMillis());
  d.max_tokens = job.max_tokens;
  d.accepted_unix_ms = job.accepted_unix_ms;
  d.deadline_unix_ms = job.deadline_unix_ms;
  d.ttft_target_ms = job.ttft_target_ms;
  d.cancel_requested = job.cancel_requested && !job.finished;
  if (job.finished) {
    // The prompt was let go of at the end: the ending holds what the job used.
    const JobFinished& f = *job.finished;
    d.prompt_tokens = f.prompt_tokens;
    d.first_token = f.timings.ttft_ns > 0;
    d.ttft_ns = f.timings.ttft_ns;
    d.queued_ns = f.timings.queued_ns;
    d.total_ns = f.timings.total_ns;
    d.device_ns = f.timings.device_ns;
    d.chunks = f.chunks;
    d.error_code = f.error_code;
    d.detail = f.detail;
  } else {
    d.prompt_tokens = static_cast<uint32_t>(job.prompt.size());
    d.first_token = job.first_token_ns != 0;
    d.ttft_ns = (d.first_token ? job.first_token_ns : now_ns) - job.accepted_ns;
    d.queued_ns = (job.first_step_ns != 0 ? job.first_step_ns : now_ns) - job.accepted_ns;
    d.total_ns = now_ns - job.accepted_ns;
    d.device_ns = job.device_ns;
    d.chunks = static_cast<uint32_t>(job.chunk_starts.size());
  }
  Send(peer, d);
}

void AdminFrontend::OnCancelJob(const std::string& peer, const CancelJobRequest& cancel) {
  JobRecord* job = jobs_.Find(cancel.job_id);
  if (job == nullptr || job->finished) {
    const std::string detail =
        job == nullptr ? JobName(cancel.job_id) + " is not known"
                       : JobName(cancel.job_id) + " has already finished (" +
                             FinishReasonName(job->finished->reason) + ")";
    audit_.Record("operation_done", "-", "tag=" + std::to_string(cancel.request_tag),
                  std::string("UNKNOWN_JOB: ") + detail);
    Send(peer, OperationResult{cancel.request_tag, ErrorCode::kUnknownJob, detail, 0});
    return;
  }
  const std::string was = JobStateName(job->state);
  // Exactly the job socket's cancel: stored first, then ended now or when its Step returns.
  jobs_.RequestCancel(*job, FinishReason::kCancelled);
  const std::string detail = JobName(cancel.job_id) + " cancelled (was " + was + ")";
  audit_.Record("operation_done", "-", "tag=" + std::to_string(cancel.request_tag),
                "OK: " + detail);
  // The reply waits until the cancel is durable, so a restart never runs a job the operator
  // was told is cancelled.
  SendWhenDurable(peer, OperationResult{cancel.request_tag, ErrorCode::kNone, detail, 0});
  steps_.Cancel(*job);
}

void AdminFrontend::SendWhenDurable(const std::string& peer, const AdminMessage& message) {
  // What the reply tells is in the open transaction (the next generation) or in one already
  // committed; earlier held replies go first either way.
  const uint64_t needs = store_.written() + (store_.dirty() ? 1 : 0);
  if (needs <= store_.durable() && held_.empty()) {
    Send(peer, message);
    return;
  }
  held_.push_back(HeldReply{needs, peer, EncodeAdmin(message)});
}

void AdminFrontend::ReleaseDurable() {
  const uint64_t durable = store_.durable();
  while (!held_.empty() && held_.front().generation <= durable) {
    const HeldReply& reply = held_.front();
    socket_.Send(reply.peer, std::as_bytes(std::span<const char>(reply.bytes)));
    held_.pop_front();
  }
}

}  // namespace wafer::host

#include "host/scheduler/admission.h"

#include <algorithm>
#include <cmath>

namespace wafer::host {
namespace {

constexpr int64_t kMinute = 60'000'000'000;
constexpr size_t kPruneAbove = 1024;  // Tenants with buckets before full ones are dropped.

std::string Ms(int64_t ns) { return std::to_string((ns + 999'999) / 1'000'000) + " ms"; }

}  // namespace

Admission::Admission(const DaemonConfig& config, const Scheduler& scheduler,
                     WaitEstimator& waits, const Clock& clock, uint64_t jitter_seed)
    : config_(config), scheduler_(scheduler), waits_(waits), clock_(clock), jitter_(jitter_seed) {}

double Admission::Refill(Bucket& b, double per_minute, int64_t now_ns) const {
  if (b.refilled_ns == 0) {
    b.level = per_minute;  // A new tenant starts with a full minute.
  } else {
    const double elapsed = static_cast<double>(std::max<int64_t>(0, now_ns - b.refilled_ns));
    b.level = std::min(per_minute, b.level + per_minute * elapsed / static_cast<double>(kMinute));
  }
  b.refilled_ns = now_ns;
  return b.level;
}

int64_t Admission::NsUntil(const Bucket& b, double want, double per_minute) {
  if (b.level >= want) return 0;
  return static_cast<int64_t>(std::ceil((want - b.level) / per_minute * static_cast<double>(kMinute)));
}

AdmissionDecision Admission::Refuse(ErrorCode code, std::string detail, int64_t retry_after_ns) {
  AdmissionDecision d;
  d.code = code;
  d.detail = std::move(detail);
  if (retry_after_ns > 0) {
    std::uniform_real_distribution<double> stretch(1.0, 1.25);
    const double ms = static_cast<double>(retry_after_ns) / 1e6 * stretch(jitter_);
    d.retry_after_ms = static_cast<uint32_t>(std::clamp(std::ceil(ms), 1.0, 3'600'000.0));
  }
  return d;
}

AdmissionDecision Admission::CheckQuotas(const AdmissionRequest& r, const TenantConfig& t,
                                         int64_t now_ns) {
  if (t.max_queued > 0 && scheduler_.QueuedForTenant(r.tenant) >= t.max_queued) {
    return Refuse(ErrorCode::kQuotaExceeded,
                  "tenant '" + r.tenant + "' has " + std::to_string(t.max_queued) +
                      " jobs queued, its max_queued",
                  waits_.TimeForStarts(r.model, 1));
  }
  if (t.requests_per_minute == 0 && t.tokens_per_minute == 0) return {};
  if (quotas_.size() > kPruneAbove) PruneFullBuckets(now_ns);
  Quotas& q = quotas_[r.tenant];
  const double cost = static_cast<double>(r.prompt_tokens) + r.max_tokens;
  if (t.requests_per_minute > 0 && Refill(q.requests, t.requests_per_minute, now_ns) < 1) {
    return Refuse(ErrorCode::kQuotaExceeded,
                  "tenant '" + r.tenant + "' used its requests_per_minute of " +
                      std::to_string(t.requests_per_minute),
                  NsUntil(q.requests, 1, t.requests_per_minute));
  }
  if (t.tokens_per_minute > 0) {
    const double per_minute = static_cast<double>(t.tokens_per_minute);
    if (cost > per_minute) {
      return Refuse(ErrorCode::kQuotaExceeded,
                    "the job costs " + std::to_string(static_cast<uint64_t>(cost)) +
                        " tokens (prompt + max_tokens), more than tenant '" + r.tenant +
                        "''s whole tokens_per_minute of " + std::to_string(t.tokens_per_minute),
                    0);
    }
    if (Refill(q.tokens, per_minute, now_ns) < cost) {
      return Refuse(ErrorCode::kQuotaExceeded,
                    "tenant '" + r.tenant + "' has " +
                        std::to_string(static_cast<uint64_t>(q.tokens.level)) +
                        " of its tokens_per_minute left; the job costs " +
                        std::to_string(static_cast<uint64_t>(cost)),
                    NsUntil(q.tokens, cost, per_minute));
    }
  }
  return {};
}

void Admission::PruneFullBuckets(int64_t now_ns) {
  for (auto it = quotas_.begin(); it != quotas_.end();) {
    const TenantConfig& t = config_.scheduling.TenantNamed(it->first);
    const bool full = Refill(it->second.requests, t.requests_per_minute, now_ns) >=
                          t.requests_per_minute &&
                      Refill(it->second.tokens, static_cast<double>(t.tokens_per_minute),
                             now_ns) >= static_cast<double>(t.tokens_per_minute);
    it = full ? quotas_.erase(it) : std::next(it);
  }
}

AdmissionDecision Admission::Decide(const AdmissionRequest& r) {
  const int64_t now_ns = clock_.NowNanos();
  const TenantConfig& tenant = config_.scheduling.TenantNamed(r.tenant);
  if (AdmissionDecision d = CheckQuotas(r, tenant, now_ns); !d.accepted()) return d;

  AdmissionDecision decision;
  const size_t model_queued = scheduler_.QueuedFor(r.model);
  const size_t model_limit = config_.scheduling.model_queue_limit;
  if (model_queued >= model_limit || scheduler_.queued() >= config_.queue_limit) {
    decision.shed = scheduler_.ShedCandidate(r.model, r.priority_class);
    if (!decision.shed) {
      const bool model_full = model_queued >= model_limit;
      const uint64_t over = model_full ? model_queued - model_limit + 1
                                       : scheduler_.queued() - config_.queue_limit + 1;
      return Refuse(ErrorCode::kQueueFull,
                    model_full ? "model '" + r.model + "' has " + std::to_string(model_queued) +
                                     " jobs queued, its limit (scheduler.model_queue_limit), "
                                     "none of a lower class to shed"
                               : "the queue holds its limit of " +
                                     std::to_string(config_.queue_limit) +
                                     " jobs, none of a lower class for this model to shed",
                    waits_.TimeForStarts(r.model, over));
    }
  }
  if (r.ttft_target_ms > 0 || r.deadline_in_ms > 0) {
    const WaitEstimate e = waits_.Expected(r.model, r.priority_class, r.tenant, now_ns);
    const int64_t target_ns = int64_t{r.ttft_target_ms} * 1'000'000;
    const int64_t deadline_ns = r.deadline_in_ms * 1'000'000;
    const std::string& cls = config_.scheduling.classes[r.priority_class].name;
    if (e.measured && target_ns > 0 && e.wait_ns > target_ns) {
      return Refuse(ErrorCode::kTargetUnmeetable,
                    "expected time to first token in class '" + cls + "' on model '" + r.model +
                        "' is " + Ms(e.wait_ns) + ", over the TTFT target of " +
                        std::to_string(r.ttft_target_ms) + " ms",
                    e.wait_ns - target_ns);
    }
    if (e.measured && deadline_ns > 0 && e.wait_ns > deadline_ns) {
      return Refuse(ErrorCode::kTargetUnmeetable,
                    "expected time to first token in class '" + cls + "' on model '" + r.model +
                        "' is " + Ms(e.wait_ns) + ", past the deadline " + Ms(deadline_ns) +
                        " away",
                    e.wait_ns - deadline_ns);
    }
  }
  waits_.OnAdmitted(r.model, r.priority_class, r.tenant, now_ns);
  if (tenant.requests_per_minute > 0 || tenant.tokens_per_minute > 0) {
    Quotas& q = quotas_[r.tenant];
    q.requests.level -= tenant.requests_per_minute > 0 ? 1 : 0;
    q.tokens.level -= tenant.tokens_per_minute > 0
                          ? static_cast<double>(r.prompt_tokens) + r.max_tokens
                          : 0;
  }
  return decision;
}

}  // namespace wafer::host

#include "host/scheduler/wait_estimator.h"

#include <algorithm>
#include <cmath>

namespace wafer::host {

void WaitEstimator::OnReleased(const std::string& model, int64_t hold_ns) {
  models_[model].hold.Add(static_cast<double>(std::max<int64_t>(0, hold_ns)));
}

void WaitEstimator::OnFirstToken(const std::string& model, int64_t ns) {
  models_[model].first_token.Add(static_cast<double>(std::max<int64_t>(0, ns)));
}

double WaitEstimator::Rate::At(int64_t now_ns) const {
  const double age = static_cast<double>(std::max<int64_t>(0, now_ns - at_ns));
  return count * std::exp(-age / static_cast<double>(kRateWindowNs));
}

void WaitEstimator::OnAdmitted(const std::string& model, uint32_t cls, int64_t now_ns) {
  Rate& r = models_[model].admitted[cls];
  r.count = r.At(now_ns) + 1;
  r.at_ns = now_ns;
}

double WaitEstimator::ArrivalsAbove(const std::string& model, uint32_t cls,
                                    int64_t now_ns) const {
  auto it = models_.find(model);
  if (it == models_.end()) return 0;
  double count = 0;
  for (const auto& [c, rate] : it->second.admitted) {
    if (c < cls) count += rate.At(now_ns);
  }
  return count / (static_cast<double>(kRateWindowNs) / 1e9);
}

int64_t WaitEstimator::HoldNs(const Service* s) const {
  return s != nullptr && s->hold.samples > 0 ? static_cast<int64_t>(s->hold.value) : kGuessHoldNs;
}

int64_t WaitEstimator::TimeForStarts(const std::string& model, uint64_t starts) const {
  auto it = models_.find(model);
  const ModelSlots slots = scheduler_.Slots(model);
  const uint64_t lanes = std::max<uint32_t>(1, std::min(slots.total, slots.max_batch));
  // Slots free up one hold apart per lane, on average.
  const double per_start = static_cast<double>(HoldNs(it == models_.end() ? nullptr : &it->second)) /
                           static_cast<double>(lanes);
  return static_cast<int64_t>(per_start * static_cast<double>(starts));
}

WaitEstimate WaitEstimator::Expected(const std::string& model, uint32_t cls,
                                     const std::string& tenant, int64_t now_ns) const {
  auto it = models_.find(model);
  const Service* s = it == models_.end() ? nullptr : &it->second;
  WaitEstimate e;
  e.measured = s != nullptr && s->hold.samples >= kMinSamples && s->first_token.samples > 0;
  e.hold_ns = HoldNs(s);
  const int64_t first_token = s != nullptr && s->first_token.samples > 0
                                  ? static_cast<int64_t>(s->first_token.value)
                                  : kGuessFirstTokenNs;
  const ModelSlots slots = scheduler_.Slots(model);
  uint64_t open = slots.running < slots.max_batch ? std::min(slots.free, slots.max_batch - slots.running) : 0;
  const PreemptionConfig& p = config_.preemption;
  if (p.enabled) {
    // Jobs far enough below may be preempted for it (after min_run_ms at most).
    open += scheduler_.RunningAtOrBelow(model, cls + p.min_class_gap);
  }
  const uint64_t ahead = scheduler_.QueuedAhead(model, cls, tenant);
  e.wait_ns = first_token;
  if (ahead < open) return e;
  // Starts per second of the model, and what later arrivals of higher classes leave of them.
  const uint64_t lanes = std::max<uint32_t>(1, std::min(slots.total, slots.max_batch));
  const double starts_per_s = static_cast<double>(lanes) / (static_cast<double>(e.hold_ns) / 1e9);
  const double left = std::max(starts_per_s - ArrivalsAbove(model, cls, now_ns), 0.05 * starts_per_s);
  e.wait_ns += static_cast<int64_t>(static_cast<double>(ahead - open + 1) / left * 1e9);
  return e;
}

}  // namespace wafer::host

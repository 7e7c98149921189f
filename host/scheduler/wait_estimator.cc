#include "host/scheduler/wait_estimator.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace wafer::host {

double WaitEstimator::Rate::PerSecond(int64_t now_ns) const {
  const double age = static_cast<double>(std::max<int64_t>(0, now_ns - at_ns));
  const double window = static_cast<double>(kRateWindowNs);
  return count * std::exp(-age / window) / (window / 1e9);
}

void WaitEstimator::OnReleased(const std::string& model, uint32_t cls, int64_t hold_ns) {
  const double hold = static_cast<double>(std::max<int64_t>(0, hold_ns));
  Service& s = models_[model];
  s.hold.Add(hold);
  s.class_hold[cls].Add(hold);
}

void WaitEstimator::OnFirstToken(const std::string& model, int64_t ns) {
  models_[model].first_token.Add(static_cast<double>(std::max<int64_t>(0, ns)));
}

void WaitEstimator::Count(std::map<uint32_t, std::map<std::string, Rate>>& rates, uint32_t cls,
                          const std::string& tenant, int64_t now_ns, uint32_t& events) {
  Rate& r = rates[cls][tenant];
  const double window = static_cast<double>(kRateWindowNs);
  r.count = r.PerSecond(now_ns) * (window / 1e9) + 1;
  r.at_ns = now_ns;
  if (++events < 4096) return;
  // Tenants come and go: drop the rates that have decayed to nothing.
  events = 0;
  for (auto& [c, tenants] : rates) {
    std::erase_if(tenants, [&](const auto& t) { return t.second.PerSecond(now_ns) < 0.001; });
  }
}

void WaitEstimator::OnAdmitted(const std::string& model, uint32_t cls, const std::string& tenant,
                               int64_t now_ns) {
  Service& s = models_[model];
  Count(s.admitted, cls, tenant, now_ns, s.admissions);
}

void WaitEstimator::OnGranted(const std::string& model, uint32_t cls, const std::string& tenant,
                              int64_t now_ns) {
  Service& s = models_[model];
  Count(s.granted, cls, tenant, now_ns, s.grants);
}

const WaitEstimator::Service* WaitEstimator::Find(const std::string& model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : &it->second;
}

double WaitEstimator::HoldSeconds(const Service* s) {
  const double ns = s != nullptr && s->hold.samples > 0 ? s->hold.value : kGuessHoldNs;
  return std::max(ns, 1e3) / 1e9;
}

double WaitEstimator::ClassHoldSeconds(const Service* s, uint32_t cls) {
  if (s != nullptr) {
    auto it = s->class_hold.find(cls);
    if (it != s->class_hold.end() && it->second.samples > 0) {
      return std::max(it->second.value, 1e3) / 1e9;
    }
  }
  return HoldSeconds(s);
}

double WaitEstimator::SlotsAbove(const Service* s, uint32_t cls, int64_t now_ns) {
  if (s == nullptr) return 0;
  double slots = 0;
  for (const auto& [c, tenants] : s->admitted) {
    if (c >= cls) break;
    double rate = 0;
    for (const auto& [tenant, r] : tenants) rate += r.PerSecond(now_ns);
    slots += rate * ClassHoldSeconds(s, c);  // Little's law: arrivals x time in a slot.
  }
  return slots;
}

int64_t WaitEstimator::TimeForStarts(const std::string& model, uint64_t starts) const {
  const ModelSlots slots = scheduler_.Slots(model);
  const double lanes = std::max<uint32_t>(1, std::min(slots.total, slots.max_batch));
  return static_cast<int64_t>(static_cast<double>(starts) * HoldSeconds(Find(model)) / lanes *
                              1e9);
}

WaitEstimate WaitEstimator::Expected(const std::string& model, uint32_t cls,
                                     const std::string& tenant, int64_t now_ns) const {
  const Service* s = Find(model);
  WaitEstimate e;
  e.measured = s != nullptr && s->hold.samples >= kMinSamples && s->first_token.samples > 0;
  const double first_token = s != nullptr && s->first_token.samples > 0
                                 ? s->first_token.value / 1e9
                                 : kGuessFirstTokenNs / 1e9;
  const ModelSlots slots = scheduler_.Slots(model);
  const double lanes = std::max<uint32_t>(1, std::min(slots.total, slots.max_batch));
  double open = slots.running < slots.max_batch
                    ? std::min(slots.free, slots.max_batch - slots.running)
                    : 0;
  const PreemptionConfig& p = config_.preemption;
  if (p.enabled) open += scheduler_.RunningAtOrBelow(model, cls + p.min_class_gap);

  const QueueAhead ahead = scheduler_.QueuedAhead(model, cls, tenant);
  const double before = static_cast<double>(ahead.before) - open;  // Negative: slots left over.
  double wait = first_token;
  if (!ahead.shares) {
    wait += std::max(0.0, before + 1) * HoldSeconds(s) / lanes;
    e.wait_ns = static_cast<int64_t>(wait * 1e9);
    return e;
  }
  const double own = static_cast<double>(ahead.own) + 1 - std::max(0.0, -before);
  if (own > 0) {
    const double class_slots = std::max(lanes - SlotsAbove(s, cls, now_ns), 0.05 * lanes);
    const double hold = ClassHoldSeconds(s, cls);
    // What the other tenants of the class take of it: what they ask, up to their share.
    double weights = std::max<uint32_t>(1, config_.TenantNamed(tenant).weight);
    std::vector<std::pair<double, double>> others;  // (slots asked, weight)
    if (s != nullptr) {
      if (auto in_class = s->admitted.find(cls); in_class != s->admitted.end()) {
        for (const auto& [name, rate] : in_class->second) {
          if (name == tenant) continue;
          const double w = std::max<uint32_t>(1, config_.TenantNamed(name).weight);
          others.emplace_back(rate.PerSecond(now_ns) * hold, w);
          weights += w;
        }
      }
    }
    double taken = 0;
    for (const auto& [asked, w] : others) taken += std::min(asked, class_slots * w / weights);
    const double tenant_slots = std::max(class_slots - taken, 0.05 * class_slots);
    double own_wait = own * hold / tenant_slots;
    if (ahead.own > 0 && s != nullptr) {
      // Backlogged: what it was really served lately bounds it from below.
      double granted = 0;
      if (auto in_class = s->granted.find(cls); in_class != s->granted.end()) {
        if (auto t = in_class->second.find(tenant); t != in_class->second.end()) {
          granted = t->second.PerSecond(now_ns);
        }
      }
      // Only once it was granted about one a window: a tenant not served at all yet is left to
      // the model above (a backlog that has not started is not a measured rate).
      if (granted * (static_cast<double>(kRateWindowNs) / 1e9) >= 1) {
        own_wait = std::max(own_wait, own / granted);
      }
    }
    wait += own_wait;
  }
  wait += std::max(0.0, before) * HoldSeconds(s) / lanes;
  e.wait_ns = static_cast<int64_t>(wait * 1e9);
  return e;
}

}  // namespace wafer::host

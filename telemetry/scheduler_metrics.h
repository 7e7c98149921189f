// The scheduler's Prometheus series: what it refuses, sheds, expires and preempts, by reason;
// tokens served per tenant; queue depth per model, class and tenant; and time to first token
// per model and class that counts the jobs which never ran (expired or shed) as well.
// Tenant labels are bounded by the caller: configured tenants by name, every other one "other".
#pragma once

#include <map>
#include <string>
#include <tuple>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace wafer::telemetry {

// Looking series up is not thread-safe (waferd's step loop only); updating one is.
class SchedulerMetrics {
 public:
  explicit SchedulerMetrics(prometheus::Registry& registry);

  // Creates `model`'s preemption, shed and expiry series at 0 for every reason, so that a rate()
  // or an alert over them reads 0 rather than nothing before the first event.
  void RegisterModel(const std::string& model);
  // wafer_scheduler_preemptions_total{model, reason}: higher_class
  prometheus::Counter& Preempted(const std::string& model, const std::string& reason);
  // wafer_scheduler_sheds_total{model, reason}: displaced | ttft_missed
  prometheus::Counter& Shed(const std::string& model, const std::string& reason);
  // wafer_scheduler_expiries_total{model, state}: the job was queued | running when its
  // deadline passed.
  prometheus::Counter& Expired(const std::string& model, const std::string& state);
  // wafer_tenant_tokens_served_total{tenant, kind}: kind prompt | output.
  prometheus::Counter& TenantTokens(const std::string& tenant, const std::string& kind);
  // wafer_scheduler_time_to_first_token_seconds{model, class, outcome}: outcome served (the
  // first token came), expired or shed (observed when the job ended without one).
  prometheus::Histogram& Ttft(const std::string& model, const std::string& cls,
                              const std::string& outcome);
  // wafer_scheduler_queued_jobs{model, class, tenant}: replaces every depth set before (a
  // series absent from `depths` reads 0).
  using DepthKey = std::tuple<std::string, std::string, std::string>;  // model, class, tenant
  void SetQueueDepths(const std::map<DepthKey, double>& depths);

 private:
  prometheus::Family<prometheus::Counter>& preempted_;
  prometheus::Family<prometheus::Counter>& shed_;
  prometheus::Family<prometheus::Counter>& expired_;
  prometheus::Family<prometheus::Counter>& tenant_tokens_;
  prometheus::Family<prometheus::Histogram>& ttft_;
  prometheus::Family<prometheus::Gauge>& depth_;
  std::map<DepthKey, prometheus::Gauge*> depth_series_;
};

}  // namespace wafer::telemetry

#include "telemetry/scheduler_metrics.h"

namespace wafer::telemetry {
namespace {

// 1 ms to 60 s: targets are tens to hundreds of milliseconds; overload pushes waits to seconds.
const prometheus::Histogram::BucketBoundaries& TtftBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return kBuckets;
}

}  // namespace

SchedulerMetrics::SchedulerMetrics(prometheus::Registry& r)
    : preempted_(prometheus::BuildCounter()
                     .Name("wafer_scheduler_preemptions_total")
                     .Help("Running jobs that gave their slot to a higher class, by model and "
                           "reason.")
                     .Register(r)),
      shed_(prometheus::BuildCounter()
                .Name("wafer_scheduler_sheds_total")
                .Help("Queued jobs dropped before they ran (FinishReason shed), by model and "
                      "reason: displaced from a full queue by a higher class, or ttft_missed.")
                .Register(r)),
      expired_(prometheus::BuildCounter()
                   .Name("wafer_scheduler_expiries_total")
                   .Help("Jobs ended by their completion deadline, by model and the state they "
                         "were in (queued, running). Not counted as cancellations.")
                   .Register(r)),
      tenant_tokens_(prometheus::BuildCounter()
                         .Name("wafer_tenant_tokens_served_total")
                         .Help("Tokens served per tenant (configured tenants by name, others as "
                               "\"other\"), by kind: prompt (prefill read) or output.")
                         .Register(r)),
      ttft_(prometheus::BuildHistogram()
                .Name("wafer_scheduler_time_to_first_token_seconds")
                .Help("Time from acceptance to the first token by model and class; jobs that "
                      "never got one are observed when they end, as outcome expired or shed.")
                .Register(r)),
      depth_(prometheus::BuildGauge()
                 .Name("wafer_scheduler_queued_jobs")
                 .Help("Jobs queued, by model, class and tenant.")
                 .Register(r)) {}

prometheus::Counter& SchedulerMetrics::Preempted(const std::string& model,
                                                 const std::string& reason) {
  return preempted_.Add({{"model", model}, {"reason", reason}});
}

prometheus::Counter& SchedulerMetrics::Shed(const std::string& model, const std::string& reason) {
  return shed_.Add({{"model", model}, {"reason", reason}});
}

prometheus::Counter& SchedulerMetrics::Expired(const std::string& model,
                                               const std::string& state) {
  return expired_.Add({{"model", model}, {"state", state}});
}

void SchedulerMetrics::RegisterModel(const std::string& model) {
  Preempted(model, "higher_class");
  for (const char* reason : {"displaced", "ttft_missed"}) Shed(model, reason);
  for (const char* state : {"queued", "running"}) Expired(model, state);
}

prometheus::Counter& SchedulerMetrics::TenantTokens(const std::string& tenant,
                                                    const std::string& kind) {
  return tenant_tokens_.Add({{"tenant", tenant}, {"kind", kind}});
}

prometheus::Histogram& SchedulerMetrics::Ttft(const std::string& model, const std::string& cls,
                                              const std::string& outcome) {
  return ttft_.Add({{"model", model}, {"class", cls}, {"outcome", outcome}}, TtftBuckets());
}

void SchedulerMetrics::SetQueueDepths(const std::map<DepthKey, double>& depths) {
  for (auto& [key, gauge] : depth_series_) gauge->Set(0);
  for (const auto& [key, depth] : depths) {
    auto it = depth_series_.find(key);
    if (it == depth_series_.end()) {
      const auto& [model, cls, tenant] = key;
      it = depth_series_
               .emplace(key, &depth_.Add({{"model", model}, {"class", cls}, {"tenant", tenant}}))
               .first;
    }
    it->second->Set(depth);
  }
}

}  // namespace wafer::telemetry

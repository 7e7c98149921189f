// The scheduler's promises, as waferd.yaml states them under `scheduler:`: priority classes,
// tenants (fair-share weight, highest class, quotas), per-model queue bounds and preemption.
// See host/scheduler/fair_policy.h and host/scheduler/admission.h for what each key does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"

namespace wafer::host {

// A named range of SubmitJob.priority: from `min_priority` up to the next class's minimum.
struct PriorityClassConfig {
  std::string name;
  uint32_t min_priority = 0;
};

// What a tenant may ask for and how much of a board it is owed.
struct TenantConfig {
  std::string name;  // Empty for `default_tenant`.
  // Fair share within a class: a backlogged tenant is served tokens in proportion to its weight.
  uint32_t weight = 1;
  // The highest class its jobs may use; "" means the top class.
  std::string max_class;
  // A job asking above max_class: false runs it at max_class; true refuses it
  // (PERMISSION_DENIED naming the class).
  bool reject_above_max_class = false;
  // Quotas; 0 means unlimited. Queued jobs (not yet running); tokens (prompt + max_tokens) and
  // requests accepted per minute, as token buckets holding a minute's worth.
  uint32_t max_queued = 0;
  uint64_t tokens_per_minute = 0;
  uint32_t requests_per_minute = 0;
  // A queued job that has missed its TTFT target is shed (FinishReason SHED) instead of run.
  bool shed_on_ttft_miss = false;
};

struct PreemptionConfig {
  bool enabled = true;
  // A running job is preempted only for a job at least this many classes above it...
  uint32_t min_class_gap = 1;
  // ...and only after it has run this long since it was (last) granted a slot.
  uint32_t min_run_ms = 50;
};

struct SchedulingConfig {
  // Highest first, minimums strictly decreasing, the last one 0 (every priority has a class).
  std::vector<PriorityClassConfig> classes = {
      {"interactive", 200}, {"standard", 100}, {"batch", 0}};
  TenantConfig default_tenant;        // For every tenant not named in `tenants`.
  std::vector<TenantConfig> tenants;  // Names unique.
  // Jobs queued for one model; past it a newcomer displaces (sheds) the newest job of a lower
  // class, or is refused QUEUE_FULL.
  uint32_t model_queue_limit = 10000;
  // Fair-share cost of a token (Virtual Token Counter weights): prompt and output tokens.
  uint32_t prompt_token_cost = 1;
  uint32_t output_token_cost = 2;
  PreemptionConfig preemption;

  // Index into `classes` of the class `priority` falls in.
  uint32_t ClassOf(uint32_t priority) const;
  // Index of the class named `name`; classes.size() when none is.
  uint32_t ClassNamed(const std::string& name) const;
  // The tenant's settings: its own, else default_tenant's (whose `name` is empty). No copy: it
  // is looked up on every submit and in the wait estimate's loop over tenants.
  const TenantConfig& TenantNamed(const std::string& name) const;
  // The tenant's label on metrics: its name when configured, else "other" (bounded series).
  std::string MetricLabel(const std::string& tenant) const;
  // The class a job of `priority` from `tenant` runs in: ClassOf(priority), capped at the
  // tenant's max_class. `above_max` (optional) is set when it was capped.
  uint32_t ClassFor(uint32_t priority, const TenantConfig& tenant, bool* above_max) const;
};

}  // namespace wafer::host

namespace wafer::host::config_internal {
class MapReader;
// Reads the scheduling keys of the `scheduler:` map `r` walks into `out` (the other scheduler
// keys are daemon_config.cc's). Returns OK, or INVALID_ARGUMENT naming
// the key and line.
HostStatus ParseSchedulingKeys(MapReader& r, SchedulingConfig* out);
// The defaults of those keys as commented YAML, indented for the `scheduler:` map.
std::string SchedulingDefaultYaml();
}  // namespace wafer::host::config_internal

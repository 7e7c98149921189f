#include "host/scheduler/policy_factory.h"

#include "host/scheduler/fifo_policy.h"

namespace wafer::host {

std::unique_ptr<SchedulingPolicy> MakeSchedulingPolicy(const SchedulerOptions& options,
                                                       std::string* detail) {
  if (options.policy == "fifo") return std::make_unique<FifoPolicy>();
  *detail = "unknown scheduler policy '" + options.policy + "' (known: " + kKnownPolicies + ")";
  return nullptr;
}

}  // namespace wafer::host

#include "host/scheduler/policy_factory.h"

#include "host/scheduler/fair_policy.h"
#include "host/scheduler/fifo_policy.h"

namespace wafer::host {

std::unique_ptr<SchedulingPolicy> MakeSchedulingPolicy(const std::string& name,
                                                       const SchedulingConfig& config,
                                                       std::string* detail) {
  if (name == "fair") return std::make_unique<FairPolicy>(config);
  if (name == "fifo") return std::make_unique<FifoPolicy>();
  *detail = "unknown scheduler policy '" + name + "' (known: " + kKnownPolicies + ")";
  return nullptr;
}

}  // namespace wafer::host

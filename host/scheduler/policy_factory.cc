#include "host/scheduler/policy_factory.h"

#include "host/scheduler/fair_policy.h"
#include "host/scheduler/fifo_policy.h"

namespace wafer::host {

HostResult<std::unique_ptr<SchedulingPolicy>> MakeSchedulingPolicy(const std::string& name,
                                                                   const SchedulingConfig& config) {
  using Policy = std::unique_ptr<SchedulingPolicy>;
  if (name == "fair") return Policy(std::make_unique<FairPolicy>(config));
  if (name == "fifo") return Policy(std::make_unique<FifoPolicy>());
  return Error{StatusCode::kInvalidArgument,
               "unknown scheduler policy '" + name + "' (known: " + kKnownPolicies + ")"};
}

}  // namespace wafer::host

// Makes the scheduling policy the configuration names.
#pragma once

#include <memory>
#include <string>

#include "host/scheduler/scheduling_policy.h"

namespace wafer::host {

// The `scheduler:` options a policy is made from. FIFO reads none beyond its name; policies with
// tenant weights, classes and quotas add their fields here and read them in their constructor.
struct SchedulerOptions {
  std::string policy = "fifo";
};

// Names of the known policies, for messages and `--help`.
inline constexpr const char* kKnownPolicies = "fifo";

// Returns nullptr, with `detail` naming the policy and the known ones, for an unknown name.
std::unique_ptr<SchedulingPolicy> MakeSchedulingPolicy(const SchedulerOptions& options,
                                                       std::string* detail);

}  // namespace wafer::host

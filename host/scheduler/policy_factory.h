// Makes the scheduling policy the configuration names.
#pragma once

#include <memory>
#include <string>

#include "common/error.h"
#include "host/config/scheduling_config.h"
#include "host/scheduler/scheduling_policy.h"

namespace wafer::host {

// Names of the known policies, for messages and `--help`.
inline constexpr const char* kKnownPolicies = "fair, fifo";

// The policy `name` (scheduler.policy), reading what it needs of `config` (FIFO: nothing).
//
// Returns:
//   OK               - the policy (never null).
//   INVALID_ARGUMENT - an unknown name; the message names it and the known ones.
HostResult<std::unique_ptr<SchedulingPolicy>> MakeSchedulingPolicy(const std::string& name,
                                                                   const SchedulingConfig& config);

}  // namespace wafer::host

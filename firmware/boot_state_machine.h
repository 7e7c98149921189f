// The firmware's boot state machine and which commands each state serves.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "firmware/command.h"

namespace wafer::fw {

enum class BootEvent : uint8_t { kBoot, kSelfTestPassed, kSelfTestFailed, kReset, kFatalFault };

// Transitions (anything not drawn is FAILED_PRECONDITION and leaves the state unchanged):
//
//            Boot                  SelfTestPassed
//   PowerOn ------> SelfTest ---------------------> Ready --Boot--> Ready (idempotent)
//      ^               |  SelfTestFailed
//      |               +------------------> Faulted
//      +---- Reset from every state (PowerOn, SelfTest, Ready, Faulted)
//
//   Ready --FatalFault (thermal trip)--> Faulted
//
// Not thread-safe; owned by the command processor.
class BootStateMachine {
 public:
  BootState state() const { return state_; }

  // Applies `event`. OK, or FAILED_PRECONDITION when the event is not valid in this state.
  Status Step(BootEvent event);

 private:
  BootState state_ = BootState::kPowerOn;
};

// True when `kind` may be served in `state`. Identify, ReadTelemetry, Reset, Heartbeat and
// ReadErrorLog, ReadGeometry, ReadFaults and InjectFault are always served; Boot in PowerOn and Ready; firmware image transfer in every
// state but SelfTest (a faulted board can be re-flashed); model commands and Step only in Ready.
bool IsCommandAllowed(BootState state, CommandKind kind);

}  // namespace wafer::fw

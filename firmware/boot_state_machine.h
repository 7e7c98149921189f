// The firmware's boot state machine and which commands each state serves.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "firmware/command.h"

namespace wafer::fw {

// New events are appended (the error log records an event's value in kBootTransition).
enum class BootEvent : uint8_t {
  kBoot,
  kSelfTestPassed,
  kSelfTestFailed,
  kReset,
  kFatalFault,
  kImageVerified,  // The running slot's image passed its CRC-32C and signature check.
  kImageInvalid,   // It failed them, or the running slot holds no image.
  kRemapDone,      // The defect remap programmed the row shifters.
  kRemapFailed,    // No usable row remained, or the shifters could not be programmed.
};

// Transitions (anything not drawn is FAILED_PRECONDITION and leaves the state unchanged):
//
//            Boot            SelfTestPassed              ImageVerified         RemapDone
//   PowerOn ------> SelfTest ---------------> VerifyImage --------------> Remap ----------> Ready
//      ^               |                          |                         |                |
//      |               | SelfTestFailed           | ImageInvalid            | RemapFailed    |
//      |               v                          |                         |                |
//      |            Faulted <---------------------+-------------------------+                |
//      |               ^                                                                     |
//      |               +--------------------- FatalFault (thermal trip) ---------------------+
//      |
//      +---- Reset from every state (PowerOn, SelfTest, VerifyImage, Remap, Ready, Faulted)
//
//   Ready --Boot--> Ready (idempotent: OK, no change)
//
// The machine only records where the boot is; the command processor runs each stage and decides
// what a failure means for the firmware slots (a failed trial image, or an invalid image with a
// valid one in the other slot, is rolled back: Faulted -Reset-> PowerOn -Boot-> ... again on the
// other slot).
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

// True when `kind` may be served in `state`.
//   - Always: Identify, ReadTelemetry, Reset, Heartbeat, ReadErrorLog, ReadGeometry, ReadFaults,
//     InjectFault and ReadFirmwareSlots (what a host needs to see and recover a board in any
//     state).
//   - Boot: in PowerOn, and in Ready (idempotent).
//   - Firmware image transfer (Begin/WriteChunk/CommitFirmwareImage) and RollbackFirmware: in
//     PowerOn, Ready and
//     Faulted (a faulted board can be re-flashed), never while a boot is in progress (SelfTest,
//     VerifyImage, Remap): the boot reads and may rewrite the slots and their boot-control
//     record.
//   - Model commands and Step: only in Ready.
// SelfTest, VerifyImage and Remap are the three boot-in-progress states and serve the same set.
bool IsCommandAllowed(BootState state, CommandKind kind);

}  // namespace wafer::fw

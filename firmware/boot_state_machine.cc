#include "firmware/boot_state_machine.h"

namespace wafer::fw {

Status BootStateMachine::Step(BootEvent event) {
  if (event == BootEvent::kReset) {
    state_ = BootState::kPowerOn;
    return OkStatus();
  }
  switch (state_) {
    case BootState::kPowerOn:
      if (event == BootEvent::kBoot) {
        state_ = BootState::kSelfTest;
        return OkStatus();
      }
      return FailedPrecondition();
    case BootState::kSelfTest:
      if (event == BootEvent::kSelfTestPassed) {
        state_ = BootState::kReady;
        return OkStatus();
      }
      if (event == BootEvent::kSelfTestFailed) {
        state_ = BootState::kFaulted;
        return OkStatus();
      }
      return FailedPrecondition();
    case BootState::kReady:
      if (event == BootEvent::kFatalFault) {
        state_ = BootState::kFaulted;
        return OkStatus();
      }
      return event == BootEvent::kBoot ? OkStatus() : FailedPrecondition();
    case BootState::kFaulted:
      return FailedPrecondition();
  }
  return Internal();  // Unreachable: the switch is exhaustive.
}

namespace {

bool AlwaysServed(CommandKind kind) {
  switch (kind) {
    case CommandKind::kIdentify:
    case CommandKind::kReadTelemetry:
    case CommandKind::kReset:
    case CommandKind::kHeartbeat:
    case CommandKind::kReadErrorLog:
    case CommandKind::kReadGeometry:
    case CommandKind::kReadFaults:
    case CommandKind::kInjectFault:
      return true;
    case CommandKind::kBoot:
    case CommandKind::kBeginModel:
    case CommandKind::kWriteWeights:
    case CommandKind::kCommitModel:
    case CommandKind::kUnloadModel:
    case CommandKind::kStep:
    case CommandKind::kBeginFirmwareImage:
    case CommandKind::kWriteFirmwareChunk:
    case CommandKind::kCommitFirmwareImage:
      return false;
  }
  return false;
}

bool IsFirmwareUpdate(CommandKind kind) {
  return kind == CommandKind::kBeginFirmwareImage || kind == CommandKind::kWriteFirmwareChunk ||
         kind == CommandKind::kCommitFirmwareImage;
}

}  // namespace

bool IsCommandAllowed(BootState state, CommandKind kind) {
  if (AlwaysServed(kind)) return true;
  switch (state) {
    case BootState::kPowerOn:
      return kind == CommandKind::kBoot || IsFirmwareUpdate(kind);
    case BootState::kSelfTest:
      return false;
    case BootState::kFaulted:
      return IsFirmwareUpdate(kind);  // A faulted board can still be re-flashed.
    case BootState::kReady:
      return true;
  }
  return false;
}

}  // namespace wafer::fw

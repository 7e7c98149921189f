#include "firmware/boot_state_machine.h"

namespace wafer::fw {
namespace {

// Moves to `to` when `event` is `expected`.
Status Edge(BootState& state, BootEvent event, BootEvent expected, BootState to) {
  if (event != expected) return FailedPrecondition();
  state = to;
  return OkStatus();
}

}  // namespace

Status BootStateMachine::Step(BootEvent event) {
  if (event == BootEvent::kReset) {
    state_ = BootState::kPowerOn;
    return OkStatus();
  }
  switch (state_) {
    case BootState::kPowerOn:
      return Edge(state_, event, BootEvent::kBoot, BootState::kSelfTest);
    case BootState::kSelfTest:
      if (event == BootEvent::kSelfTestFailed) {
        state_ = BootState::kFaulted;
        return OkStatus();
      }
      return Edge(state_, event, BootEvent::kSelfTestPassed, BootState::kVerifyImage);
    case BootState::kVerifyImage:
      if (event == BootEvent::kImageInvalid) {
        state_ = BootState::kFaulted;
        return OkStatus();
      }
      return Edge(state_, event, BootEvent::kImageVerified, BootState::kRemap);
    case BootState::kRemap:
      if (event == BootEvent::kRemapFailed) {
        state_ = BootState::kFaulted;
        return OkStatus();
      }
      return Edge(state_, event, BootEvent::kRemapDone, BootState::kReady);
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
    case CommandKind::kReadFirmwareSlots:
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
    case CommandKind::kRunDiagnostic:
    case CommandKind::kRollbackFirmware:
      return false;
  }
  return false;
}

bool IsFirmwareUpdate(CommandKind kind) {
  return kind == CommandKind::kBeginFirmwareImage || kind == CommandKind::kWriteFirmwareChunk ||
         kind == CommandKind::kCommitFirmwareImage || kind == CommandKind::kRollbackFirmware;
}

}  // namespace

bool IsCommandAllowed(BootState state, CommandKind kind) {
  if (AlwaysServed(kind)) return true;
  switch (state) {
    case BootState::kPowerOn:
      return kind == CommandKind::kBoot || IsFirmwareUpdate(kind);
    case BootState::kSelfTest:
    case BootState::kVerifyImage:
    case BootState::kRemap:
      return false;  // A boot is in progress.
    case BootState::kFaulted:
      return IsFirmwareUpdate(kind);  // A faulted board can still be re-flashed.
    case BootState::kReady:
      return true;
  }
  return false;
}

}  // namespace wafer::fw

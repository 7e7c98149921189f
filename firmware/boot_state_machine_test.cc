#include "firmware/boot_state_machine.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace wafer::fw {
namespace {

constexpr BootState kStates[] = {BootState::kPowerOn,     BootState::kSelfTest,
                                 BootState::kVerifyImage, BootState::kRemap,
                                 BootState::kReady,       BootState::kFaulted};
constexpr BootEvent kEvents[] = {BootEvent::kBoot,          BootEvent::kSelfTestPassed,
                                 BootEvent::kSelfTestFailed, BootEvent::kReset,
                                 BootEvent::kFatalFault,    BootEvent::kImageVerified,
                                 BootEvent::kImageInvalid,  BootEvent::kRemapDone,
                                 BootEvent::kRemapFailed};

// A machine in `target`, reached through valid edges only.
BootStateMachine At(BootState target) {
  BootStateMachine m;
  auto step = [&](BootEvent e) { EXPECT_TRUE(m.Step(e).ok()); };
  switch (target) {
    case BootState::kPowerOn:
      break;
    case BootState::kSelfTest:
      step(BootEvent::kBoot);
      break;
    case BootState::kVerifyImage:
      step(BootEvent::kBoot);
      step(BootEvent::kSelfTestPassed);
      break;
    case BootState::kRemap:
      step(BootEvent::kBoot);
      step(BootEvent::kSelfTestPassed);
      step(BootEvent::kImageVerified);
      break;
    case BootState::kReady:
      step(BootEvent::kBoot);
      step(BootEvent::kSelfTestPassed);
      step(BootEvent::kImageVerified);
      step(BootEvent::kRemapDone);
      break;
    case BootState::kFaulted:
      step(BootEvent::kBoot);
      step(BootEvent::kSelfTestFailed);
      break;
  }
  EXPECT_EQ(m.state(), target);
  return m;
}

struct Edge {
  BootState from;
  BootEvent event;
  bool ok;
  BootState to;
};

using S = BootState;
using E = BootEvent;

// Every (state, event) pair: the drawn edges (ok) and the rejected ones (state unchanged).
constexpr Edge kEdges[] = {
    {S::kPowerOn, E::kBoot, true, S::kSelfTest},
    {S::kPowerOn, E::kSelfTestPassed, false, S::kPowerOn},
    {S::kPowerOn, E::kSelfTestFailed, false, S::kPowerOn},
    {S::kPowerOn, E::kReset, true, S::kPowerOn},
    {S::kPowerOn, E::kFatalFault, false, S::kPowerOn},
    {S::kPowerOn, E::kImageVerified, false, S::kPowerOn},
    {S::kPowerOn, E::kImageInvalid, false, S::kPowerOn},
    {S::kPowerOn, E::kRemapDone, false, S::kPowerOn},
    {S::kPowerOn, E::kRemapFailed, false, S::kPowerOn},

    {S::kSelfTest, E::kBoot, false, S::kSelfTest},
    {S::kSelfTest, E::kSelfTestPassed, true, S::kVerifyImage},
    {S::kSelfTest, E::kSelfTestFailed, true, S::kFaulted},
    {S::kSelfTest, E::kReset, true, S::kPowerOn},
    {S::kSelfTest, E::kFatalFault, false, S::kSelfTest},
    {S::kSelfTest, E::kImageVerified, false, S::kSelfTest},
    {S::kSelfTest, E::kImageInvalid, false, S::kSelfTest},
    {S::kSelfTest, E::kRemapDone, false, S::kSelfTest},
    {S::kSelfTest, E::kRemapFailed, false, S::kSelfTest},

    {S::kVerifyImage, E::kBoot, false, S::kVerifyImage},
    {S::kVerifyImage, E::kSelfTestPassed, false, S::kVerifyImage},
    {S::kVerifyImage, E::kSelfTestFailed, false, S::kVerifyImage},
    {S::kVerifyImage, E::kReset, true, S::kPowerOn},
    {S::kVerifyImage, E::kFatalFault, false, S::kVerifyImage},
    {S::kVerifyImage, E::kImageVerified, true, S::kRemap},
    {S::kVerifyImage, E::kImageInvalid, true, S::kFaulted},
    {S::kVerifyImage, E::kRemapDone, false, S::kVerifyImage},
    {S::kVerifyImage, E::kRemapFailed, false, S::kVerifyImage},

    {S::kRemap, E::kBoot, false, S::kRemap},
    {S::kRemap, E::kSelfTestPassed, false, S::kRemap},
    {S::kRemap, E::kSelfTestFailed, false, S::kRemap},
    {S::kRemap, E::kReset, true, S::kPowerOn},
    {S::kRemap, E::kFatalFault, false, S::kRemap},
    {S::kRemap, E::kImageVerified, false, S::kRemap},
    {S::kRemap, E::kImageInvalid, false, S::kRemap},
    {S::kRemap, E::kRemapDone, true, S::kReady},
    {S::kRemap, E::kRemapFailed, true, S::kFaulted},

    {S::kReady, E::kBoot, true, S::kReady},
    {S::kReady, E::kSelfTestPassed, false, S::kReady},
    {S::kReady, E::kSelfTestFailed, false, S::kReady},
    {S::kReady, E::kReset, true, S::kPowerOn},
    {S::kReady, E::kFatalFault, true, S::kFaulted},
    {S::kReady, E::kImageVerified, false, S::kReady},
    {S::kReady, E::kImageInvalid, false, S::kReady},
    {S::kReady, E::kRemapDone, false, S::kReady},
    {S::kReady, E::kRemapFailed, false, S::kReady},

    {S::kFaulted, E::kBoot, false, S::kFaulted},
    {S::kFaulted, E::kSelfTestPassed, false, S::kFaulted},
    {S::kFaulted, E::kSelfTestFailed, false, S::kFaulted},
    {S::kFaulted, E::kReset, true, S::kPowerOn},
    {S::kFaulted, E::kFatalFault, false, S::kFaulted},
    {S::kFaulted, E::kImageVerified, false, S::kFaulted},
    {S::kFaulted, E::kImageInvalid, false, S::kFaulted},
    {S::kFaulted, E::kRemapDone, false, S::kFaulted},
    {S::kFaulted, E::kRemapFailed, false, S::kFaulted},
};

TEST(BootStateMachineTest, TheEdgeTableCoversEveryStateAndEventOnce) {
  std::set<std::pair<int, int>> seen;
  for (const Edge& e : kEdges) {
    EXPECT_TRUE(seen.insert({int(e.from), int(e.event)}).second)
        << "listed twice: state " << int(e.from) << " event " << int(e.event);
  }
  for (BootState s : kStates) {
    for (BootEvent e : kEvents) {
      EXPECT_EQ(seen.count({int(s), int(e)}), 1u) << "state " << int(s) << " event " << int(e);
    }
  }
}

TEST(BootStateMachineTest, EveryEdge) {
  for (const Edge& e : kEdges) {
    BootStateMachine m = At(e.from);
    Status s = m.Step(e.event);
    SCOPED_TRACE(testing::Message() << "from " << int(e.from) << " event " << int(e.event));
    EXPECT_EQ(s.ok(), e.ok);
    if (!e.ok) {
      EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
    }
    EXPECT_EQ(m.state(), e.to);
  }
}

TEST(BootStateMachineTest, FullBootAndRecoveryAfterEachFailure) {
  BootStateMachine m;
  for (BootEvent e : {E::kBoot, E::kSelfTestPassed, E::kImageVerified, E::kRemapDone}) {
    ASSERT_TRUE(m.Step(e).ok());
  }
  EXPECT_EQ(m.state(), S::kReady);
  // Each failure ends in Faulted, and a Reset starts the boot over.
  for (BootState failing : {S::kSelfTest, S::kVerifyImage, S::kRemap}) {
    m = At(failing);
    const BootEvent fail = failing == S::kSelfTest      ? E::kSelfTestFailed
                           : failing == S::kVerifyImage ? E::kImageInvalid
                                                        : E::kRemapFailed;
    ASSERT_TRUE(m.Step(fail).ok());
    EXPECT_EQ(m.state(), S::kFaulted);
    EXPECT_EQ(m.Step(E::kBoot).code(), StatusCode::kFailedPrecondition);
    ASSERT_TRUE(m.Step(E::kReset).ok());
    EXPECT_EQ(m.state(), S::kPowerOn);
    EXPECT_TRUE(m.Step(E::kBoot).ok());
  }
}

// Image transfer and the operator's rollback: both write the slots' boot-control record.
bool IsFirmwareUpdate(CommandKind k) {
  return k == CommandKind::kBeginFirmwareImage || k == CommandKind::kWriteFirmwareChunk ||
         k == CommandKind::kCommitFirmwareImage || k == CommandKind::kRollbackFirmware;
}

// Served in Ready only.
bool IsModelCommand(CommandKind k) {
  return k == CommandKind::kBeginModel || k == CommandKind::kWriteWeights ||
         k == CommandKind::kCommitModel || k == CommandKind::kUnloadModel ||
         k == CommandKind::kStep || k == CommandKind::kRunDiagnostic;
}

// The documented rule of IsCommandAllowed, for every state and every command.
TEST(BootStateMachineTest, CommandGatingInEveryState) {
  for (BootState s : kStates) {
    const bool booting =
        s == S::kSelfTest || s == S::kVerifyImage || s == S::kRemap;
    for (int k = 0; k <= static_cast<int>(CommandKind::kRollbackFirmware); ++k) {
      const CommandKind kind = static_cast<CommandKind>(k);
      SCOPED_TRACE(testing::Message() << "state " << int(s) << " command " << k);
      bool want;
      if (kind == CommandKind::kBoot) {
        want = s == S::kPowerOn || s == S::kReady;
      } else if (IsFirmwareUpdate(kind)) {
        want = !booting;  // A faulted board can be re-flashed.
      } else if (IsModelCommand(kind)) {
        want = s == S::kReady;
      } else {
        // Identify, telemetry, reset, heartbeat, logs, geometry, faults, firmware slots.
        want = true;
      }
      EXPECT_EQ(IsCommandAllowed(s, kind), want);
    }
  }
}

TEST(BootStateMachineTest, CommandGatingSpotChecks) {
  EXPECT_TRUE(IsCommandAllowed(S::kPowerOn, CommandKind::kBoot));
  EXPECT_FALSE(IsCommandAllowed(S::kPowerOn, CommandKind::kStep));
  EXPECT_FALSE(IsCommandAllowed(S::kFaulted, CommandKind::kBoot));
  EXPECT_FALSE(IsCommandAllowed(S::kVerifyImage, CommandKind::kBeginFirmwareImage));
  EXPECT_FALSE(IsCommandAllowed(S::kRemap, CommandKind::kBeginModel));
  EXPECT_TRUE(IsCommandAllowed(S::kRemap, CommandKind::kReset));
  EXPECT_TRUE(IsCommandAllowed(S::kVerifyImage, CommandKind::kReadErrorLog));
  EXPECT_TRUE(IsCommandAllowed(S::kReady, CommandKind::kStep));
  EXPECT_TRUE(IsCommandAllowed(S::kFaulted, CommandKind::kCommitFirmwareImage));
}

}  // namespace
}  // namespace wafer::fw

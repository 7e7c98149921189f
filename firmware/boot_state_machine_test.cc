#include "firmware/boot_state_machine.h"

#include <gtest/gtest.h>

namespace wafer::fw {
namespace {

BootStateMachine At(BootState target) {
  BootStateMachine m;
  switch (target) {
    case BootState::kPowerOn:
      break;
    case BootState::kSelfTest:
      EXPECT_TRUE(m.Step(BootEvent::kBoot).ok());
      break;
    case BootState::kReady:
      EXPECT_TRUE(m.Step(BootEvent::kBoot).ok());
      EXPECT_TRUE(m.Step(BootEvent::kSelfTestPassed).ok());
      break;
    case BootState::kFaulted:
      EXPECT_TRUE(m.Step(BootEvent::kBoot).ok());
      EXPECT_TRUE(m.Step(BootEvent::kSelfTestFailed).ok());
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

// Every (state, event) pair: the drawn edges and the rejected ones.
constexpr Edge kEdges[] = {
    {BootState::kPowerOn, BootEvent::kBoot, true, BootState::kSelfTest},
    {BootState::kPowerOn, BootEvent::kSelfTestPassed, false, BootState::kPowerOn},
    {BootState::kPowerOn, BootEvent::kSelfTestFailed, false, BootState::kPowerOn},
    {BootState::kPowerOn, BootEvent::kReset, true, BootState::kPowerOn},
    {BootState::kSelfTest, BootEvent::kBoot, false, BootState::kSelfTest},
    {BootState::kSelfTest, BootEvent::kSelfTestPassed, true, BootState::kReady},
    {BootState::kSelfTest, BootEvent::kSelfTestFailed, true, BootState::kFaulted},
    {BootState::kSelfTest, BootEvent::kReset, true, BootState::kPowerOn},
    {BootState::kReady, BootEvent::kBoot, true, BootState::kReady},
    {BootState::kReady, BootEvent::kSelfTestPassed, false, BootState::kReady},
    {BootState::kReady, BootEvent::kSelfTestFailed, false, BootState::kReady},
    {BootState::kReady, BootEvent::kReset, true, BootState::kPowerOn},
    {BootState::kFaulted, BootEvent::kBoot, false, BootState::kFaulted},
    {BootState::kFaulted, BootEvent::kSelfTestPassed, false, BootState::kFaulted},
    {BootState::kFaulted, BootEvent::kSelfTestFailed, false, BootState::kFaulted},
    {BootState::kFaulted, BootEvent::kReset, true, BootState::kPowerOn},
    {BootState::kPowerOn, BootEvent::kFatalFault, false, BootState::kPowerOn},
    {BootState::kSelfTest, BootEvent::kFatalFault, false, BootState::kSelfTest},
    {BootState::kReady, BootEvent::kFatalFault, true, BootState::kFaulted},
    {BootState::kFaulted, BootEvent::kFatalFault, false, BootState::kFaulted},
};

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

TEST(BootStateMachineTest, CommandGating) {
  EXPECT_TRUE(IsCommandAllowed(BootState::kPowerOn, CommandKind::kBoot));
  EXPECT_FALSE(IsCommandAllowed(BootState::kPowerOn, CommandKind::kStep));
  EXPECT_FALSE(IsCommandAllowed(BootState::kPowerOn, CommandKind::kBeginModel));
  EXPECT_FALSE(IsCommandAllowed(BootState::kFaulted, CommandKind::kBoot));
  EXPECT_FALSE(IsCommandAllowed(BootState::kFaulted, CommandKind::kWriteWeights));
  EXPECT_FALSE(IsCommandAllowed(BootState::kSelfTest, CommandKind::kStep));
  for (BootState s : {BootState::kPowerOn, BootState::kSelfTest, BootState::kReady,
                      BootState::kFaulted}) {
    EXPECT_TRUE(IsCommandAllowed(s, CommandKind::kIdentify));
    EXPECT_TRUE(IsCommandAllowed(s, CommandKind::kReadTelemetry));
    EXPECT_TRUE(IsCommandAllowed(s, CommandKind::kReset));
    EXPECT_TRUE(IsCommandAllowed(s, CommandKind::kHeartbeat));
    EXPECT_TRUE(IsCommandAllowed(s, CommandKind::kReadErrorLog));
    // Firmware transfer: everywhere but during the self-test (a faulted board can be re-flashed).
    for (CommandKind k : {CommandKind::kBeginFirmwareImage, CommandKind::kWriteFirmwareChunk,
                          CommandKind::kCommitFirmwareImage}) {
      EXPECT_EQ(IsCommandAllowed(s, k), s != BootState::kSelfTest);
    }
  }
  EXPECT_TRUE(IsCommandAllowed(BootState::kReady, CommandKind::kStep));
  EXPECT_TRUE(IsCommandAllowed(BootState::kReady, CommandKind::kCommitModel));
}

}  // namespace
}  // namespace wafer::fw

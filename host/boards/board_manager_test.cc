// The board manager's own logic, without worker threads: board updates become states and run
// the health hook, and drains with reasons reach the drain listener.
#include "host/boards/board_manager.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

// No worker is started in these tests: the factory must never be called.
BoardLinkFactory NoLinks() {
  return [](const BoardConfig&) -> HostResult<std::unique_ptr<BoardLink>> {
    ADD_FAILURE() << "no board link expected";
    return Error{StatusCode::kUnavailable, "no board link expected"};
  };
}

BoardUpdate Ready(float hottest_c) {
  BoardUpdate u;
  u.online = true;
  u.boot_state = BoardBootState::kReady;
  u.has_telemetry = true;
  u.telemetry.region_temp_c = {40.0f, hottest_c};
  return u;
}

class BoardManagerTest : public ::testing::Test {
 protected:
  BoardManagerTest()
      : boards_(context_, clock_, {BoardConfig{}, BoardConfig{}}, NoLinks(), metrics_) {}

  zmq::context_t context_{1};
  FakeClock clock_;
  telemetry::DaemonMetrics metrics_;
  BoardManager boards_;
};

TEST_F(BoardManagerTest, UpdatesSetTheStateAndReturnThePreviousOne) {
  Board& board = boards_.at(1);
  EXPECT_FALSE(board.heard);
  EXPECT_EQ(boards_.ApplyUpdate(board, Ready(50)), BoardState::kOffline);
  EXPECT_EQ(board.state, BoardState::kReady);
  EXPECT_TRUE(board.heard);
  EXPECT_TRUE(board.accepts_work());
  BoardUpdate offline;
  EXPECT_EQ(boards_.ApplyUpdate(board, offline), BoardState::kReady);
  EXPECT_EQ(board.state, BoardState::kOffline);
  EXPECT_FALSE(board.runs_steps());
}

TEST_F(BoardManagerTest, TheHealthHookRunsOnEveryUpdateAndMayDrainAndUndrain) {
  // A rule of the kind the health issue brings: too hot drains the board, cool again lifts it.
  std::vector<uint32_t> hooked;
  boards_.set_health_hook([&](const Board& board, BoardManager& boards) {
    hooked.push_back(board.index);
    float hottest = 0;
    for (float t : board.telemetry.region_temp_c) hottest = std::max(hottest, t);
    if (hottest > 90) {
      boards.Drain(board.index, DrainReason::kHealthIncident, DrainMode::kEvacuate);
    } else {
      boards.Undrain(board.index, DrainReason::kHealthIncident);
    }
  });
  std::vector<std::string> heard;
  boards_.set_drain_listener([&](Board& board) {
    heard.push_back(std::to_string(board.index) + ": " + board.drain.Describe());
  });
  boards_.ApplyUpdate(boards_.at(0), Ready(60));
  boards_.ApplyUpdate(boards_.at(0), Ready(95));
  EXPECT_FALSE(boards_.at(0).accepts_work());
  EXPECT_TRUE(boards_.at(0).runs_steps());  // Drained, yet its running work may still step.
  boards_.ApplyUpdate(boards_.at(0), Ready(96));  // Still hot: no new change.
  boards_.ApplyUpdate(boards_.at(0), Ready(70));
  EXPECT_TRUE(boards_.at(0).accepts_work());
  EXPECT_EQ(hooked, (std::vector<uint32_t>{0, 0, 0, 0}));
  EXPECT_EQ(heard, (std::vector<std::string>{"0: health incident (evacuate)", "0: "}));
}

TEST_F(BoardManagerTest, AnOperatorUndrainLeavesAHealthDrainInForce) {
  std::vector<DrainMode> modes;
  boards_.set_drain_listener([&](Board& board) { modes.push_back(board.drain.mode()); });
  EXPECT_TRUE(boards_.Drain(1, DrainReason::kHealthIncident, DrainMode::kGraceful));
  EXPECT_TRUE(boards_.Drain(1, DrainReason::kOperator, DrainMode::kEvacuate));
  EXPECT_TRUE(boards_.Undrain(1, DrainReason::kOperator));
  EXPECT_TRUE(boards_.at(1).drain.drained());
  EXPECT_TRUE(boards_.at(1).drain.Has(DrainReason::kHealthIncident));
  EXPECT_EQ(modes, (std::vector<DrainMode>{DrainMode::kGraceful, DrainMode::kEvacuate,
                                           DrainMode::kGraceful}));
  EXPECT_FALSE(boards_.at(0).drain.drained());  // The other board is untouched.
  // wafer_board_drained{board="1"}: the health reason holds, the operator's was lifted.
  const telemetry::BoardSeries& series = metrics_.Board(1, 0);
  ASSERT_EQ(series.drained.size(), 3u);
  EXPECT_EQ(series.drained[0]->Value(), 0);  // operator
  EXPECT_EQ(series.drained[1]->Value(), 1);  // health_incident
  EXPECT_EQ(series.drained[2]->Value(), 0);  // diagnostics
  EXPECT_FALSE(boards_.Drain(7, DrainReason::kOperator, DrainMode::kGraceful));  // No board 7.
}

}  // namespace
}  // namespace wafer::host

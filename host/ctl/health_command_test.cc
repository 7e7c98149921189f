#include "host/ctl/health_command.h"

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/ctl/exit_codes.h"

namespace wafer::host {
namespace {

HealthReply TwoBoards() {
  HealthReply r;
  BoardHealthInfo ok;
  ok.board = 0;
  ok.evaluated = true;
  ok.rules.push_back({"temperature", WireHealthLevel::kPass, 0, "", "hottest region 60.0 C", ""});
  BoardHealthInfo hot;
  hot.board = 1;
  hot.level = WireHealthLevel::kFail;
  hot.evaluated = true;
  hot.drain = "health incident (evacuate)";
  hot.rules.push_back({"temperature", WireHealthLevel::kFail, 102, "TEMPERATURE_CRITICAL",
                       "hottest region 101.0 C, critical at 100 C", "drained and reset"});
  hot.open = HealthIncidentInfo{4,  1, 102, "TEMPERATURE_CRITICAL", "temperature: too hot",
                                "recovering", 1'700'000'000'000, 0, 1, "reset 1 of 3 sent",
                                "drained and reset"};
  r.boards = {ok, hot};
  return r;
}

TEST(HealthCommandTest, ExitCodesFollowTheWorstBoard) {
  HealthReply r = TwoBoards();
  EXPECT_EQ(HealthExitCode(r), kExitHealthFail);
  r.boards[1].level = WireHealthLevel::kWarn;
  EXPECT_EQ(HealthExitCode(r), kExitHealthWarn);
  r.boards[1].level = WireHealthLevel::kPass;
  EXPECT_EQ(HealthExitCode(r), kExitOk);
  // They collide with none of waferctl's other codes.
  for (int other : {kExitOk, kExitFailed, kExitUsage, kExitUnreachable, kExitProtocol}) {
    EXPECT_NE(kExitHealthWarn, other);
    EXPECT_NE(kExitHealthFail, other);
  }
}

TEST(HealthCommandTest, TextShowsTheIncidentItsActionsAndEachRule) {
  std::ostringstream out;
  RenderHealth(TwoBoards(), false, 1'700'000'090'000, out);
  EXPECT_EQ(out.str(),
            "board 0: PASS\n"
            "  temperature        PASS        hottest region 60.0 C\n"
            "board 1: FAIL, drained: health incident (evacuate)\n"
            "  incident 4: 102 TEMPERATURE_CRITICAL, recovering since 2023-11-14T22:13:20Z "
            "(1m30s ago), resets 1\n"
            "    temperature: too hot\n"
            "    done: reset 1 of 3 sent\n"
            "    to do: drained and reset\n"
            "  temperature        FAIL   102  hottest region 101.0 C, critical at 100 C\n");
}

TEST(HealthCommandTest, JsonCarriesEveryField) {
  std::ostringstream out;
  RenderHealth(TwoBoards(), true, 0, out);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  EXPECT_TRUE(j["ok"]);
  ASSERT_EQ(j["boards"].size(), 2u);
  EXPECT_TRUE(j["boards"][0]["incident"].is_null());
  const nlohmann::json& hot = j["boards"][1];
  EXPECT_EQ(hot["level"], "FAIL");
  EXPECT_EQ(hot["drain"], "health incident (evacuate)");
  EXPECT_EQ(hot["rules"][0]["code_name"], "TEMPERATURE_CRITICAL");
  EXPECT_EQ(hot["incident"]["state"], "recovering");
  EXPECT_EQ(hot["incident"]["recoveries"], 1);
  EXPECT_EQ(hot["incident"]["opened_unix_ms"], 1'700'000'000'000);
}

}  // namespace
}  // namespace wafer::host

// TopView: rates from two replies, a restarted daemon, grouping replicas, the busiest tenants,
// the reconnecting banner and what fits the screen.
#include "host/ctl/top_view.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

StatusReply Reply(double uptime_s, double busy_s, uint64_t tokens, uint64_t team_a_tokens) {
  StatusReply r;
  r.version = "0.1.0";
  r.uptime_s = uptime_s;
  BoardInfo b;
  b.index = 0;
  b.state = BoardState::kReady;
  b.region_temp_c = {50.0f, 71.5f, 60.25f, 70.0f};
  b.max_temperature_c = 71.5f;
  b.power_w = 412;
  b.sram_bytes = 64'000'000;
  b.sram_used_bytes = 16'000'000;
  b.busy_s = busy_s;
  b.tokens_generated = tokens;
  r.boards.push_back(b);
  r.models.push_back(ModelInfo{"demo", "/m", ModelState::kReady, 0, 1, 1, 128, 32, 10, {0}});
  r.models.push_back(ModelInfo{"demo", "/m", ModelState::kLoading, 1, 1, 1, 128, 32, 0, {1}});
  r.queues.push_back(ModelQueue{"demo", {{"interactive", 2}, {"batch", 7}}});
  r.tenants.push_back(TenantActivity{"team-a", 0, 1, team_a_tokens});
  r.tenants.push_back(TenantActivity{"team-b", 3, 0, 500});
  return r;
}

TEST(TopViewTest, RatesComeFromTheGrowthBetweenTwoReplies) {
  TopView view;
  view.Add(Reply(10, 2, 1000, 100));
  std::vector<TopView::BoardRow> boards = view.Boards();
  ASSERT_EQ(boards.size(), 1u);
  EXPECT_FALSE(boards[0].utilization.has_value());  // One reply: no rate yet.
  EXPECT_FALSE(boards[0].tokens_per_s.has_value());
  view.Add(Reply(12, 3.5, 1400, 500));
  boards = view.Boards();
  EXPECT_DOUBLE_EQ(*boards[0].utilization, 0.75);
  EXPECT_DOUBLE_EQ(*boards[0].tokens_per_s, 200.0);
  ASSERT_EQ(boards[0].hottest.size(), 3u);
  EXPECT_EQ(boards[0].hottest[0].first, 1u);
  EXPECT_EQ(boards[0].hottest[1].first, 3u);
  EXPECT_EQ(boards[0].hottest[2].first, 2u);

  std::vector<TopView::TenantRow> tenants = view.Tenants();
  ASSERT_EQ(tenants.size(), 2u);
  EXPECT_EQ(tenants[0].tenant, "team-a");  // 200 tokens/s beats team-b's 0 (but 3 running).
  EXPECT_DOUBLE_EQ(*tenants[0].tokens_per_s, 200.0);
  EXPECT_DOUBLE_EQ(*tenants[1].tokens_per_s, 0.0);

  // A restarted daemon (uptime went back): the rates start afresh instead of going negative.
  view.Add(Reply(1, 0.1, 10, 0));
  EXPECT_FALSE(view.Boards()[0].utilization.has_value());
}

TEST(TopViewTest, ModelsGroupTheirReplicasWithTheQueueByClass) {
  TopView view;
  view.Add(Reply(10, 2, 1000, 100));
  std::vector<TopView::ModelRow> models = view.Models();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].replicas, 2u);
  EXPECT_EQ(models[0].state, "ready");
  EXPECT_EQ(models[0].slots, 64u);
  EXPECT_EQ(models[0].slots_used, 10u);
  ASSERT_EQ(models[0].queue.size(), 2u);
  EXPECT_EQ(models[0].queue[1].name, "batch");
  EXPECT_EQ(models[0].queue[1].queued, 7u);
}

TEST(TopViewTest, TheScreenShowsBoardsModelsTenantsAndTheReconnectingBanner) {
  TopView view;
  std::vector<std::string> lines = view.Render("tcp://127.0.0.1:7422", 120, 40);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_NE(lines[2].find("connecting to tcp://127.0.0.1:7422"), std::string::npos);
  view.Add(Reply(10, 2, 1000, 100));
  view.Add(Reply(11, 3, 1100, 150));
  lines = view.Render("tcp://127.0.0.1:7422", 120, 40);
  std::string screen;
  for (const std::string& l : lines) {
    EXPECT_LE(l.size(), 120u) << l;
    screen += l + "\n";
  }
  EXPECT_NE(screen.find("BOARD"), std::string::npos) << screen;
  EXPECT_NE(screen.find("ready     [##########] 100%"), std::string::npos) << screen;
  EXPECT_NE(screen.find("r1 71.5"), std::string::npos) << screen;
  EXPECT_NE(screen.find("demo"), std::string::npos) << screen;
  EXPECT_NE(screen.find("interactive 2  batch 7"), std::string::npos) << screen;
  EXPECT_NE(screen.find("team-a"), std::string::npos) << screen;
  EXPECT_EQ(screen.find("reconnecting"), std::string::npos) << screen;

  view.SetUnreachable("no waferd answering at tcp://127.0.0.1:7422");
  lines = view.Render("tcp://127.0.0.1:7422", 120, 40);
  screen.clear();
  for (const std::string& l : lines) screen += l + "\n";
  EXPECT_NE(screen.find("reconnecting: no waferd answering"), std::string::npos) << screen;
  EXPECT_NE(screen.find("demo"), std::string::npos) << screen;  // The last figures stay.
  EXPECT_EQ(view.Json()["reconnecting"], true);

  // A short terminal: the screen is cut to its height, narrow: to its width.
  EXPECT_EQ(view.Render("e", 40, 5).size(), 5u);
  for (const std::string& l : view.Render("e", 40, 50)) EXPECT_LE(l.size(), 40u);
}

TEST(TopViewTest, JsonHasEveryFigure) {
  TopView view;
  view.Add(Reply(10, 2, 1000, 100));
  view.Add(Reply(12, 3.5, 1400, 500));
  const nlohmann::json j = view.Json();
  EXPECT_EQ(j["ok"], true);
  EXPECT_DOUBLE_EQ(j["boards"][0]["utilization"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["boards"][0]["tokens_per_s"].get<double>(), 200.0);
  EXPECT_EQ(j["boards"][0]["hottest_regions"][0]["region"], 1);
  EXPECT_EQ(j["models"][0]["replicas"], 2);
  EXPECT_EQ(j["models"][0]["queued_by_class"][1]["queued"], 7);
  EXPECT_EQ(j["tenants"][0]["tenant"], "team-a");
}

}  // namespace
}  // namespace wafer::host

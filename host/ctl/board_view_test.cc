#include "host/ctl/board_view.h"

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace wafer::host {
namespace {

TEST(BoardViewTest, DieGridFollowsTheWaferShape) {
  EXPECT_EQ(DieGrid(84, 820, 1172), (std::pair<size_t, size_t>{7, 12}));
  EXPECT_EQ(DieGrid(84, 1172, 820), (std::pair<size_t, size_t>{12, 7}));
  EXPECT_EQ(DieGrid(4, 132, 128), (std::pair<size_t, size_t>{2, 2}));
  EXPECT_EQ(DieGrid(0, 10, 10), (std::pair<size_t, size_t>{0, 0}));
}

BoardDetail Sample() {
  BoardDetail d;
  d.info.board_id = "sim-0";
  d.info.preset = "mini";
  d.info.state = BoardState::kReady;
  d.physical_rows = 4;
  d.physical_cols = 4;
  d.spare_cols_per_row = 1;
  d.usable_width = 3;
  d.usable_height = 3;
  d.row_failed = {0, 2, 0, 1};
  d.dropped_rows = {1};
  d.region_temp_c = {40, 90, 50, 60};
  d.region_clock_hz = {1e9, 5e8, 1e9, 0};
  return d;
}

TEST(BoardViewTest, DrawsRegionsWithMarksAndFailedBands) {
  std::ostringstream out;
  RenderBoard(Sample(), /*json=*/false, /*color=*/false, out);
  const std::string text = out.str();
  EXPECT_NE(text.find("  90*"), std::string::npos) << text;  // Throttled region.
  EXPECT_NE(text.find("  60X"), std::string::npos) << text;  // Stopped region.
  EXPECT_NE(text.find("2 (1 rows dropped)"), std::string::npos) << text;  // Rows 0-1.
  EXPECT_NE(text.find("usable 3 x 3 = 9 PEs"), std::string::npos) << text;
}

TEST(BoardViewTest, JsonCarriesTheSameData) {
  std::ostringstream out;
  RenderBoard(Sample(), /*json=*/true, /*color=*/false, out);
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["die_grid"]["cols"], 2);
  EXPECT_EQ(j["row_failed"][1], 2);
  EXPECT_EQ(j["dropped_rows"][0], 1);
  EXPECT_EQ(j["region_temp_c"].size(), 4u);
}

}  // namespace
}  // namespace wafer::host

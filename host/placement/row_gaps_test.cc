#include "host/placement/row_gaps.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

using Bands = std::vector<RowBand>;

TEST(FreeRowGapsTest, EmptyBoardIsOneGap) {
  EXPECT_EQ(FreeRowGaps(100, {}), (Bands{{0, 100}}));
}

TEST(FreeRowGapsTest, GapsBetweenUnsortedBands) {
  const Bands used = {{60, 10}, {0, 20}, {30, 5}};
  EXPECT_EQ(FreeRowGaps(100, used), (Bands{{20, 10}, {35, 25}, {70, 30}}));
}

TEST(FreeRowGapsTest, FullBoardHasNoGap) {
  const Bands used = {{0, 50}, {50, 50}};
  EXPECT_TRUE(FreeRowGaps(100, used).empty());
}

TEST(FreeRowGapsTest, OverlapsEmptyBandsAndOverhangAreTolerated) {
  // A band past the bottom (the board came back shorter after a harvest) and an empty band.
  const Bands used = {{10, 20}, {15, 5}, {40, 0}, {90, 30}};
  EXPECT_EQ(FreeRowGaps(100, used), (Bands{{0, 10}, {30, 60}}));
}

TEST(CommonRowGapsTest, IntersectsBoards) {
  const std::vector<Bands> boards = {
      {{0, 10}, {40, 60}},   // Board A: rows 10..40 used.
      {{5, 50}, {80, 20}},   // Board B: rows 0..5 and 55..80 used.
  };
  EXPECT_EQ(CommonRowGaps(boards), (Bands{{5, 5}, {40, 15}, {80, 20}}));
}

TEST(CommonRowGapsTest, OneBoardIsItsOwnGaps) {
  const std::vector<Bands> boards = {{{3, 7}}};
  EXPECT_EQ(CommonRowGaps(boards), (Bands{{3, 7}}));
}

TEST(CommonRowGapsTest, DisjointBoardsShareNothing) {
  const std::vector<Bands> boards = {{{0, 50}}, {{50, 50}}};
  EXPECT_TRUE(CommonRowGaps(boards).empty());
  EXPECT_TRUE(CommonRowGaps({}).empty());
}

}  // namespace
}  // namespace wafer::host

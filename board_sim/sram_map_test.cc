#include "board_sim/sram_map.h"

#include <gtest/gtest.h>

#include <vector>

namespace wafer::sim {
namespace {

TEST(SramMapTest, ReservationsAddUpPerPeAndReleaseExactly) {
  SramMap map;
  map.Reset(8, 4, 100);
  EXPECT_EQ(map.total_bytes(), 8u * 4 * 100);
  const std::vector<SramReservation> a = {{{0, 0, 4, 2}, 60}, {{2, 1, 4, 2}, 40}};
  ASSERT_TRUE(map.Reserve(a).ok());
  EXPECT_EQ(map.used_bytes(), 8u * 60 + 8 * 40);
  EXPECT_EQ(map.used_at(0, 0), 60u);
  EXPECT_EQ(map.used_at(1, 2), 100u);  // Both rectangles: exactly full.
  EXPECT_EQ(map.used_at(2, 5), 40u);
  EXPECT_EQ(map.used_at(3, 0), 0u);
  map.Release(a);
  EXPECT_EQ(map.used_bytes(), 0u);
  EXPECT_EQ(map.used_at(1, 2), 0u);
}

TEST(SramMapTest, OverCommitIsRefusedWholeAndNamesThePe) {
  SramMap map;
  map.Reset(8, 4, 100);
  ASSERT_TRUE(map.Reserve(std::vector<SramReservation>{{{3, 3, 1, 1}, 90}}).ok());
  uint64_t full_pe = 0;
  const std::vector<SramReservation> b = {{{0, 0, 8, 1}, 50}, {{0, 2, 8, 2}, 11}};
  EXPECT_EQ(map.Reserve(b, &full_pe).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full_pe, 3u * 8 + 3);
  EXPECT_EQ(map.used_bytes(), 90u);  // The first rectangle of `b` was undone.
  EXPECT_EQ(map.used_at(0, 0), 0u);
  // Overlaps inside one list add up too.
  const std::vector<SramReservation> c = {{{0, 0, 2, 2}, 60}, {{1, 1, 1, 1}, 41}};
  EXPECT_EQ(map.Reserve(c, &full_pe).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full_pe, 1u * 8 + 1);
  const std::vector<SramReservation> too_big = {{{0, 0, 1, 1}, 101}};
  EXPECT_EQ(map.Reserve(too_big).code(), StatusCode::kResourceExhausted);
}

TEST(SramMapTest, RectanglesOutsideTheMapOrEmptyAreInvalid) {
  SramMap map;
  map.Reset(8, 4, 100);
  for (fw::hal::PeRect r : {fw::hal::PeRect{7, 0, 2, 1}, fw::hal::PeRect{0, 4, 1, 1},
                            fw::hal::PeRect{0, 0, 0, 1}, fw::hal::PeRect{0, 0, 1, 0},
                            fw::hal::PeRect{0xFFFFFFFFu, 0, 2, 1}}) {
    EXPECT_EQ(map.Reserve(std::vector<SramReservation>{{r, 1}}).code(),
              StatusCode::kInvalidArgument)
        << r.x << "," << r.y << " " << r.w << "x" << r.h;
  }
  EXPECT_EQ(map.used_bytes(), 0u);
}

}  // namespace
}  // namespace wafer::sim

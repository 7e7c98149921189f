#include "common/fixed_vector.h"

#include <gtest/gtest.h>

namespace wafer {
namespace {

TEST(FixedVectorTest, FullVectorRefusesInsteadOfDropping) {
  FixedVector<int, 3> v;
  EXPECT_TRUE(v.push_back(1).ok());
  EXPECT_TRUE(v.push_back(2).ok());
  EXPECT_TRUE(v.push_back(3).ok());
  EXPECT_EQ(v.push_back(4), ResourceExhausted());
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[2], 3);
  v.swap_remove(0);
  EXPECT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0], 3);
  EXPECT_TRUE(v.push_back(9).ok());
  int sum = 0;
  for (int x : v) sum += x;
  EXPECT_EQ(sum, 14);
}

}  // namespace
}  // namespace wafer

#include "host/client/internal/backoff.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <random>

namespace wafer::host::internal {
namespace {

TEST(ClientBackoffTest, DelaysDoubleUpToTheCapWithJitterInTheUpperHalf) {
  const uint64_t seed = std::random_device{}();
  std::printf("backoff seed: %llu\n", static_cast<unsigned long long>(seed));
  Backoff backoff(50, 2000, seed);
  const int bounds[] = {50, 100, 200, 400, 800, 1600, 2000, 2000, 2000};
  for (int bound : bounds) {
    const int delay = backoff.NextMs();
    EXPECT_GE(delay, bound / 2);
    EXPECT_LE(delay, bound);
  }
  backoff.Reset();
  const int first = backoff.NextMs();
  EXPECT_GE(first, 25);
  EXPECT_LE(first, 50);
}

TEST(ClientBackoffTest, TheSameSeedGivesTheSameDelays) {
  Backoff a(10, 1000, 42), b(10, 1000, 42);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(a.NextMs(), b.NextMs());
}

TEST(ClientBackoffTest, AZeroInitialDelayStaysZero) {
  Backoff backoff(0, 0, 1);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(backoff.NextMs(), 0);
}

}  // namespace
}  // namespace wafer::host::internal

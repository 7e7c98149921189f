#include "board_sim/llama/internal/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

namespace wafer::sim::internal {
namespace {

TEST(WorkerPoolTest, RunsEveryPartExactlyOnceAcrossManyGenerations) {
  WorkerPool pool(1);
  ASSERT_EQ(pool.parallelism(), 2u);
  // Many short generations back to back: a helper that lags a generation behind must never run a
  // part twice or run a part of the wrong generation.
  for (size_t run = 0; run < 20000; ++run) {
    const size_t parts = 1 + run % 7;
    std::vector<std::atomic<int>> count(parts);
    pool.Run(parts, [&](size_t p) {
      ASSERT_LT(p, parts);
      count[p].fetch_add(1);
    });
    for (size_t p = 0; p < parts; ++p) ASSERT_EQ(count[p].load(), 1) << "run " << run << " part " << p;
  }
}

TEST(WorkerPoolTest, HelperTakesPartOnlyFromItsOwnThread) {
  WorkerPool pool(1);
  const std::thread::id caller = std::this_thread::get_id();
  std::mutex mu;
  std::set<std::thread::id> threads;
  // Parts that wait until some other thread has started one: finishes only if the helper really
  // runs parts in parallel with the caller.
  std::atomic<int> started{0};
  pool.Run(2, [&](size_t) {
    {
      std::lock_guard<std::mutex> lock(mu);
      threads.insert(std::this_thread::get_id());
    }
    started.fetch_add(1);
    while (started.load() < 2) std::this_thread::yield();
  });
  EXPECT_EQ(threads.size(), 2u);
  EXPECT_TRUE(threads.contains(caller));
}

TEST(WorkerPoolTest, ZeroHelpersAndZeroPartsRunInline) {
  WorkerPool pool(0);
  EXPECT_EQ(pool.parallelism(), 1u);
  int calls = 0;
  pool.Run(0, [&](size_t) { ++calls; });
  EXPECT_EQ(calls, 0);
  pool.Run(5, [&](size_t p) { calls += static_cast<int>(p) + 1; });
  EXPECT_EQ(calls, 15);
}

}  // namespace
}  // namespace wafer::sim::internal

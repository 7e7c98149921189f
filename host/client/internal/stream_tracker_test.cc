#include "host/client/internal/stream_tracker.h"

#include <gtest/gtest.h>

namespace wafer::host::internal {
namespace {

TokenChunk Chunk(uint32_t seq, uint64_t instance = 7) {
  return TokenChunk{5, seq, seq, {seq}, "", instance};
}

JobFinished Finished(uint32_t chunks, uint64_t instance = 7) {
  JobFinished f;
  f.job_id = 5;
  f.chunks = chunks;
  f.instance_id = instance;
  return f;
}

TEST(ClientStreamTrackerTest, DeliversInOrderAndDropsDuplicatesAndGaps) {
  StreamTracker t(5, 7);
  EXPECT_EQ(t.Step(Chunk(0)), StreamStep::kDeliver);
  EXPECT_EQ(t.Step(Chunk(0)), StreamStep::kDuplicate);
  EXPECT_EQ(t.Step(Chunk(2)), StreamStep::kGap);
  EXPECT_EQ(t.next_seq(), 1u);
  EXPECT_EQ(t.Step(Chunk(1)), StreamStep::kDeliver);
  EXPECT_EQ(t.Step(Chunk(2)), StreamStep::kDeliver);
  EXPECT_EQ(t.next_seq(), 3u);
}

TEST(ClientStreamTrackerTest, AJobFinishedCountingUndeliveredChunksIsAGap) {
  StreamTracker t(5, 7);
  EXPECT_EQ(t.Step(Chunk(0)), StreamStep::kDeliver);
  EXPECT_EQ(t.Step(Finished(2)), StreamStep::kGap);
  EXPECT_EQ(t.Step(Chunk(1)), StreamStep::kDeliver);
  EXPECT_EQ(t.Step(Finished(2)), StreamStep::kFinished);
}

TEST(ClientStreamTrackerTest, AnotherInstanceIsRefusedAndZeroIsNotChecked) {
  StreamTracker t(5, 7);
  EXPECT_EQ(t.Step(Chunk(0, 0)), StreamStep::kDeliver);  // A daemon that stamps no instance.
  EXPECT_EQ(t.Step(Chunk(1, 9)), StreamStep::kInstanceChanged);
  EXPECT_EQ(t.foreign_instance(), 9u);
  EXPECT_EQ(t.next_seq(), 1u);
  EXPECT_EQ(t.Step(Finished(1, 9)), StreamStep::kInstanceChanged);

  StreamTracker unstamped(5, 0);  // Accepted without an instance: any stamped reply differs.
  EXPECT_EQ(unstamped.Step(Chunk(0, 7)), StreamStep::kInstanceChanged);
}

}  // namespace
}  // namespace wafer::host::internal

#include "firmware/error_log.h"

#include <gtest/gtest.h>

#include <vector>

namespace wafer::fw {
namespace {

class ErrorLogTest : public ::testing::Test {
 protected:
  std::vector<LogRecord> ReadAll(uint64_t from, LogReadResult* result = nullptr) {
    std::vector<LogRecord> out(kErrorLogCapacity);
    LogReadResult r = log_.Read(from, out);
    out.resize(r.count);
    if (result != nullptr) *result = r;
    return out;
  }

  FakeClock clock_{500};
  ErrorLog log_{clock_};
};

TEST_F(ErrorLogTest, RecordsCarryClockSeverityCodeAndArgs) {
  log_.Append(Severity::kWarning, LogCode::kChunkCrcMismatch, {7, 1, 4096, 0xAB});
  clock_.Advance(250);
  log_.Append(Severity::kFatal, LogCode::kSelfTestFailed, {13});
  LogReadResult r;
  const auto got = ReadAll(0, &r);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].sequence, 1u);
  EXPECT_EQ(got[0].timestamp_ns, 500);
  EXPECT_EQ(got[0].severity, Severity::kWarning);
  EXPECT_EQ(got[0].code, LogCode::kChunkCrcMismatch);
  ASSERT_EQ(got[0].arg_count, 4);
  EXPECT_EQ(got[0].args[2], 4096u);
  EXPECT_EQ(got[0].args[3], 0xABu);
  EXPECT_EQ(got[1].sequence, 2u);
  EXPECT_EQ(got[1].timestamp_ns, 750);
  EXPECT_EQ(got[1].severity, Severity::kFatal);
  EXPECT_EQ(got[1].arg_count, 1);
  EXPECT_EQ(r.next_sequence, 3u);
  EXPECT_EQ(r.dropped, 0u);
}

TEST_F(ErrorLogTest, ExtraArgumentsAreTruncated) {
  log_.Append(Severity::kInfo, LogCode::kReset, {1, 2, 3, 4, 5, 6});
  const auto got = ReadAll(0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].arg_count, kLogArgs);
  EXPECT_EQ(got[0].args[kLogArgs - 1], kLogArgs);
}

TEST_F(ErrorLogTest, ReadsFromASequenceAndInPages) {
  for (uint64_t i = 0; i < 10; ++i) log_.Append(Severity::kInfo, LogCode::kReset, {i});
  std::vector<LogRecord> page(4);
  LogReadResult r = log_.Read(3, page);
  ASSERT_EQ(r.count, 4u);
  EXPECT_EQ(page[0].sequence, 3u);
  EXPECT_EQ(page[3].sequence, 6u);
  EXPECT_EQ(r.next_sequence, 7u);
  std::vector<LogRecord> small(3);
  r = log_.Read(r.next_sequence, small);
  ASSERT_EQ(r.count, 3u);
  EXPECT_EQ(small[2].sequence, 9u);
  r = log_.Read(r.next_sequence, page);
  ASSERT_EQ(r.count, 1u);
  EXPECT_EQ(page[0].sequence, 10u);
  EXPECT_EQ(r.next_sequence, 11u);
  r = log_.Read(r.next_sequence, page);  // Caught up.
  EXPECT_EQ(r.count, 0u);
  EXPECT_EQ(r.next_sequence, 11u);
}

TEST_F(ErrorLogTest, FutureSequenceResynchronizes) {
  log_.Append(Severity::kInfo, LogCode::kReset, {});
  LogReadResult r;
  EXPECT_TRUE(ReadAll(1000, &r).empty());
  EXPECT_EQ(r.next_sequence, 2u);
}

TEST_F(ErrorLogTest, FullRingOverwritesOldestAndCounts) {
  const uint64_t total = kErrorLogCapacity + 5;
  for (uint64_t i = 1; i <= total; ++i) log_.Append(Severity::kInfo, LogCode::kReset, {i});
  EXPECT_EQ(log_.size(), kErrorLogCapacity);
  EXPECT_EQ(log_.overwritten(), 5u);
  LogReadResult r;
  auto got = ReadAll(0, &r);
  ASSERT_EQ(got.size(), kErrorLogCapacity);
  EXPECT_EQ(got.front().sequence, 6u);
  EXPECT_EQ(got.front().args[0], 6u);
  EXPECT_EQ(got.back().sequence, total);
  EXPECT_EQ(r.dropped, 5u);  // Sequences 1..5 are gone.
  got = ReadAll(3, &r);      // A reader that had seen 1 and 2 missed 3, 4 and 5.
  EXPECT_EQ(r.dropped, 3u);
  EXPECT_EQ(got.front().sequence, 6u);
  got = ReadAll(100, &r);
  EXPECT_EQ(r.dropped, 0u);
  EXPECT_EQ(got.front().sequence, 100u);
}

}  // namespace
}  // namespace wafer::fw

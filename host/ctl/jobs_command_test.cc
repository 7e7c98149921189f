#include "host/ctl/jobs_command.h"

#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace wafer::host {
namespace {

TEST(JobsCommandTest, FormatsAges) {
  EXPECT_EQ(FormatAge(0), "0ms");
  EXPECT_EQ(FormatAge(999), "999ms");
  EXPECT_EQ(FormatAge(12'340), "12.3s");
  EXPECT_EQ(FormatAge(302'000), "5m02s");
  EXPECT_EQ(FormatAge(3 * 3'600'000 + 4 * 60'000), "3h04m");
  EXPECT_EQ(FormatAge(2 * 86'400'000ull + 3 * 3'600'000), "2d03h");
}

JobList Sample() {
  JobSummary queued{7, "team-a", "tiny", JobState::kQueued, "standard", 100, 2, 1500, 0, ""};
  JobSummary done{8, "team-b", "tiny", JobState::kFinished, "batch", 0, 0, 61'000, 12,
                  "cancelled"};
  return JobList{1, {queued, done}, 5, true};
}

TEST(JobsCommandTest, ListTableHasAHeaderOneRowPerJobAndSaysWhenTruncated) {
  std::ostringstream out;
  RenderJobList(Sample(), false, out);
  std::istringstream lines(out.str());
  std::string header, first, second, footer;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  std::getline(lines, footer);
  for (const char* column :
       {"JOB", "STATE", "TENANT", "MODEL", "CLASS", "PRI", "POS", "AGE", "TOKENS", "FINISH"}) {
    EXPECT_NE(header.find(column), std::string::npos) << column;
  }
  EXPECT_EQ(first.rfind("7 ", 0), 0u) << first;
  EXPECT_NE(first.find("queued"), std::string::npos);
  EXPECT_NE(first.find("standard"), std::string::npos);
  EXPECT_NE(first.find("1.5s"), std::string::npos);
  EXPECT_NE(second.find("cancelled"), std::string::npos);
  EXPECT_NE(second.find("1m01s"), std::string::npos);
  EXPECT_EQ(footer, "showing 2 of 5 matching jobs; --limit shows more (at most 10000)");

  std::ostringstream empty;
  RenderJobList(JobList{}, false, empty);
  EXPECT_EQ(empty.str(), "no jobs\n");
}

TEST(JobsCommandTest, ListJsonGivesPositionOnlyWhenQueuedAndReasonOnlyWhenFinished) {
  std::ostringstream out;
  RenderJobList(Sample(), true, out);
  const nlohmann::json j = nlohmann::json::parse(out.str());
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(j["total"], 5);
  EXPECT_TRUE(j["truncated"].get<bool>());
  ASSERT_EQ(j["jobs"].size(), 2u);
  EXPECT_EQ(j["jobs"][0]["job_id"], 7);
  EXPECT_EQ(j["jobs"][0]["state"], "queued");
  EXPECT_EQ(j["jobs"][0]["queue_position"], 2);
  EXPECT_TRUE(j["jobs"][0]["finish_reason"].is_null());
  EXPECT_EQ(j["jobs"][0]["class"], "standard");
  EXPECT_EQ(j["jobs"][0]["age_ms"], 1500);
  EXPECT_TRUE(j["jobs"][1]["queue_position"].is_null());
  EXPECT_EQ(j["jobs"][1]["finish_reason"], "cancelled");
  EXPECT_EQ(j["jobs"][1]["tokens_generated"], 12);
}

TEST(JobsCommandTest, DetailShowsTimingsDeadlineAndEnding) {
  JobDetail d;
  d.summary = Sample().jobs[0];
  d.prompt_tokens = 3;
  d.max_tokens = 64;
  d.accepted_unix_ms = 1'700'000'000'000;
  d.deadline_unix_ms = 1'700'000'010'000;
  d.ttft_target_ms = 50;
  d.ttft_ns = 2'000'000'000;  // No token yet: waited so far.
  std::ostringstream out;
  RenderJobDetail(d, false, 1'700'000'005'000, out);
  const std::string text = out.str();
  EXPECT_EQ(text.rfind("job 7\n", 0), 0u) << text;
  EXPECT_NE(text.find("queued (position 2)"), std::string::npos) << text;
  EXPECT_NE(text.find("2023-11-14T22:13:20.000Z"), std::string::npos) << text;
  EXPECT_NE(text.find("(in 5.0s)"), std::string::npos) << text;
  EXPECT_NE(text.find("no token yet; waited 2000.00 ms (target 50 ms)"), std::string::npos)
      << text;

  d.summary = Sample().jobs[1];
  d.first_token = true;
  d.ttft_ns = 1'500'000;
  d.error_code = ErrorCode::kInternal;
  d.detail = "board lost";
  std::ostringstream finished;
  RenderJobDetail(d, false, 1'700'000'050'000, finished);
  EXPECT_NE(finished.str().find("finished (cancelled)"), std::string::npos) << finished.str();
  EXPECT_NE(finished.str().find("1.50 ms (target 50 ms)"), std::string::npos);
  EXPECT_NE(finished.str().find("INTERNAL: board lost"), std::string::npos);
  EXPECT_EQ(finished.str().find("passed"), std::string::npos);  // Over: no countdown.

  std::ostringstream json_out;
  RenderJobDetail(d, true, 0, json_out);
  const nlohmann::json j = nlohmann::json::parse(json_out.str());
  EXPECT_EQ(j["job_id"], 8);
  EXPECT_EQ(j["finish_reason"], "cancelled");
  EXPECT_DOUBLE_EQ(j["ttft_ms"].get<double>(), 1.5);
  EXPECT_EQ(j["deadline_unix_ms"], 1'700'000'010'000);
  EXPECT_EQ(j["error"], "INTERNAL");
  EXPECT_EQ(j["detail"], "board lost");
}

}  // namespace
}  // namespace wafer::host

#include "host/health/health_rules.h"

#include <set>

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

HealthSample Sample(int64_t at_s) {
  HealthSample s;
  s.at_ns = at_s * kSecond;
  s.has_telemetry = true;
  s.max_temperature_c = 60;
  s.spare_pes = 500;
  return s;
}

RuleResult Rule(const std::array<RuleResult, kHealthRules>& r, HealthRule rule) {
  return r[static_cast<size_t>(rule)];
}

TEST(HealthRulesTest, TheCatalogHasOneEntryPerCodeAndEveryRuleCanWarnOrFail) {
  std::set<uint16_t> codes;
  std::set<HealthRule> rules;
  for (const HealthCode& c : HealthCatalog()) {
    EXPECT_TRUE(codes.insert(c.code).second) << c.code;
    EXPECT_NE(c.level, HealthLevel::kPass) << c.name;
    EXPECT_GT(std::string(c.action).size(), 10u) << c.name;
    EXPECT_EQ(FindHealthCode(c.code), &c);
    rules.insert(c.rule);
  }
  EXPECT_EQ(rules.size(), kHealthRules);
  EXPECT_EQ(FindHealthCode(999), nullptr);
}

TEST(HealthRulesTest, TemperatureWarnsAtTheWarningAndFailsAtCriticalOrATrip) {
  HealthConfig c;
  BoardHealthRules rules(c);
  HealthSample s = Sample(1);
  s.max_temperature_c = 84.9f;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kTemperature).level, HealthLevel::kPass);
  s.at_ns += kSecond;
  s.max_temperature_c = 85;
  RuleResult r = Rule(rules.Evaluate(s), HealthRule::kTemperature);
  EXPECT_EQ(r.level, HealthLevel::kWarn);
  EXPECT_EQ(r.code, 101);
  EXPECT_EQ(r.message, "hottest region 85.0 C, warning at 85 C");
  s.at_ns += kSecond;
  s.max_temperature_c = 100;
  r = Rule(rules.Evaluate(s), HealthRule::kTemperature);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.code, 102);
  s.at_ns += kSecond;
  s.max_temperature_c = 40;
  s.thermal_trip = true;
  r = Rule(rules.Evaluate(s), HealthRule::kTemperature);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.message, "thermal trip: the board halted");
}

TEST(HealthRulesTest, ThrottlingWarnsUnlessConfiguredToFail) {
  HealthConfig c;
  BoardHealthRules warn(c);
  HealthSample s = Sample(1);
  s.throttled = true;
  EXPECT_EQ(Rule(warn.Evaluate(s), HealthRule::kThrottling).code, 111);
  c.throttling_fails = true;
  BoardHealthRules fail(c);
  const RuleResult r = Rule(fail.Evaluate(s), HealthRule::kThrottling);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.code, 112);
}

TEST(HealthRulesTest, CorrectedEccIsARateOverTheWindowAndSurvivesACounterRestart) {
  HealthConfig c;  // Window 60 s: per minute = the count in the window.
  c.ecc_corrected_warn_per_min = 10;
  c.ecc_corrected_fail_per_min = 20;
  BoardHealthRules rules(c);
  HealthSample s = Sample(0);
  s.ecc_corrected = 1000;  // What the board had counted before we looked: not a rate.
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kEccCorrectedRate).level, HealthLevel::kPass);
  s.at_ns = 10 * kSecond;
  s.ecc_corrected = 1009;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kEccCorrectedRate).level, HealthLevel::kPass);
  // The board reset its counter and counted 3 more: 12 in the window.
  s.at_ns = 20 * kSecond;
  s.ecc_corrected = 3;
  RuleResult r = Rule(rules.Evaluate(s), HealthRule::kEccCorrectedRate);
  EXPECT_EQ(r.level, HealthLevel::kWarn);
  EXPECT_EQ(r.code, 121);
  EXPECT_EQ(r.message, "corrected ECC errors 12.0/min over 60 s (warning at 10, failure at 20)");
  s.at_ns = 30 * kSecond;
  s.ecc_corrected = 11;
  r = Rule(rules.Evaluate(s), HealthRule::kEccCorrectedRate);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.code, 122);
  // Later, with no new errors, the window holds fewer of them, then none.
  s.at_ns = 75 * kSecond;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kEccCorrectedRate).level, HealthLevel::kWarn);
  s.at_ns = 95 * kSecond;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kEccCorrectedRate).level, HealthLevel::kPass);
}

TEST(HealthRulesTest, AnyUncorrectableEccFailsForAWindow) {
  HealthConfig c;
  BoardHealthRules rules(c);
  HealthSample s = Sample(0);
  rules.Evaluate(s);
  s.at_ns = kSecond;
  s.ecc_uncorrectable = 1;
  RuleResult r = Rule(rules.Evaluate(s), HealthRule::kEccUncorrectable);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.code, 131);
  EXPECT_EQ(r.message, "1 uncorrectable ECC errors in the last 60 s");
  s.at_ns = 60 * kSecond;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kEccUncorrectable).level, HealthLevel::kFail);
  s.at_ns = 62 * kSecond;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kEccUncorrectable).level, HealthLevel::kPass);
}

TEST(HealthRulesTest, LinkCrcRate) {
  HealthConfig c;
  c.link_crc_warn_per_min = 5;
  c.link_crc_fail_per_min = 50;
  BoardHealthRules rules(c);
  HealthSample s = Sample(0);
  rules.Evaluate(s);
  s.at_ns = kSecond;
  s.link_crc_errors = 60;
  const RuleResult r = Rule(rules.Evaluate(s), HealthRule::kLinkCrcRate);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.code, 142);
}

TEST(HealthRulesTest, SparesWarnWhenLowAndFailWhenAPeFailedWithNoneLeft) {
  HealthConfig c;  // warn at 4, fail at 0
  BoardHealthRules rules(c);
  HealthSample s = Sample(0);
  s.spare_pes = 6;
  s.runtime_failed_pes = 1;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kSparePes).level, HealthLevel::kPass);
  s.runtime_failed_pes = 2;
  RuleResult r = Rule(rules.Evaluate(s), HealthRule::kSparePes);
  EXPECT_EQ(r.level, HealthLevel::kWarn);
  EXPECT_EQ(r.message, "4 spare PEs left, 2 failed since boot");
  s.runtime_failed_pes = 7;
  r = Rule(rules.Evaluate(s), HealthRule::kSparePes);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.code, 152);
  // Built without spares and nothing failed: a warning, not a failure.
  s.spare_pes = 0;
  s.runtime_failed_pes = 0;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kSparePes).level, HealthLevel::kWarn);
}

TEST(HealthRulesTest, HeartbeatMissesCountInTheWindow) {
  HealthConfig c;  // warn 1, fail 3
  BoardHealthRules rules(c);
  HealthSample s = Sample(0);
  rules.Evaluate(s);
  s.at_ns = 5 * kSecond;
  s.heartbeat_misses = 1;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kHeartbeat).code, 161);
  s.at_ns = 20 * kSecond;
  s.heartbeat_misses = 3;
  const RuleResult r = Rule(rules.Evaluate(s), HealthRule::kHeartbeat);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.code, 162);
  s.at_ns = 90 * kSecond;
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kHeartbeat).level, HealthLevel::kPass);
}

TEST(HealthRulesTest, StepErrorsNeedEnoughStepsThenArePercent) {
  HealthConfig c;  // warn 1%, fail 10%, at least 20 steps
  BoardHealthRules rules(c);
  HealthSample s = Sample(0);
  rules.Evaluate(s);
  s.at_ns = kSecond;
  s.steps = 10;
  s.step_errors = 5;  // 50%, but too few steps to judge.
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kStepErrors).level, HealthLevel::kPass);
  s.at_ns = 2 * kSecond;
  s.steps = 200;
  s.step_errors = 5;  // 2.5%
  EXPECT_EQ(Rule(rules.Evaluate(s), HealthRule::kStepErrors).code, 171);
  s.at_ns = 3 * kSecond;
  s.steps = 220;
  s.step_errors = 25;  // 25 of 220
  const RuleResult r = Rule(rules.Evaluate(s), HealthRule::kStepErrors);
  EXPECT_EQ(r.level, HealthLevel::kFail);
  EXPECT_EQ(r.message, "25 of 220 Steps failed (11.4%) in the last 60 s");
}

TEST(HealthRulesTest, AFirmwareRollbackWarns) {
  HealthConfig c;
  BoardHealthRules rules(c);
  HealthSample s = Sample(0);
  rules.Evaluate(s);
  s.at_ns = kSecond;
  s.firmware_rollbacks = 1;
  const RuleResult r = Rule(rules.Evaluate(s), HealthRule::kFirmwareRollback);
  EXPECT_EQ(r.level, HealthLevel::kWarn);
  EXPECT_EQ(r.code, 181);
}

TEST(HealthRulesTest, SensorRulesPassBeforeTheFirstReadings) {
  HealthConfig c;
  BoardHealthRules rules(c);
  HealthSample s;
  s.thermal_trip = true;
  s.ecc_uncorrectable = 5;
  for (const RuleResult& r : rules.Evaluate(s)) {
    if (r.rule == HealthRule::kSparePes) continue;
    EXPECT_EQ(r.level, HealthLevel::kPass) << HealthRuleName(r.rule);
  }
}

}  // namespace
}  // namespace wafer::host

// Admission and the wait estimate it uses, driven by a FakeClock over a real Scheduler with the
// fair policy: quotas and their refill, a full queue's shed and QUEUE_FULL, targets the
// expected wait cannot meet, and retry-afters that are computed and jittered.
#include "host/scheduler/admission.h"

#include <gtest/gtest.h>

#include "host/scheduler/fair_policy.h"

namespace wafer::host {
namespace {

constexpr int64_t kMs = 1'000'000;
constexpr uint32_t kInteractive = 0, kStandard = 1, kBatch = 2;

class AdmissionTest : public ::testing::Test {
 protected:
  AdmissionTest() : clock_(1'000 * kMs) {}

  void Make(const std::function<void(DaemonConfig&)>& tweak = nullptr) {
    if (tweak) tweak(config_);
    scheduler_ = std::make_unique<Scheduler>(std::make_unique<FairPolicy>(config_.scheduling),
                                             /*max_batch=*/256, clock_);
    scheduler_->OpenModel("m", 0, kSlots);
    waits_ = std::make_unique<WaitEstimator>(config_.scheduling, *scheduler_);
    admission_ = std::make_unique<Admission>(config_, *scheduler_, *waits_, clock_, 42);
  }

  AdmissionRequest Request(const std::string& tenant, uint32_t cls, uint32_t ttft_ms = 0) const {
    return AdmissionRequest{"m", tenant, cls, 100, 100, ttft_ms, 0};
  }

  // Queues a job as the front end does after admission.
  void Queue(const std::string& tenant, uint32_t cls) {
    QueuedJob job;
    job.job_id = ++next_id_;
    job.model = "m";
    job.tenant = tenant;
    job.priority_class = static_cast<uint8_t>(cls);
    job.accept_seq = next_id_;
    scheduler_->Enqueue(job);
  }

  // Fills every slot and teaches the estimator that jobs of `cls` hold a slot `hold_ms` and
  // take 10 ms to their first token.
  void Saturate(uint32_t cls, int64_t hold_ms) {
    for (uint32_t i = 0; i < WaitEstimator::kMinSamples; ++i) {
      waits_->OnReleased("m", cls, hold_ms * kMs);
      waits_->OnFirstToken("m", 10 * kMs);
    }
    for (uint32_t i = 0; i < kSlots; ++i) Queue("filler", kInteractive);
    std::vector<SlotGrant> grants;
    scheduler_->Admit("m", 0, &grants);
    ASSERT_EQ(grants.size(), kSlots);
  }

  static constexpr uint32_t kSlots = 4;
  FakeClock clock_;
  DaemonConfig config_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<WaitEstimator> waits_;
  std::unique_ptr<Admission> admission_;
  uint64_t next_id_ = 0;
};

TEST_F(AdmissionTest, RequestQuotaRefusesThenRefillsWithARetryAfterOfTheRefill) {
  Make([](DaemonConfig& c) { c.scheduling.default_tenant.requests_per_minute = 2; });
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard)).accepted());
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard)).accepted());
  AdmissionDecision refused = admission_->Decide(Request("t", kStandard));
  EXPECT_EQ(refused.code, ErrorCode::kQuotaExceeded);
  EXPECT_NE(refused.detail.find("requests_per_minute"), std::string::npos) << refused.detail;
  // One request refills in 30 s; the retry-after is that, stretched by at most 25%.
  EXPECT_GE(refused.retry_after_ms, 30'000u);
  EXPECT_LE(refused.retry_after_ms, 37'500u);
  EXPECT_TRUE(admission_->Decide(Request("other", kStandard)).accepted());  // Its own bucket.
  clock_.Advance(30'000 * kMs);
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard)).accepted());
}

TEST_F(AdmissionTest, TokenQuotaCountsPromptAndMaxTokens) {
  Make([](DaemonConfig& c) {
    TenantConfig t;
    t.name = "t";
    t.tokens_per_minute = 500;
    c.scheduling.tenants = {t};
  });
  // Each request costs 200 (100 prompt + 100 max_tokens).
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard)).accepted());
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard)).accepted());
  AdmissionDecision refused = admission_->Decide(Request("t", kStandard));
  EXPECT_EQ(refused.code, ErrorCode::kQuotaExceeded);
  // 100 left; 100 more refill in 12 s.
  EXPECT_GE(refused.retry_after_ms, 12'000u);
  EXPECT_LE(refused.retry_after_ms, 15'000u);
  // A job larger than a whole minute's quota never fits: no retry-after.
  AdmissionRequest huge = Request("t", kStandard);
  huge.max_tokens = 1000;
  AdmissionDecision never = admission_->Decide(huge);
  EXPECT_EQ(never.code, ErrorCode::kQuotaExceeded);
  EXPECT_EQ(never.retry_after_ms, 0u);
}

TEST_F(AdmissionTest, MaxQueuedCountsTheTenantsQueuedJobs) {
  Make([](DaemonConfig& c) { c.scheduling.default_tenant.max_queued = 2; });
  Queue("t", kStandard);
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard)).accepted());
  Queue("t", kStandard);
  AdmissionDecision refused = admission_->Decide(Request("t", kStandard));
  EXPECT_EQ(refused.code, ErrorCode::kQuotaExceeded);
  EXPECT_NE(refused.detail.find("max_queued"), std::string::npos) << refused.detail;
  EXPECT_GT(refused.retry_after_ms, 0u);
}

TEST_F(AdmissionTest, AFullQueueShedsTheNewestLowerJobOrRefusesWithTheTimeToDrain) {
  Make([](DaemonConfig& c) { c.scheduling.model_queue_limit = 3; });
  Saturate(kBatch, 400);
  Queue("t", kBatch);
  Queue("t", kBatch);
  Queue("t", kStandard);
  AdmissionDecision shed = admission_->Decide(Request("u", kInteractive));
  ASSERT_TRUE(shed.accepted());
  ASSERT_TRUE(shed.shed.has_value());
  EXPECT_EQ(shed.shed->job_id, next_id_ - 1);  // The newest batch job, not the standard one.
  AdmissionDecision full = admission_->Decide(Request("u", kBatch));
  EXPECT_EQ(full.code, ErrorCode::kQueueFull);
  // One queued job must start: a slot frees every 400 ms / 4 slots = 100 ms; +0-25% jitter.
  EXPECT_GE(full.retry_after_ms, 100u);
  EXPECT_LE(full.retry_after_ms, 125u);
}

TEST_F(AdmissionTest, ATargetTheExpectedWaitExceedsIsRefusedOnceMeasured) {
  Make();
  // Unmeasured, nothing is refused for its target.
  for (int i = 0; i < 8; ++i) Queue("t", kStandard);
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard, 1)).accepted());
  Make();
  Saturate(kStandard, 400);
  for (int i = 0; i < 8; ++i) Queue("t", kStandard);
  // Eight queued of t's own, all slots full: (8 + 1) x 400 ms / 4 slots + 10 ms = 910 ms.
  const WaitEstimate e = waits_->Expected("m", kStandard, "t", clock_.NowNanos());
  EXPECT_TRUE(e.measured);
  EXPECT_NEAR(static_cast<double>(e.wait_ns) / kMs, 910, 1);
  AdmissionDecision late = admission_->Decide(Request("t", kStandard, 500));
  EXPECT_EQ(late.code, ErrorCode::kTargetUnmeetable);
  EXPECT_NE(late.detail.find("910 ms"), std::string::npos) << late.detail;
  EXPECT_GE(late.retry_after_ms, 410u);  // The wait must shrink by 410 ms.
  EXPECT_LE(late.retry_after_ms, 513u);
  EXPECT_TRUE(admission_->Decide(Request("t", kStandard, 1000)).accepted());
  // An interactive job may preempt the standard... fillers here are interactive: it waits for
  // nobody's queue but its own class's (empty) and a slot: 1 x 400 / 4 + 10 = 110 ms.
  EXPECT_TRUE(admission_->Decide(Request("t", kInteractive, 200)).accepted());
}

TEST_F(AdmissionTest, HigherClassArrivalsAndOtherTenantsShrinkWhatAClassIsLeft) {
  Make();
  Saturate(kBatch, 400);
  waits_->OnReleased("m", kInteractive, 400 * kMs);
  const int64_t now = clock_.NowNanos();
  Queue("t", kBatch);
  const int64_t alone = waits_->Expected("m", kBatch, "t", now).wait_ns;
  // Interactive jobs arriving at 5 a second, holding 400 ms each, keep 2 of the 4 slots busy:
  // the batch tenant's queue drains at half the rate.
  for (int i = 0; i < 25; ++i) waits_->OnAdmitted("m", kInteractive, "x", now);
  const int64_t behind_arrivals = waits_->Expected("m", kBatch, "t", now).wait_ns;
  EXPECT_NEAR(static_cast<double>(behind_arrivals - 10 * kMs),
              2.0 * static_cast<double>(alone - 10 * kMs), 2.0 * kMs);
  // Another batch tenant asking for more than its share takes its share (half, equal weights).
  for (int i = 0; i < 100; ++i) waits_->OnAdmitted("m", kBatch, "y", now);
  const int64_t shared = waits_->Expected("m", kBatch, "t", now).wait_ns;
  EXPECT_NEAR(static_cast<double>(shared - 10 * kMs),
              2.0 * static_cast<double>(behind_arrivals - 10 * kMs), 2.0 * kMs);
}

}  // namespace
}  // namespace wafer::host

// Admission: whether a validated job is accepted, decided at once against what it will cost
// and what is ahead of it. In order:
//   1. the tenant's quotas (max_queued; requests and tokens per minute as token buckets holding a
//      minute's worth, a job costing prompt + max_tokens): QUOTA_EXCEEDED, retry-after when the
//      quota has refilled enough (none when the job is larger than a whole minute's tokens);
//   2. capacity (the model's queue at scheduler.model_queue_limit, or every model's at
//      queue_limit): the newest queued job of the lowest class below the newcomer's is shed to
//      make room; with none, QUEUE_FULL, retry-after when enough queued jobs are expected to
//      have started;
//   3. targets: TARGET_UNMEETABLE when the class's expected wait on the model (WaitEstimator,
//      once measured) already exceeds the job's TTFT target or its deadline, retry-after when
//      the wait is expected to have shrunk enough.
// Every retry-after is computed, then stretched by a random 0-25% so that clients refused
// together do not come back together.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "host/config/daemon_config.h"
#include "host/scheduler/scheduler.h"
#include "host/scheduler/wait_estimator.h"
#include "host/wire/messages.h"

namespace wafer::host {

// A job as admission sees it: validated, its tenant and class resolved.
struct AdmissionRequest {
  std::string model;
  std::string tenant;
  uint32_t priority_class = 0;
  uint32_t prompt_tokens = 0;
  uint32_t max_tokens = 0;
  uint32_t ttft_target_ms = 0;  // 0: none.
  int64_t deadline_in_ms = 0;   // Time left to its completion deadline; 0: none.
};

struct AdmissionDecision {
  ErrorCode code = ErrorCode::kNone;  // kNone: accept.
  std::string detail;
  uint32_t retry_after_ms = 0;
  // Accepted by shedding this queued job (the caller ends it, FinishReason kShed).
  std::optional<QueuedJob> shed;

  bool accepted() const { return code == ErrorCode::kNone; }
};

// Not thread-safe; owned by waferd's step loop.
class Admission {
 public:
  // REQUIRES: every argument outlives the object.
  Admission(const DaemonConfig& config, const Scheduler& scheduler, WaitEstimator& waits,
            const Clock& clock, uint64_t jitter_seed);

  // Decides; an accepted job's cost is charged to its tenant's quotas and its arrival counted
  // in its class's rate.
  AdmissionDecision Decide(const AdmissionRequest& request);

 private:
  // A quota of `per_minute` refilling continuously, holding at most a minute's worth.
  struct Bucket {
    double level = 0;
    int64_t refilled_ns = 0;
  };
  struct Quotas {
    Bucket requests;
    Bucket tokens;
  };
  // Refills `b` to now; returns the level.
  double Refill(Bucket& b, double per_minute, int64_t now_ns) const;
  // Nanoseconds until `b` holds `want` at `per_minute`.
  static int64_t NsUntil(const Bucket& b, double want, double per_minute);
  AdmissionDecision CheckQuotas(const AdmissionRequest& r, const TenantConfig& t, int64_t now_ns);
  AdmissionDecision Refuse(ErrorCode code, std::string detail, int64_t retry_after_ns);
  // Drops the buckets that are full again (as good as none), once they get many.
  void PruneFullBuckets(int64_t now_ns);

  const DaemonConfig& config_;
  const Scheduler& scheduler_;
  WaitEstimator& waits_;
  const Clock& clock_;
  std::mt19937_64 jitter_;
  std::unordered_map<std::string, Quotas> quotas_;  // Tenants with a rate quota.
};

}  // namespace wafer::host

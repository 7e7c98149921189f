// What a job submitted now can expect to wait for its first token, per model, class and tenant,
// from the model's measured service: how long jobs of each class hold a slot (grant to release),
// how long a granted job takes to its first token, and the recent arrival rate of each class and
// tenant. Admission refuses targets it cannot meet with it; Capacity replies carry it, so that a
// cluster scheduler can route by it.
//
// In slots (L = the model's slots, capped at max_batch; hold_c = mean hold of class c), for a
// job of tenant t in class c under the fair policy (SchedulingPolicy::QueuedAhead: `before` =
// jobs of higher classes queued, `own` = t's jobs queued in c):
//   L_c = L - sum over higher classes h of (arrival rate of h x hold_h), at least 5% of L:
//         later arrivals of higher classes take their slots first;
//   L_t = L_c - sum over the other tenants u of c of min(arrival rate of u x hold_c,
//         L_c x w_u / W), at least 5% of L_c, W summing the weights of t and those tenants: the
//         others take what they ask, up to their weighted share;
//   wait = before x hold / L + (own + 1) x hold_c / L_t + first-token time,
// and when t already has jobs queued in c and was granted slots lately (about one a window at
// least), its own part is at least (own + 1) / (that rate): what the tenant is really served,
// whatever the model says (preempted jobs starting again, costs that differ by tenant);
// counting the slots that are free or held by jobs it may preempt as taken first by `before`,
// then by its own. Under FIFO (`shares` false): (before + 1) x hold / L + first-token time.
// An estimate from the last seconds, not a promise.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "host/config/scheduling_config.h"
#include "host/scheduler/scheduler.h"

namespace wafer::host {

struct WaitEstimate {
  int64_t wait_ns = 0;
  bool measured = false;  // False until the model has finished kMinSamples jobs: a guess.
};

// Not thread-safe; owned by waferd's step loop.
class WaitEstimator {
 public:
  static constexpr uint32_t kMinSamples = 4;
  // Before anything is measured: what a job is guessed to hold its slot and take to its first
  // token.
  static constexpr int64_t kGuessHoldNs = 1'000'000'000;
  static constexpr int64_t kGuessFirstTokenNs = 50'000'000;

  // REQUIRES: both outlive the estimator.
  WaitEstimator(const SchedulingConfig& config, const Scheduler& scheduler)
      : config_(config), scheduler_(scheduler) {}

  // A job of class `cls` of `model` gave its slot back after `hold_ns` (it finished: a
  // preempted job will need another start and is not counted).
  void OnReleased(const std::string& model, uint32_t cls, int64_t hold_ns);
  // A job of `model` got its first token `ns` after its grant.
  void OnFirstToken(const std::string& model, int64_t ns);
  // A job of `tenant` in class `cls` was granted a slot of `model` at `now_ns`.
  void OnGranted(const std::string& model, uint32_t cls, const std::string& tenant,
                 int64_t now_ns);
  // A job of `tenant` in class `cls` was accepted for `model` at `now_ns`.
  void OnAdmitted(const std::string& model, uint32_t cls, const std::string& tenant,
                  int64_t now_ns);

  WaitEstimate Expected(const std::string& model, uint32_t cls, const std::string& tenant,
                        int64_t now_ns) const;
  // How long until `starts` more jobs of `model` get slots, at the measured mean hold.
  int64_t TimeForStarts(const std::string& model, uint64_t starts) const;

 private:
  struct Ewma {
    double value = 0;
    uint32_t samples = 0;
    void Add(double x) {
      value = samples == 0 ? x : value + 0.05 * (x - value);
      ++samples;
    }
  };
  // Events per second, exponentially decayed with a time constant of kRateWindowNs.
  struct Rate {
    double count = 0;
    int64_t at_ns = 0;
    double PerSecond(int64_t now_ns) const;
  };
  static constexpr int64_t kRateWindowNs = 5'000'000'000;
  struct Service {
    Ewma hold;                           // Every class.
    std::map<uint32_t, Ewma> class_hold;
    Ewma first_token;
    std::map<uint32_t, std::map<std::string, Rate>> admitted;  // Per class, per tenant.
    std::map<uint32_t, std::map<std::string, Rate>> granted;   // Per class, per tenant.
    uint32_t admissions = 0;  // Since rates that decayed away were last dropped.
    uint32_t grants = 0;
  };
  const Service* Find(const std::string& model) const;
  // Counts one event of `tenant` in class `cls` at `now_ns`, dropping decayed rates now and then.
  static void Count(std::map<uint32_t, std::map<std::string, Rate>>& rates, uint32_t cls,
                    const std::string& tenant, int64_t now_ns, uint32_t& events);
  static double HoldSeconds(const Service* s);
  static double ClassHoldSeconds(const Service* s, uint32_t cls);
  // Slots of `model` that the classes above `cls` are expected to keep busy.
  static double SlotsAbove(const Service* s, uint32_t cls, int64_t now_ns);

  const SchedulingConfig& config_;
  const Scheduler& scheduler_;
  std::map<std::string, Service> models_;
};

}  // namespace wafer::host

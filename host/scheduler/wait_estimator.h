// What a job submitted now can expect to wait for its first token, per model and class, from
// the model's measured service: how long a job holds its slot (grant to release) and how long a
// granted job takes to its first token (prefill and the first Step). Admission refuses targets
// it cannot meet with it; Capacity replies carry it, so a cluster scheduler can route by it.
//
// Expected wait of a job of tenant t in class c = starts needed before its own / the start rate
// left to class c, + first-token time. The starts needed are the jobs the policy puts ahead of
// it (SchedulingPolicy::QueuedAhead: for the fair policy, higher classes and t's share of its
// own class) less the slots that are free or held by jobs it may preempt. The start rate of the
// model is slots / mean hold; the jobs of higher classes still to arrive take theirs first, so
// class c is left that rate less their measured arrival rate (at least 5% of it). An estimate,
// not a promise.
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
  int64_t hold_ns = 0;    // The mean slot hold it was computed from.
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

  // A job of `model` held its slot `hold_ns` (finished, preempted), or got its first token
  // `ns` after its grant.
  void OnReleased(const std::string& model, int64_t hold_ns);
  void OnFirstToken(const std::string& model, int64_t ns);
  // A job of class `cls` was accepted for `model` at `now_ns` (the classes' arrival rates).
  void OnAdmitted(const std::string& model, uint32_t cls, int64_t now_ns);
  void Forget(const std::string& model) { models_.erase(model); }

  WaitEstimate Expected(const std::string& model, uint32_t cls, const std::string& tenant,
                        int64_t now_ns) const;
  // Jobs per second of `model` accepted in classes above `cls`, decayed to `now_ns`.
  double ArrivalsAbove(const std::string& model, uint32_t cls, int64_t now_ns) const;
  // How long until `starts` more jobs of `model` get slots, at the measured hold.
  int64_t TimeForStarts(const std::string& model, uint64_t starts) const;

 private:
  struct Ewma {
    double value = 0;
    uint32_t samples = 0;
    void Add(double x) {
      value = samples == 0 ? x : value + 0.2 * (x - value);
      ++samples;
    }
  };
  // Events per second, exponentially decayed with a time constant of kRateWindowNs.
  struct Rate {
    double count = 0;
    int64_t at_ns = 0;
    double At(int64_t now_ns) const;
  };
  static constexpr int64_t kRateWindowNs = 5'000'000'000;
  struct Service {
    Ewma hold;
    Ewma first_token;
    std::map<uint32_t, Rate> admitted;  // Per class.
  };
  int64_t HoldNs(const Service* s) const;

  const SchedulingConfig& config_;
  const Scheduler& scheduler_;
  std::map<std::string, Service> models_;
};

}  // namespace wafer::host

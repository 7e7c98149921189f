// Seeded job traces for the scheduling benchmark: tenants with weights and classes, open-loop
// arrivals (Poisson, or bursty: Poisson whose rate is a square wave), prompt and output lengths
// from clamped lognormal distributions, a TTFT target per class.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace wafer::bench {

// A lognormal length: `median` tokens, log-space standard deviation `sigma`, clamped.
struct LengthDistribution {
  double median = 128;
  double sigma = 0.5;
  uint32_t min = 1;
  uint32_t max = 1024;
  uint32_t Draw(std::mt19937_64& rng) const;
};

struct TraceClass {
  std::string name;              // As waferd's scheduler.classes names it.
  uint8_t priority = 0;          // SubmitJob.priority of its jobs (within the class's range).
  uint32_t ttft_target_ms = 0;   // SubmitJob.ttft_target_ms of its jobs.
  LengthDistribution prompt, output;
};

struct TraceTenant {
  std::string name;
  uint32_t weight = 1;   // waferd's scheduler.tenants[].weight.
  uint32_t cls = 0;      // Index into TraceSpec::classes: the class all its jobs ask for.
  double job_share = 0;  // Fraction of the trace's jobs that are its (the shares sum to 1).
};

enum class Arrivals {
  kPoisson,  // Exponential gaps at `rate`.
  kBursty,   // Poisson at burst_factor x rate for burst_fraction of every period, slower
             // between, so that the mean rate is `rate`.
};

struct TraceSpec {
  uint64_t seed = 1;
  std::vector<TraceClass> classes;
  std::vector<TraceTenant> tenants;
  Arrivals arrivals = Arrivals::kPoisson;
  double rate = 100;        // Mean jobs per second.
  double duration_s = 10;   // Arrivals in [0, duration_s).
  double burst_period_s = 2;
  double burst_fraction = 0.2;
  double burst_factor = 3;  // REQUIRES: burst_fraction * burst_factor < 1.
};

struct TraceJob {
  double at_s = 0;  // Arrival, from the start of the trace.
  uint32_t tenant = 0;
  uint32_t cls = 0;
  uint32_t prompt_tokens = 0;
  uint32_t max_tokens = 0;
};

// The jobs of `spec`, in arrival order. The n-th job's tenant and lengths depend only on the
// seed and the mix, not on the rate or the arrival pattern (they come from a stream of their
// own), so traces of one seed at different loads carry the same jobs at different times.
std::vector<TraceJob> GenerateTrace(const TraceSpec& spec);

// The mix the scheduling benchmark runs (see its description in DescribeMix), at `rate` jobs/s.
TraceSpec SchedulingMix(uint64_t seed, double rate, double duration_s, Arrivals arrivals);

// Several lines describing the classes, tenants and lengths of `spec`, for the printout.
std::string DescribeMix(const TraceSpec& spec);

}  // namespace wafer::bench

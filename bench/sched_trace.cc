#include "bench/sched_trace.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace wafer::bench {
namespace {

// Separates the arrival stream from the job-attribute stream of one seed.
constexpr uint64_t kArrivalStream = 0x9e3779b97f4a7c15ull;

// The time at which the cumulative arrival intensity of `spec` reaches `u` (jobs expected).
double InverseIntensity(const TraceSpec& spec, double u) {
  if (spec.arrivals == Arrivals::kPoisson) return u / spec.rate;
  const double p = spec.burst_period_s, f = spec.burst_fraction;
  const double burst_rate = spec.rate * spec.burst_factor;
  const double quiet_rate = spec.rate * (1 - f * spec.burst_factor) / (1 - f);
  const double per_period = spec.rate * p;
  const double k = std::floor(u / per_period);
  const double r = u - k * per_period;
  const double in_burst = burst_rate * f * p;
  if (r < in_burst) return k * p + r / burst_rate;
  return k * p + f * p + (r - in_burst) / quiet_rate;
}

}  // namespace

uint32_t LengthDistribution::Draw(std::mt19937_64& rng) const {
  std::lognormal_distribution<double> d(std::log(median), sigma);
  const double v = std::round(d(rng));
  return static_cast<uint32_t>(std::clamp(v, static_cast<double>(min), static_cast<double>(max)));
}

std::vector<TraceJob> GenerateTrace(const TraceSpec& spec) {
  std::mt19937_64 attributes(spec.seed);
  std::mt19937_64 arrivals(spec.seed ^ kArrivalStream);
  std::exponential_distribution<double> gap(1.0);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<TraceJob> jobs;
  double u = 0;
  while (true) {
    u += gap(arrivals);
    const double at = InverseIntensity(spec, u);
    if (at >= spec.duration_s) break;
    TraceJob j;
    j.at_s = at;
    double pick = unit(attributes), cumulative = 0;
    j.tenant = static_cast<uint32_t>(spec.tenants.size() - 1);
    for (uint32_t t = 0; t < spec.tenants.size(); ++t) {
      cumulative += spec.tenants[t].job_share;
      if (pick < cumulative) {
        j.tenant = t;
        break;
      }
    }
    j.cls = spec.tenants[j.tenant].cls;
    j.prompt_tokens = spec.classes[j.cls].prompt.Draw(attributes);
    j.max_tokens = spec.classes[j.cls].output.Draw(attributes);
    jobs.push_back(j);
  }
  return jobs;
}

TraceSpec SchedulingMix(uint64_t seed, double rate, double duration_s, Arrivals arrivals) {
  TraceSpec s;
  s.seed = seed;
  s.rate = rate;
  s.duration_s = duration_s;
  s.arrivals = arrivals;
  // Priorities fall in waferd's default classes (interactive >= 200, standard >= 100, batch).
  // TTFT targets: an answer that starts within a human's patience, an API call's budget, and a
  // background job's (shortened to fit a run of seconds).
  s.classes = {
      {"interactive", 220, 250, {128, 0.6, 16, 1024}, {64, 0.6, 8, 256}},
      {"standard", 150, 1000, {384, 0.7, 32, 1536}, {128, 0.7, 16, 384}},
      {"batch", 20, 5000, {768, 0.6, 64, 1536}, {256, 0.5, 32, 512}},
  };
  // Two tenants share the standard class with equal demand and weights 2:1, so that under
  // overload a weighted share (2:1) differs from what arrival order alone gives (1:1).
  s.tenants = {
      {"chat", 1, 0, 0.35},
      {"api", 2, 1, 0.30},
      {"tools", 1, 1, 0.30},
      {"etl", 1, 2, 0.05},
  };
  return s;
}

std::string DescribeMix(const TraceSpec& spec) {
  std::string out;
  char line[256];
  for (const TraceClass& c : spec.classes) {
    std::snprintf(line, sizeof line,
                  "    class %-12s priority %3u  TTFT target %5u ms  prompt lognormal(median %.0f, "
                  "sigma %.1f) in [%u, %u]  output (median %.0f, sigma %.1f) in [%u, %u]\n",
                  c.name.c_str(), c.priority, c.ttft_target_ms, c.prompt.median, c.prompt.sigma,
                  c.prompt.min, c.prompt.max, c.output.median, c.output.sigma, c.output.min,
                  c.output.max);
    out += line;
  }
  for (const TraceTenant& t : spec.tenants) {
    std::snprintf(line, sizeof line, "    tenant %-6s weight %u  class %-12s %4.0f%% of jobs\n",
                  t.name.c_str(), t.weight, spec.classes[t.cls].name.c_str(), t.job_share * 100);
    out += line;
  }
  std::snprintf(line, sizeof line,
                "    bursty variant: %.0fx the mean rate for %.0f%% of every %.1f s, %.2fx "
                "between\n",
                spec.burst_factor, spec.burst_fraction * 100, spec.burst_period_s,
                (1 - spec.burst_fraction * spec.burst_factor) / (1 - spec.burst_fraction));
  out += line;
  return out;
}

}  // namespace wafer::bench

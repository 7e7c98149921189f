#include "bench/sched_bench.h"

#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <vector>

#include "bench/echo_probe.h"
#include "bench/load_generator.h"
#include "bench/sched_report.h"
#include "bench/sched_trace.h"
#include "bench/trace_replay.h"
#include "bench/waferd_process.h"

namespace wafer::bench {
namespace {

// KV-cache sequences and context of the model: 64 x 2,048 tokens fit the 8B shape on one wse3
// board (64 x 4,096 needs two). The slots bound the board's concurrency, hence its capacity.
constexpr uint32_t kSlots = 64;
constexpr uint32_t kContext = 2048;

// How long each part runs (seconds), full and --quick.
struct Durations {
  double capacity_s;  // Closed-loop saturation run...
  double warmup_s;    // ...and the part of it (and of each trace) not measured.
  double trace_s;     // Arrivals of each open-loop run.
  double drain_s;     // After the last arrival, the wait for accepted jobs to end.
};
constexpr Durations kFull{8, 2, 10, 8};
constexpr Durations kQuick{4, 1, 5, 4};

// The raw echo measured beside each run: a message the size of a JobRejected every 5 ms.
constexpr int kEchoIntervalMs = 5;
constexpr size_t kEchoBytes = 200;

struct Load {
  const char* name;
  double fraction;  // Of the measured capacity.
  Arrivals arrivals;
};

const char* Verdict(bool met) { return met ? "MET" : "MISSED"; }

// User + system CPU seconds this process has used.
double OwnCpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

// The `scheduler:` block of waferd.yaml: `policy`, the trace's tenants (weight, and their class
// as max_class); every other key at waferd's default.
std::string SchedulerYaml(const std::string& policy, const TraceSpec& spec) {
  std::string y = "  policy: " + policy + "\n  tenants:\n";
  for (const TraceTenant& t : spec.tenants) {
    y += "    - {name: " + t.name + ", weight: " + std::to_string(t.weight) +
         ", max_class: " + spec.classes[t.cls].name + "}\n";
  }
  return y;
}

WaferdOptions DaemonFor(const SchedBenchOptions& o, const std::string& policy,
                        const TraceSpec& spec) {
  WaferdOptions w;
  w.bin_dir = o.bin_dir;
  w.dir = o.dir;
  w.shape = kLlama8B;
  w.slots = kSlots;
  w.context = kContext;
  w.pacing = "realtime";
  w.store = "memory";
  w.scheduler_yaml = SchedulerYaml(policy, spec);
  // Each run's waferd is stopped with jobs still queued (FIFO's backlog): no drain wait.
  w.extra_yaml = "drain_timeout_ms: 0\n";
  return w;
}

struct Capacity {
  double jobs_per_s = 0;
  double output_tokens_per_s = 0;
  double waferd_cpu = 0;  // Fraction of one core waferd used while saturated.
  uint32_t finished = 0;
};

// Keeps 2 x kSlots jobs of the trace's mix in flight through FIFO for d.capacity_s and counts
// the jobs that end after the warm-up.
std::optional<Capacity> MeasureCapacity(const SchedBenchOptions& o, const Durations& d) {
  const TraceSpec spec = SchedulingMix(o.seed, 5000, d.capacity_s, Arrivals::kPoisson);
  const std::vector<TraceJob> trace = GenerateTrace(spec);
  auto started = WaferdProcess::Start(DaemonFor(o, "fifo", spec));
  if (!started.ok()) {
    std::printf("    capacity: waferd did not start: %s\n", started.error().ToString().c_str());
    return std::nullopt;
  }
  WaferdProcess& waferd = **started;
  ReplayOptions r;
  r.endpoint = waferd.job_endpoint();
  r.in_flight = 2 * kSlots;
  r.send_for_s = d.capacity_s;
  r.drain_limit_s = 0;
  r.send_targets = false;  // Nothing refused: every job of the mix runs.
  r.service_from_s = d.warmup_s;
  r.service_to_s = d.capacity_s;
  ReplayResult result;
  const double cpu0 = waferd.CpuSeconds();
  if (HostStatus s = ReplayTrace(spec, trace, r, &result); !s.ok()) {
    std::printf("    capacity: the saturation run failed: %s\n", s.error().ToString().c_str());
    return std::nullopt;
  }
  const double cpu1 = waferd.CpuSeconds();
  Capacity c;
  double tokens = 0;
  for (const JobOutcome& j : result.jobs) {
    if (j.completed() && j.finished_s >= d.warmup_s && j.finished_s < d.capacity_s) ++c.finished;
    tokens += j.window_tokens;
  }
  const double window = d.capacity_s - d.warmup_s;
  c.jobs_per_s = c.finished / window;
  c.output_tokens_per_s = tokens / window;
  c.waferd_cpu = (cpu1 - cpu0) / result.wall_s;
  return c;
}

// One open-loop replay of `trace` through a fresh waferd running `policy`; without TTFT targets
// in the submits when `send_targets` is false.
HostResult<RunSummary> RunPolicy(const SchedBenchOptions& o, const Durations& d,
                                 const std::string& policy, const TraceSpec& spec,
                                 const std::vector<TraceJob>& trace, bool send_targets) {
  auto started = WaferdProcess::Start(DaemonFor(o, policy, spec));
  if (!started.ok()) return std::move(started).error();
  WaferdProcess& waferd = **started;
  ReplayOptions r;
  r.endpoint = waferd.job_endpoint();
  r.drain_limit_s = d.drain_s;
  r.send_targets = send_targets;
  r.service_from_s = d.warmup_s;
  r.service_to_s = d.trace_s;
  ReplayResult result;
  const double waferd_cpu0 = waferd.CpuSeconds(), client_cpu0 = OwnCpuSeconds();
  EchoProbe echo(kEchoIntervalMs, kEchoBytes);
  const HostStatus s = ReplayTrace(spec, trace, r, &result);
  std::vector<double> echo_s = echo.Stop();
  if (!s.ok()) return std::move(s).error();
  RunSummary summary = Summarize(spec, trace, result, d.warmup_s, d.trace_s);
  summary.echo_s = std::move(echo_s);
  if (result.wall_s > 0) {
    summary.waferd_cpu = (waferd.CpuSeconds() - waferd_cpu0) / result.wall_s;
    summary.client_cpu = (OwnCpuSeconds() - client_cpu0) / result.wall_s;
  }
  return summary;
}

struct LoadRuns {
  std::optional<RunSummary> fair, fifo;
  // FIFO with no TTFT targets in the submits: waferd as it was before admission control (every
  // job accepted). Run at 150% only.
  std::optional<RunSummary> legacy;
  // Why a run has no summary.
  std::string fair_why, fifo_why, legacy_why;

  // Keeps `run`'s summary in `summary`, or its error in `why`.
  static void Keep(HostResult<RunSummary> run, std::optional<RunSummary>& summary,
                   std::string& why) {
    if (run.ok()) {
      summary = std::move(run).value();
    } else {
      why = run.error().ToString();
    }
  }
};

void PrintTarget(const std::string& what, const std::string& figures, std::optional<bool> met) {
  std::printf("    %-62s %s  %s\n", what.c_str(), figures.c_str(),
              met.has_value() ? Verdict(*met) : "NOT EVALUATED");
}

std::string Fmt(const char* format, double a, double b = 0, double c = 0) {
  char s[160];
  std::snprintf(s, sizeof s, format, a, b, c);
  return s;
}

void PrintTargets(const TraceSpec& spec, const LoadRuns& half, const LoadRuns& eighty,
                  const LoadRuns& over) {
  std::printf("(f) targets, held by the fair policy (fifo's figure beside it for reference)\n");
  auto fair_missing = [](const LoadRuns& l) { return "fair run failed: " + l.fair_why; };
  // 1. At 80%, >= 95% of all jobs meet their TTFT target.
  if (eighty.fair) {
    const double a = eighty.fair->all.OfSubmitted();
    PrintTarget("80%: >= 95% of jobs meet their TTFT target",
                Percent(a) + (eighty.fifo ? " (fifo " + Percent(eighty.fifo->all.OfSubmitted()) + ")"
                                          : ""),
                a >= 0.95);
  } else {
    PrintTarget("80%: >= 95% of jobs meet their TTFT target", fair_missing(eighty), std::nullopt);
  }
  if (!over.fair) {
    PrintTarget("150%: all targets", fair_missing(over), std::nullopt);
  } else {
    const RunSummary& f = *over.fair;
    // 2. At 150%, >= 95% of accepted jobs meet their target.
    const double a = f.all.OfAccepted();
    PrintTarget("150%: >= 95% of accepted jobs meet their TTFT target",
                Percent(a) +
                    (over.fifo ? " (fifo " + Percent(over.fifo->all.OfAccepted()) + ")" : ""),
                a >= 0.95);
    // 3. Every refusal answered in under 1 ms, with a computed retry-after.
    if (f.refused == 0) {
      PrintTarget("150%: every refusal answered in < 1 ms", "no refusals", std::nullopt);
      PrintTarget("150%: every refusal carries a retry-after", "no refusals", std::nullopt);
    } else {
      double worst = 0, over_1ms = 0;
      for (double s : f.refusal_latency_s) {
        worst = std::max(worst, s);
        over_1ms += s >= 1e-3;
      }
      double echo_worst = 0;
      for (double s : f.echo_s) echo_worst = std::max(echo_worst, s);
      PrintTarget("150%: every refusal answered in < 1 ms (client side)",
                  Fmt("%.0f of %.0f >= 1 ms, max %.3f ms", over_1ms, f.refused, worst * 1e3) +
                      Fmt(" (raw echo max %.3f ms)", echo_worst * 1e3),
                  worst < 1e-3);
      PrintTarget("150%: every refusal carries a retry-after",
                  Fmt("%.0f of %.0f", f.refused_with_retry_after, f.refused),
                  f.refused_with_retry_after == f.refused);
    }
    // 4. Each backlogged tenant within 10% of its weighted share (classes with > 1 tenant).
    std::string shares;
    bool all_within = true, any = false;
    for (uint32_t t = 0; t < spec.tenants.size(); ++t) {
      uint32_t peers = 0;
      for (const TraceTenant& u : spec.tenants) peers += u.cls == spec.tenants[t].cls;
      const TenantShare& s = f.shares[t];
      if (peers < 2 || !s.backlogged || s.fair <= 0) continue;
      any = true;
      const double ratio = s.served / s.fair;
      all_within = all_within && ratio >= 0.9 && ratio <= 1.1;
      shares += spec.tenants[t].name + Fmt(" %.2fx", ratio);
      if (over.fifo && over.fifo->shares[t].fair > 0) {
        shares += Fmt(" (fifo %.2fx)", over.fifo->shares[t].served / over.fifo->shares[t].fair);
      }
      shares += "; ";
    }
    if (shares.size() > 2) shares.resize(shares.size() - 2);
    PrintTarget("150%: each backlogged tenant gets its weighted share +-10%",
                any ? shares : "no tenant sharing a class was backlogged",
                any ? std::optional<bool>(all_within) : std::nullopt);
    // 5. The top class's TTFT p99 within 20% of its value at 50% load.
    const std::string top = spec.classes[0].name;
    if (!half.fair || half.fair->ttft_s_per_class[0].empty() || f.ttft_s_per_class[0].empty()) {
      PrintTarget("150%: " + top + " TTFT p99 within 20% of its value at 50%",
                  half.fair ? "no first tokens in the class" : fair_missing(half), std::nullopt);
    } else {
      const double p50load = Quantile(half.fair->ttft_s_per_class[0], 0.99);
      const double p150 = Quantile(f.ttft_s_per_class[0], 0.99);
      std::string fig =
          Fmt("%.1f ms vs %.1f ms (%.2fx)", p150 * 1e3, p50load * 1e3, p150 / p50load);
      if (over.fifo && half.fifo && !over.fifo->ttft_s_per_class[0].empty() &&
          !half.fifo->ttft_s_per_class[0].empty()) {
        fig += Fmt(" (fifo %.2fx)", Quantile(over.fifo->ttft_s_per_class[0], 0.99) /
                                        Quantile(half.fifo->ttft_s_per_class[0], 0.99));
      }
      PrintTarget("150%: " + top + " TTFT p99 within 20% of its value at 50%", fig,
                  p150 <= 1.2 * p50load);
    }
    // 6. Goodput at least 1.5x FIFO's on the same trace: `policy: fifo` with the same submits
    // (waferd's admission refuses for both policies), then FIFO with no targets sent.
    const std::pair<const char*, const std::optional<RunSummary>*> baselines[] = {
        {"150%: goodput >= 1.5x FIFO's on the same trace", &over.fifo},
        {"150%: goodput >= 1.5x FIFO's without TTFT targets sent", &over.legacy}};
    for (const auto& [what, base] : baselines) {
      if (!base->has_value()) {
        PrintTarget(what, "the FIFO run failed", std::nullopt);
        continue;
      }
      const double g = f.goodput_tokens_per_s, b = (*base)->goodput_tokens_per_s;
      PrintTarget(what, Fmt("%.0f vs %.0f tok/s (%.2fx)", g, b, b > 0 ? g / b : 0),
                  g >= 1.5 * b);
    }
  }
}

}  // namespace

bool RunSchedulingBench(const SchedBenchOptions& o) {
  const Durations& d = o.quick ? kQuick : kFull;
  const TraceSpec mix = SchedulingMix(o.seed, 0, d.trace_s, Arrivals::kPoisson);
  std::printf("(f) scheduling: a cluster-scheduler simulator replays one trace open loop through "
              "the fair policy\n    and through FIFO, each in a fresh waferd: shape-only Llama "
              "3.1 8B on one wse3 board, pacing: realtime\n    (steps take their modeled time), "
              "%u slots x %u tokens, store: {path: memory}, other scheduler keys at their\n"
              "    defaults. Seed %llu. One DEALER submits at the trace's times whatever the "
              "replies; TTFT is client side,\n    submit sent -> first token received.\n",
              kSlots, kContext, static_cast<unsigned long long>(o.seed));
  std::printf("%s", DescribeMix(mix).c_str());
  std::printf("    waferd.yaml scheduler block (policy fair or fifo):\n%s",
              SchedulerYaml("<policy>", mix).c_str());
  std::printf("    durations: capacity run %.0f s closed loop (%u in flight, no TTFT targets "
              "sent, first %.0f s not counted);\n    each load %.0f s of arrivals, then up to "
              "%.0f s for accepted jobs to end. Goodput, output tok/s and shares are\n    "
              "measured over the steady window [%.0f, %.0f) s (tokens received in it); "
              "attainment and TTFT over every job.\n",
              d.capacity_s, 2 * kSlots, d.warmup_s, d.trace_s, d.drain_s, d.warmup_s, d.trace_s);
  std::printf("    waferd's admission (TARGET_UNMEETABLE etc.) applies under both policies; at "
              "150%% a third column\n    replays the trace through FIFO with no ttft_target_ms in "
              "the submits (every job accepted, as before admission).\n");
  std::optional<Capacity> cap = MeasureCapacity(o, d);
  if (!cap || cap->jobs_per_s <= 0) return false;
  std::printf("    capacity (fifo, saturated): %.1f jobs/s, %.0f output tok/s of the mix (%u jobs "
              "ended in the window); waferd used %.0f%% of a core meanwhile\n\n",
              cap->jobs_per_s, cap->output_tokens_per_s, cap->finished, cap->waferd_cpu * 100);

  const std::vector<Load> loads = {{"50%", 0.5, Arrivals::kPoisson},
                                   {"80%", 0.8, Arrivals::kPoisson},
                                   {"150%", 1.5, Arrivals::kPoisson},
                                   {"80%", 0.8, Arrivals::kBursty}};
  std::vector<LoadRuns> runs(loads.size());
  for (size_t i = 0; i < loads.size(); ++i) {
    const Load& load = loads[i];
    const TraceSpec spec =
        SchedulingMix(o.seed, load.fraction * cap->jobs_per_s, d.trace_s, load.arrivals);
    const std::vector<TraceJob> trace = GenerateTrace(spec);
    LoadRuns& r = runs[i];
    LoadRuns::Keep(RunPolicy(o, d, "fair", spec, trace, true), r.fair, r.fair_why);
    LoadRuns::Keep(RunPolicy(o, d, "fifo", spec, trace, true), r.fifo, r.fifo_why);
    if (load.fraction > 1) {
      LoadRuns::Keep(RunPolicy(o, d, "fifo", spec, trace, false), r.legacy, r.legacy_why);
    }
    std::printf("(f) %s of capacity, %s: %.1f jobs/s, %zu jobs over %.0f s\n", load.name,
                load.arrivals == Arrivals::kPoisson ? "Poisson" : "bursty", spec.rate,
                trace.size(), spec.duration_s);
    if (!r.fair) std::printf("    fair: no result: %s\n", r.fair_why.c_str());
    if (!r.fifo) std::printf("    fifo: no result: %s\n", r.fifo_why.c_str());
    std::vector<PolicyColumn> columns = {{"fair", r.fair ? &*r.fair : nullptr},
                                         {"fifo", r.fifo ? &*r.fifo : nullptr}};
    if (load.fraction > 1) {
      if (!r.legacy) std::printf("    fifo, no targets: no result: %s\n", r.legacy_why.c_str());
      columns.push_back({"fifo, no targets sent", r.legacy ? &*r.legacy : nullptr});
    }
    PrintComparison(spec, columns);
    std::printf("\n");
  }
  PrintTargets(mix, runs[0], runs[1], runs[2]);
  std::printf("\n");
  return true;
}

}  // namespace wafer::bench

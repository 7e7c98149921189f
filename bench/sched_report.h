// What one replay of a scheduling trace achieved, as the scheduling benchmark reports it:
// goodput, TTFT attainment per class and tenant, TTFT percentiles, refusals and their latency,
// and each tenant's share of its class's service against its weight. Printed side by side for
// the fair and the FIFO policy.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/sched_trace.h"
#include "bench/trace_replay.h"
#include "host/wire/messages.h"

namespace wafer::bench {

// Fair-share cost of a token, as waferd's defaults count it (scheduler.prompt_token_cost and
// output_token_cost).
inline constexpr double kPromptTokenCost = 1;
inline constexpr double kOutputTokenCost = 2;

struct Attainment {
  uint32_t submitted = 0;
  uint32_t accepted = 0;
  uint32_t met = 0;  // First token within the class's TTFT target of the submit (client side).
  double OfSubmitted() const { return submitted ? static_cast<double>(met) / submitted : 0; }
  double OfAccepted() const { return accepted ? static_cast<double>(met) / accepted : 0; }
};

// A tenant's service in its class over the steady window.
struct TenantShare {
  uint32_t tenant = 0;
  double offered = 0;   // Cost of the jobs it submitted in the window (prompt + max_tokens).
  double served = 0;    // Cost served to it in the window (prompt when started, tokens received).
  double fair = 0;      // Its weighted max-min share of what the class was served.
  bool backlogged = false;  // It offered more than `fair`.
};

struct RunSummary {
  Attainment all;
  std::vector<Attainment> per_class, per_tenant;
  std::vector<std::vector<double>> ttft_s_per_class;  // Jobs that got a first token.
  // Over the service window: output tokens received in it by completed jobs that met their
  // target, and by every job.
  double goodput_tokens_per_s = 0;
  double throughput_tokens_per_s = 0;
  uint32_t refused = 0;
  std::map<host::ErrorCode, uint32_t> refused_by_code;
  std::map<host::ErrorCode, std::string> first_refusal;  // The detail of each code's first.
  std::vector<double> refusal_latency_s, accept_latency_s;
  uint32_t refused_with_retry_after = 0;
  std::vector<double> retry_after_ms;
  uint32_t shed = 0, deadline = 0, other_end = 0, unfinished = 0, unanswered = 0;
  std::vector<TenantShare> shares;  // Per tenant.
  double service_from_s = 0, service_to_s = 0;
  double wall_s = 0, max_send_skew_s = 0;
  // CPU used during the replay, as a fraction of one core: waferd's and this process's (the
  // simulated cluster scheduler). Left at -1 when not measured.
  double waferd_cpu = -1, client_cpu = -1;
  // Round trips of a raw ZeroMQ echo on the same host during the replay (EchoProbe).
  std::vector<double> echo_s;
};

// Summarizes `result`, a replay of `trace` (made from `spec`) whose service window is
// [service_from_s, service_to_s).
RunSummary Summarize(const TraceSpec& spec, const std::vector<TraceJob>& trace,
                     const ReplayResult& result, double service_from_s, double service_to_s);

// "97.1%".
std::string Percent(double fraction);

// One column of the printout: a policy's run of the trace; nullptr when it failed ("n/a").
struct PolicyColumn {
  std::string name;
  const RunSummary* summary = nullptr;
};

// Prints the summaries of one trace side by side, a column each.
void PrintComparison(const TraceSpec& spec, const std::vector<PolicyColumn>& columns);

}  // namespace wafer::bench

#include "bench/sched_report.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <set>

#include "bench/load_generator.h"

namespace wafer::bench {
namespace {

// Weighted max-min shares of `served` (the class's total) among `rows`, given what each offered:
// a tenant that offered less than its weighted part of what is left gets what it offered, the
// rest split what remains by weight. Those left splitting are the backlogged ones.
void WaterFill(const TraceSpec& spec, double served, std::vector<TenantShare*>& rows) {
  std::vector<TenantShare*> open;
  for (TenantShare* r : rows) {
    if (r->offered > 0) open.push_back(r);
  }
  double left = served;
  bool changed = true;
  while (changed && !open.empty()) {
    changed = false;
    double weights = 0;
    for (TenantShare* r : open) weights += spec.tenants[r->tenant].weight;
    for (TenantShare* r : open) {
      r->fair = std::max(0.0, left) * spec.tenants[r->tenant].weight / weights;
    }
    for (auto it = open.begin(); it != open.end();) {
      if ((*it)->offered <= (*it)->fair) {
        (*it)->fair = (*it)->offered;
        left -= (*it)->offered;
        it = open.erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
  }
  for (TenantShare* r : open) r->backlogged = true;
}

std::string Format(const char* format, double a, double b = 0, double c = 0) {
  char s[96];
  std::snprintf(s, sizeof s, format, a, b, c);
  return s;
}

// p50 / p99 / max in ms, with the count.
std::string LatencyMs(const std::vector<double>& seconds) {
  if (seconds.empty()) return "none";
  char s[96];
  std::snprintf(s, sizeof s, "%.3f / %.3f / %.3f (%zu)", Quantile(seconds, 0.5) * 1e3,
                Quantile(seconds, 0.99) * 1e3,
                *std::max_element(seconds.begin(), seconds.end()) * 1e3, seconds.size());
  return s;
}

constexpr int kCellWidth = 28;

// A row of the table: `label`, then `cell` rendered from each column's summary ("n/a" for a
// run that failed).
void Row(const std::string& label, const std::vector<PolicyColumn>& columns,
         const std::function<std::string(const RunSummary&)>& cell) {
  std::printf("    %-46s", label.c_str());
  for (const PolicyColumn& c : columns) {
    std::printf(" %-*s", kCellWidth, c.summary ? cell(*c.summary).c_str() : "n/a");
  }
  std::printf("\n");
}

std::string AttainmentCell(const Attainment& a) {
  if (a.submitted == 0) return "no jobs";
  char s[96];
  std::snprintf(s, sizeof s, "%.1f%% / %.1f%% of %u", a.OfSubmitted() * 100,
                a.OfAccepted() * 100, a.submitted);
  return s;
}

}  // namespace

std::string Percent(double fraction) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", fraction * 100);
  return b;
}

RunSummary Summarize(const TraceSpec& spec, const std::vector<TraceJob>& trace,
                     const ReplayResult& result, double service_from_s, double service_to_s) {
  RunSummary s;
  s.per_class.resize(spec.classes.size());
  s.ttft_s_per_class.resize(spec.classes.size());
  s.per_tenant.resize(spec.tenants.size());
  s.shares.resize(spec.tenants.size());
  s.service_from_s = service_from_s;
  s.service_to_s = service_to_s;
  s.wall_s = result.wall_s;
  s.max_send_skew_s = result.max_send_skew_s;
  s.unfinished = result.unfinished;
  s.unanswered = result.unanswered;
  s.first_refusal = result.first_detail;
  double good_tokens = 0, all_tokens = 0;
  for (size_t i = 0; i < trace.size(); ++i) {
    const TraceJob& t = trace[i];
    const JobOutcome& j = result.jobs[i];
    if (!j.sent()) continue;
    const TraceClass& cls = spec.classes[t.cls];
    const bool met = j.started() && j.ttft_s() * 1e3 <= cls.ttft_target_ms;
    for (Attainment* a : {&s.all, &s.per_class[t.cls], &s.per_tenant[t.tenant]}) {
      ++a->submitted;
      a->accepted += j.accepted;
      a->met += met;
    }
    if (j.started()) s.ttft_s_per_class[t.cls].push_back(j.ttft_s());
    all_tokens += j.window_tokens;
    if (met && j.completed()) good_tokens += j.window_tokens;
    if (j.accepted) s.accept_latency_s.push_back(j.reply_latency_s());
    if (j.refused()) {
      ++s.refused;
      ++s.refused_by_code[j.code];
      s.refusal_latency_s.push_back(j.reply_latency_s());
      if (j.retry_after_ms > 0) {
        ++s.refused_with_retry_after;
        s.retry_after_ms.push_back(j.retry_after_ms);
      }
    }
    if (j.finished() && !j.completed()) {
      if (j.reason == host::FinishReason::kShed) ++s.shed;
      else if (j.reason == host::FinishReason::kDeadlineExceeded) ++s.deadline;
      else ++s.other_end;
    }
    TenantShare& share = s.shares[t.tenant];
    if (t.at_s >= service_from_s && t.at_s < service_to_s) {
      share.offered += kPromptTokenCost * t.prompt_tokens + kOutputTokenCost * t.max_tokens;
    }
    if (j.started() && j.first_token_s >= service_from_s && j.first_token_s < service_to_s) {
      share.served += kPromptTokenCost * t.prompt_tokens;
    }
    share.served += kOutputTokenCost * j.window_tokens;
  }
  const double window = service_to_s - service_from_s;
  s.goodput_tokens_per_s = window > 0 ? good_tokens / window : 0;
  s.throughput_tokens_per_s = window > 0 ? all_tokens / window : 0;
  for (uint32_t c = 0; c < spec.classes.size(); ++c) {
    std::vector<TenantShare*> rows;
    double served = 0;
    for (uint32_t t = 0; t < spec.tenants.size(); ++t) {
      s.shares[t].tenant = t;
      if (spec.tenants[t].cls != c) continue;
      rows.push_back(&s.shares[t]);
      served += s.shares[t].served;
    }
    WaterFill(spec, served, rows);
  }
  return s;
}

void PrintComparison(const TraceSpec& spec, const std::vector<PolicyColumn>& columns) {
  if (std::none_of(columns.begin(), columns.end(),
                   [](const PolicyColumn& c) { return c.summary != nullptr; })) {
    return;
  }
  std::printf("    %-46s", "");
  for (const PolicyColumn& c : columns) std::printf(" %-*s", kCellWidth, c.name.c_str());
  std::printf("\n");
  Row("jobs submitted / accepted / refused", columns, [](const RunSummary& s) {
    return Format("%.0f / %.0f / %.0f", s.all.submitted, s.all.accepted, s.refused);
  });
  Row("goodput: output tok/s of jobs within target", columns, [](const RunSummary& s) {
    return Format("%.0f", s.goodput_tokens_per_s);
  });
  Row("  all output tok/s (both in the steady window)", columns, [](const RunSummary& s) {
    return Format("%.0f", s.throughput_tokens_per_s);
  });
  Row("TTFT attainment, of submitted / of accepted", columns,
      [](const RunSummary& s) { return AttainmentCell(s.all); });
  for (uint32_t c = 0; c < spec.classes.size(); ++c) {
    const TraceClass& cls = spec.classes[c];
    Row("  class " + cls.name + " (" + std::to_string(cls.ttft_target_ms) + " ms)", columns,
        [c](const RunSummary& s) { return AttainmentCell(s.per_class[c]); });
  }
  for (uint32_t t = 0; t < spec.tenants.size(); ++t) {
    Row("  tenant " + spec.tenants[t].name, columns,
        [t](const RunSummary& s) { return AttainmentCell(s.per_tenant[t]); });
  }
  for (uint32_t c = 0; c < spec.classes.size(); ++c) {
    Row("TTFT p50 / p99 ms, " + spec.classes[c].name, columns, [c](const RunSummary& s) {
      const std::vector<double>& v = s.ttft_s_per_class[c];
      if (v.empty()) return std::string("no first tokens");
      return Format("%.1f / %.1f", Quantile(v, 0.5) * 1e3, Quantile(v, 0.99) * 1e3) + " (" +
             std::to_string(v.size()) + ")";
    });
  }
  Row("refused", columns, [](const RunSummary& s) {
    return Percent(s.all.submitted ? static_cast<double>(s.refused) / s.all.submitted : 0);
  });
  std::set<host::ErrorCode> codes;
  const RunSummary* any = nullptr;
  for (const PolicyColumn& c : columns) {
    if (c.summary == nullptr) continue;
    any = c.summary;
    for (const auto& [code, n] : c.summary->refused_by_code) codes.insert(code);
  }
  for (host::ErrorCode code : codes) {
    Row(std::string("  ") + host::ErrorCodeName(code), columns, [code](const RunSummary& s) {
      auto it = s.refused_by_code.find(code);
      return std::to_string(it == s.refused_by_code.end() ? 0 : it->second);
    });
  }
  Row("refusal reply ms p50 / p99 / max (n)", columns,
      [](const RunSummary& s) { return LatencyMs(s.refusal_latency_s); });
  Row("refusals with retry_after_ms > 0 (p50 ms)", columns, [](const RunSummary& s) {
    if (s.refused == 0) return std::string("no refusals");
    return Format("%.0f of %.0f", s.refused_with_retry_after, s.refused) +
           (s.retry_after_ms.empty() ? "" : Format(" (%.0f)", Quantile(s.retry_after_ms, 0.5)));
  });
  Row("accept reply ms p50 / p99 / max (n)", columns,
      [](const RunSummary& s) { return LatencyMs(s.accept_latency_s); });
  Row("  raw ZeroMQ echo meanwhile, same host", columns,
      [](const RunSummary& s) { return LatencyMs(s.echo_s); });
  Row("accepted, then shed / expired / other end", columns, [](const RunSummary& s) {
    return Format("%.0f / %.0f / %.0f", s.shed, s.deadline, s.other_end);
  });
  Row("unfinished / unanswered at the drain limit", columns, [](const RunSummary& s) {
    return Format("%.0f / %.0f", s.unfinished, s.unanswered);
  });
  if (any != nullptr) {
    std::printf("    service share of each tenant in its class, arrivals and service in "
                "[%.1f, %.1f) s;\n    cost = %.0f x prompt + %.0f x output tokens; served / "
                "weighted max-min share (* backlogged)\n",
                any->service_from_s, any->service_to_s, kPromptTokenCost, kOutputTokenCost);
  }
  for (uint32_t t = 0; t < spec.tenants.size(); ++t) {
    const TraceTenant& tenant = spec.tenants[t];
    Row("  " + tenant.name + " (weight " + std::to_string(tenant.weight) + ", " +
            spec.classes[tenant.cls].name + ")",
        columns, [t](const RunSummary& s) {
          const TenantShare& r = s.shares[t];
          if (r.fair <= 0) return std::string("-");
          return Format("%.2fx  (%.0fk / %.0fk)", r.served / r.fair, r.served / 1e3,
                        r.fair / 1e3) +
                 (r.backlogged ? " *" : "");
        });
  }
  Row("wall (first send to end) / worst send skew ms", columns, [](const RunSummary& s) {
    return Format("%.1f s / %.1f", s.wall_s, s.max_send_skew_s * 1e3);
  });
  Row("CPU, % of a core: waferd / this client", columns, [](const RunSummary& s) {
    if (s.waferd_cpu < 0) return std::string("not measured");
    return Format("%.0f%% / %.0f%%", s.waferd_cpu * 100, s.client_cpu * 100);
  });
  for (const PolicyColumn& c : columns) {
    if (c.summary == nullptr) continue;
    for (const auto& [code, detail] : c.summary->first_refusal) {
      std::printf("    %s, first %s: %s\n", c.name.c_str(), host::ErrorCodeName(code),
                  detail.c_str());
    }
  }
}

}  // namespace wafer::bench

#include "bench/trace_replay.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "common/clock.h"
#include "host/client/wafer_client.h"

namespace wafer::bench {
namespace {

// A job is sent when it is due within this much: the socket waits in whole milliseconds, and
// sending up to 1 ms early beats spinning a core that waferd needs.
constexpr double kSendSlackS = 0.001;
// The longest single wait on the socket when nothing is due sooner.
constexpr int kMaxWaitMs = 50;

host::SubmitJob JobOf(const TraceSpec& spec, const TraceJob& t, size_t index,
                      const ReplayOptions& o) {
  host::SubmitJob job;
  job.request_tag = index + 1;
  job.model = o.model;
  job.tenant = spec.tenants[t.tenant].name;
  job.priority = spec.classes[t.cls].priority;
  job.ttft_target_ms = o.send_targets ? spec.classes[t.cls].ttft_target_ms : 0;
  job.max_tokens = t.max_tokens;
  job.want_text = false;
  job.prompt_tokens.reserve(t.prompt_tokens);
  for (uint32_t i = 0; i < t.prompt_tokens; ++i) {
    job.prompt_tokens.push_back(1 + static_cast<uint32_t>((i + index) % 1000));
  }
  return job;
}

}  // namespace

HostStatus ReplayTrace(const TraceSpec& spec, const std::vector<TraceJob>& trace,
                       const ReplayOptions& o, ReplayResult* result) {
  auto connected = host::JobClient::Connect(o.endpoint);
  if (!connected.ok()) {
    return std::move(connected).error().WithContext("cannot connect to " + o.endpoint);
  }
  host::JobClient& client = **connected;
  const Clock& clock = SystemClock::Get();
  result->jobs.assign(trace.size(), JobOutcome{});
  std::unordered_map<uint64_t, size_t> by_job;  // Accepted, not finished: job id -> index.
  size_t next = 0, unanswered = 0;
  const int64_t start_ns = clock.NowNanos();
  auto now_s = [&] { return static_cast<double>(clock.NowNanos() - start_ns) / 1e9; };
  double last_send_s = 0, last_message_s = 0;

  auto send = [&](size_t i, double now) -> HostStatus {
    JobOutcome& out = result->jobs[i];
    out.sent_s = now;
    if (HostStatus s = client.Send(JobOf(spec, trace[i], i, o)); !s.ok()) {
      return std::move(s).error().WithContext("sending job " + std::to_string(i));
    }
    if (o.in_flight == 0) {
      result->max_send_skew_s = std::max(result->max_send_skew_s, std::abs(now - trace[i].at_s));
    }
    ++unanswered;
    last_send_s = now;
    return HostOk();
  };
  auto answer = [&](uint64_t tag, double now) -> JobOutcome* {
    if (tag == 0 || tag > trace.size()) return nullptr;
    JobOutcome& out = result->jobs[tag - 1];
    if (!out.sent() || out.answered()) return nullptr;
    out.reply_s = now;
    --unanswered;
    return &out;
  };

  while (true) {
    double now = now_s();
    if (o.in_flight == 0) {
      while (next < trace.size() && trace[next].at_s <= now + kSendSlackS) {
        WAFER_HOST_RETURN_IF_ERROR(send(next++, now));
      }
    } else {
      while (next < trace.size() && now < o.send_for_s &&
             unanswered + by_job.size() < o.in_flight) {
        WAFER_HOST_RETURN_IF_ERROR(send(next++, now));
      }
    }
    const bool sending = o.in_flight == 0 ? next < trace.size()
                                          : next < trace.size() && now < o.send_for_s;
    if (!sending) {
      if (unanswered == 0 && by_job.empty()) break;
      if (now - last_send_s > o.drain_limit_s) break;
    }
    int wait_ms = kMaxWaitMs;
    if (o.in_flight == 0 && next < trace.size()) {
      wait_ms = static_cast<int>(std::floor((trace[next].at_s - now) * 1000));
    } else if (o.in_flight > 0 && sending) {
      wait_ms = std::min<int>(kMaxWaitMs, static_cast<int>((o.send_for_s - now) * 1000) + 1);
    }
    wait_ms = std::clamp(wait_ms, 0, kMaxWaitMs);
    host::JobMessage m;
    HostStatus s = client.Receive(&m, wait_ms);
    now = now_s();
    if (s.code() == StatusCode::kDeadlineExceeded) {
      const bool waiting = unanswered > 0 || !by_job.empty();
      if (waiting && (now - last_message_s) * 1000 > o.silence_limit_ms) {
        return Error{StatusCode::kDeadlineExceeded,
                     "waferd sent nothing for " + std::to_string(o.silence_limit_ms) +
                         " ms with " + std::to_string(unanswered + by_job.size()) +
                         " jobs outstanding"};
      }
      continue;
    }
    if (!s.ok()) return s;
    last_message_s = now;
    if (auto* a = std::get_if<host::JobAccepted>(&m)) {
      if (JobOutcome* out = answer(a->request_tag, now)) {
        out->accepted = true;
        by_job[a->job_id] = a->request_tag - 1;
      }
    } else if (auto* r = std::get_if<host::JobRejected>(&m)) {
      if (JobOutcome* out = answer(r->request_tag, now)) {
        out->code = r->code;
        out->retry_after_ms = r->retry_after_ms;
        result->first_detail.emplace(r->code, r->detail);
      }
    } else if (auto* e = std::get_if<host::ErrorReply>(&m)) {
      if (JobOutcome* out = answer(e->request_tag, now)) {
        out->code = e->code;
        result->first_detail.emplace(e->code, "(ErrorReply) " + e->detail);
      }
    } else if (auto* c = std::get_if<host::TokenChunk>(&m)) {
      auto it = by_job.find(c->job_id);
      if (it == by_job.end()) continue;
      JobOutcome& out = result->jobs[it->second];
      if (!out.started() && !c->tokens.empty()) out.first_token_s = now;
      out.tokens_received += static_cast<uint32_t>(c->tokens.size());
      if (now >= o.service_from_s && now < o.service_to_s) {
        out.window_tokens += static_cast<uint32_t>(c->tokens.size());
      }
    } else if (auto* f = std::get_if<host::JobFinished>(&m)) {
      auto it = by_job.find(f->job_id);
      if (it == by_job.end()) continue;
      JobOutcome& out = result->jobs[it->second];
      out.finished_s = now;
      out.reason = f->reason;
      out.prompt_tokens = f->prompt_tokens;
      out.completion_tokens = f->completion_tokens;
      by_job.erase(it);
    }
  }
  const double end = now_s();
  double first_send = -1;
  for (const JobOutcome& j : result->jobs) {
    if (j.sent()) {
      first_send = j.sent_s;
      break;
    }
  }
  result->sending_s = first_send < 0 ? 0 : last_send_s - first_send;
  result->wall_s = first_send < 0 ? 0 : end - first_send;
  result->unfinished = static_cast<uint32_t>(by_job.size());
  result->unanswered = static_cast<uint32_t>(unanswered);
  return HostOk();
}

}  // namespace wafer::bench

#include "bench/load_generator.h"

#include <algorithm>
#include <chrono>
#include <unordered_map>

#include "common/clock.h"
#include "host/client/wafer_client.h"

namespace wafer::bench {
namespace {

struct InFlight {
  int64_t sent_ns = 0;
  bool got_first = false;
};

}  // namespace

double Quantile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(rank, values.size() - 1)];
}

HostStatus RunLoad(const LoadOptions& o, LoadReport* report) {
  auto connected = host::JobClient::Connect(o.endpoint);
  if (!connected.ok()) {
    return std::move(connected).error().WithContext("cannot connect to " + o.endpoint);
  }
  host::JobClient& client = **connected;
  const Clock& clock = SystemClock::Get();
  std::unordered_map<uint64_t, InFlight> by_tag;   // Submitted, not yet answered.
  std::unordered_map<uint64_t, InFlight> by_job;   // Accepted, not yet finished.
  uint64_t first_job_tag = 1;
  uint64_t first_job_id = 0;
  uint32_t submitted = 0;
  const int64_t start = clock.NowNanos();

  auto submit_next = [&]() -> HostStatus {
    host::SubmitJob job;
    job.request_tag = submitted + 1;
    job.model = o.model;
    job.tenant = "loadgen";
    job.max_tokens = o.max_tokens;
    job.sampling.temperature = o.temperature;
    job.sampling.seed = submitted;
    if (o.token_prompts) {
      for (uint32_t i = 0; i < o.prompt_tokens; ++i) job.prompt_tokens.push_back(1 + (i + submitted) % 200);
      job.want_text = false;
    } else {
      job.prompt_text = o.prompts[submitted % o.prompts.size()];
    }
    by_tag[job.request_tag] = InFlight{clock.NowNanos(), false};
    ++submitted;
    return client.Send(job);
  };

  while (report->accepted + report->rejected < o.jobs || !by_job.empty()) {
    while (submitted < o.jobs && by_tag.size() + by_job.size() < o.concurrency) {
      WAFER_HOST_RETURN_IF_ERROR(submit_next());
    }
    host::JobMessage m;
    WAFER_HOST_RETURN_IF_ERROR(client.Receive(&m, o.timeout_ms));
    const int64_t now = clock.NowNanos();
    if (auto* a = std::get_if<host::JobAccepted>(&m)) {
      auto it = by_tag.find(a->request_tag);
      if (it == by_tag.end()) continue;
      by_job[a->job_id] = it->second;
      if (a->request_tag == first_job_tag) first_job_id = a->job_id;
      by_tag.erase(it);
      ++report->accepted;
    } else if (auto* r = std::get_if<host::JobRejected>(&m)) {
      by_tag.erase(r->request_tag);
      ++report->rejected;
      if (report->first_rejection.empty()) {
        report->first_rejection = std::string(host::ErrorCodeName(r->code)) + ": " + r->detail;
      }
    } else if (auto* c = std::get_if<host::TokenChunk>(&m)) {
      auto it = by_job.find(c->job_id);
      if (it == by_job.end()) continue;
      if (!it->second.got_first) {
        it->second.got_first = true;
        report->ttft_s.push_back(static_cast<double>(now - it->second.sent_ns) / 1e9);
      }
      report->tokens += c->tokens.size();
      if (c->job_id == first_job_id && o.on_first_job_chunk) o.on_first_job_chunk(*c);
    } else if (auto* f = std::get_if<host::JobFinished>(&m)) {
      if (by_job.erase(f->job_id) == 0) continue;
      bool ok = f->reason == host::FinishReason::kLength || f->reason == host::FinishReason::kStopToken;
      (ok ? report->finished_ok : report->finished_other)++;
      const int64_t decode_ns = f->timings.total_ns - f->timings.ttft_ns;
      if (f->completion_tokens > 1 && decode_ns > 0) {
        report->host_tokens_per_s.push_back((f->completion_tokens - 1) /
                                            (static_cast<double>(decode_ns) / 1e9));
      }
      if (f->timings.device_ns > 0 && f->completion_tokens > 0) {
        report->device_tokens_per_s.push_back(f->completion_tokens /
                                              (static_cast<double>(f->timings.device_ns) / 1e9));
      }
    } else if (auto* e = std::get_if<host::ErrorReply>(&m)) {
      return Error{StatusCode::kInternal, std::string("daemon error: ") +
                                              host::ErrorCodeName(e->code) + ": " + e->detail};
    }
  }
  report->wall_s = static_cast<double>(clock.NowNanos() - start) / 1e9;
  return HostOk();
}

}  // namespace wafer::bench

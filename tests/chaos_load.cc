#include "tests/chaos_load.h"

#include <algorithm>
#include <mutex>
#include <random>
#include <thread>

namespace wafer::testing {
namespace {

constexpr int kTenants = 4;
constexpr int kReferenceThreads = 16;

// Whether a job ended with all the tokens it was to have.
bool EndedWhole(const host::JobFinished& f) {
  return f.reason == host::FinishReason::kLength || f.reason == host::FinishReason::kStopToken;
}

}  // namespace

std::vector<ChaosJob> MakeChaosJobs(uint64_t seed, int n) {
  static const char* kWords[] = {"wafer", "board", "token", "stream", "crash", "resume",
                                 "plate", "chip",  "sram",  "fabric", "queue", "kill"};
  std::mt19937_64 rng(seed);
  auto pick = [&rng](uint64_t lo, uint64_t hi) { return lo + rng() % (hi - lo + 1); };
  std::vector<ChaosJob> jobs(n);
  for (int j = 0; j < n; ++j) {
    ChaosJob& spec = jobs[j];
    host::SubmitJob& s = spec.request;
    s.tenant = std::string("tenant-") + static_cast<char>('a' + pick(0, kTenants - 1));
    s.idempotency_key = "chaos-" + std::to_string(seed) + "-" + std::to_string(j);
    spec.board = static_cast<int>(pick(0, 1));
    s.model = spec.board == 0 ? "tiny" : "tiny_b";
    if (pick(0, 4) == 0) {
      for (uint64_t w = pick(2, 6); w > 0; --w) {
        s.prompt_text += std::string(s.prompt_text.empty() ? "" : " ") + kWords[pick(0, 11)];
      }
      s.want_text = true;
    } else {
      for (uint64_t t = pick(2, 24); t > 0; --t) {
        s.prompt_tokens.push_back(static_cast<uint32_t>(pick(0, 511)));
      }
      s.want_text = false;
    }
    s.max_tokens = static_cast<uint32_t>(pick(40, 320));
    s.priority = static_cast<uint8_t>(pick(0, 2));
    spec.seeded = pick(0, 1) == 1;
    if (spec.seeded) {
      static const uint32_t kTopK[] = {0, 8, 40};
      static const float kTopP[] = {1.0f, 0.9f};
      s.sampling = Sampling{0.6f + 0.1f * static_cast<float>(pick(0, 6)),
                            kTopK[pick(0, 2)], kTopP[pick(0, 1)], rng() | 1};
    }
    if (pick(0, 9) == 0) s.stop_tokens = {static_cast<uint32_t>(pick(0, 511))};
    if (pick(0, 15) == 0) spec.abandon_after = static_cast<uint32_t>(pick(1, 6));
  }
  return jobs;
}

void ChaosJobResult::Deliver(const host::TokenChunk& c) {
  if (c.job_id != outcome.accepted_reply.job_id ||
      c.instance_id != outcome.accepted_reply.instance_id) {
    ++foreign_chunks;
  }
  if (c.seq < chunks) ++duplicate_chunks;
  if (c.seq > chunks) ++gaps;
  if (c.first_token_index != tokens.size()) ++index_errors;
  if (c.first_token_index < tokens.size()) {
    duplicate_tokens += static_cast<uint32_t>(
        std::min<size_t>(tokens.size() - c.first_token_index, c.tokens.size()));
  }
  ++chunks;
  tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
}

bool FinishedWhole(const ChaosJobResult& r) {
  return r.got_finished && EndedWhole(r.finished);
}

host::RetryOptions ChaosRetryOptions(uint64_t jitter_seed, std::atomic<uint32_t>* retries) {
  host::RetryOptions r;
  r.attempt_timeout_ms = 1000;  // A cut connection is noticed after 1 s of silence.
  r.total_budget_ms = 30000;    // Long enough for a restart and a model reload.
  r.initial_backoff_ms = 20;
  r.max_backoff_ms = 500;
  r.jitter_seed = jitter_seed;
  if (retries != nullptr) r.on_retry = [retries](const host::RetryEvent&) { ++*retries; };
  return r;
}

std::map<size_t, std::vector<uint32_t>> RunUndisturbed(const std::string& endpoint,
                                                       const std::string& key_prefix,
                                                       const std::vector<ChaosJob>& jobs,
                                                       const std::vector<size_t>& which,
                                                       uint64_t jitter_seed) {
  std::mutex mu;
  std::map<size_t, std::vector<uint32_t>> outputs;  // Guarded by mu.
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kReferenceThreads; ++t) {
    threads.emplace_back([&, t] {
      auto client =
          host::JobClient::Connect(endpoint, {}, ChaosRetryOptions(jitter_seed + t, nullptr));
      if (!client.ok()) return;
      for (size_t i = next++; i < which.size(); i = next++) {
        host::SubmitJob s = jobs[which[i]].request;
        s.idempotency_key = key_prefix + s.idempotency_key;
        host::SubmitOutcome o;
        host::JobFinished f;
        std::vector<uint32_t> tokens;
        const HostStatus st = (*client)->RunWithRetry(
            s,
            [&tokens](const host::TokenChunk& c) {
              tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
            },
            &o, &f);
        if (st.ok() && o.accepted && EndedWhole(f)) {
          std::lock_guard<std::mutex> lock(mu);
          outputs[which[i]] = std::move(tokens);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return outputs;
}

}  // namespace wafer::testing

// wafer-loadgen: submits jobs to waferd like a cluster scheduler would, streams the first job's
// tokens to the terminal and prints a summary table. `make demo` runs it.
//
//   wafer-loadgen [--endpoint E] --model M [--jobs N] [--concurrency C] [--max-tokens T]
//                 [--token-prompts] [--temperature T] [--stream-first]
// Exit codes: 0 every job finished normally, 1 some did not, 2 usage, 3 the daemon stopped
// answering.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "bench/load_generator.h"
#include "host/client/wafer_client.h"

int main(int argc, char** argv) {
  using namespace wafer;
  bench::LoadOptions o;
  o.endpoint = host::kDefaultJobEndpoint;
  o.prompts = {"def fibonacci(n):", "The wafer-scale engine", "for (int i = 0; i < n; ++i)",
               "Once upon a time", "import numpy as np", "SELECT name FROM users WHERE"};
  bool stream_first = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    try {
      if (a == "--endpoint") o.endpoint = next();
      else if (a == "--model") o.model = next();
      else if (a == "--jobs") o.jobs = static_cast<uint32_t>(std::stoul(next()));
      else if (a == "--concurrency") o.concurrency = static_cast<uint32_t>(std::stoul(next()));
      else if (a == "--max-tokens") o.max_tokens = static_cast<uint32_t>(std::stoul(next()));
      else if (a == "--token-prompts") o.token_prompts = true;
      else if (a == "--temperature") o.temperature = std::stof(next());
      else if (a == "--stream-first") stream_first = true;
      else throw std::invalid_argument(a);
    } catch (const std::exception&) {
      std::fprintf(stderr, "wafer-loadgen: bad argument near '%s'\n", a.c_str());
      return 2;
    }
  }
  if (o.model.empty() || o.jobs == 0 || o.concurrency == 0) {
    std::fprintf(stderr, "wafer-loadgen: needs --model, and --jobs/--concurrency above 0\n");
    return 2;
  }
  if (stream_first) {
    std::printf("--- job 1, streamed as it arrives (prompt: \"%s\") ---\n", o.prompts[0].c_str());
    o.on_first_job_chunk = [](const host::TokenChunk& c) {
      std::cout << c.text << std::flush;
    };
  }
  bench::LoadReport r;
  HostStatus s = bench::RunLoad(o, &r);
  if (stream_first) std::printf("\n--- end of job 1 ---\n\n");
  if (!s.ok()) {
    std::fprintf(stderr, "wafer-loadgen: %s\n", s.error().ToString().c_str());
    return 3;
  }
  std::printf("%-34s %s\n", "metric", "value");
  std::printf("%-34s %u submitted, %u accepted, %u rejected\n", "jobs", o.jobs, r.accepted, r.rejected);
  std::printf("%-34s %u ok, %u other\n", "jobs finished", r.finished_ok, r.finished_other);
  std::printf("%-34s %llu\n", "tokens streamed", static_cast<unsigned long long>(r.tokens));
  std::printf("%-34s %.1f\n", "tokens/s (host, end to end)", r.tokens_per_s());
  std::printf("%-34s %.2f ms / %.2f ms\n", "time to first token p50 / p99",
              bench::Quantile(r.ttft_s, 0.5) * 1e3, bench::Quantile(r.ttft_s, 0.99) * 1e3);
  std::printf("%-34s %.0f tokens/s per user (p50)\n", "decode rate, host simulation",
              bench::Quantile(r.host_tokens_per_s, 0.5));
  std::printf("%-34s %.0f tokens/s per user (p50)\n", "decode rate, modeled device",
              bench::Quantile(r.device_tokens_per_s, 0.5));
  std::printf("%-34s %.2f s\n", "wall time", r.wall_s);
  if (!r.first_rejection.empty()) std::printf("first rejection: %s\n", r.first_rejection.c_str());
  return r.finished_ok == o.jobs ? 0 : 1;
}

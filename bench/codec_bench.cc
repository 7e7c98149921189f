// Micro-benchmarks of the job codec, the per-message cost on waferd's hot path, against a plain
// memcpy of the same bytes as the baseline.
#include <cstring>

#include <benchmark/benchmark.h>

#include "host/wire/job_codec.h"

namespace wafer::host {
namespace {

TokenChunk Chunk() { return TokenChunk{42, 7, 224, std::vector<uint32_t>(32, 1234), ""}; }

void BM_MemcpyBaseline(benchmark::State& state) {
  std::string bytes = EncodeJob(Chunk());
  std::string copy(bytes.size(), '\0');
  for (auto _ : state) {
    std::memcpy(copy.data(), bytes.data(), bytes.size());
    benchmark::DoNotOptimize(copy.data());
  }
}
BENCHMARK(BM_MemcpyBaseline);

void BM_EncodeTokenChunk(benchmark::State& state) {
  TokenChunk c = Chunk();
  for (auto _ : state) benchmark::DoNotOptimize(EncodeJob(c));
}
BENCHMARK(BM_EncodeTokenChunk);

void BM_DecodeTokenChunk(benchmark::State& state) {
  std::string bytes = EncodeJob(Chunk());
  std::span<const std::byte> view(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(DecodeJob(view));
  }
}
BENCHMARK(BM_DecodeTokenChunk);

void BM_DecodeSubmit(benchmark::State& state) {
  SubmitJob s;
  s.model = "llama-8b";
  s.prompt_text = std::string(400, 'a');
  s.max_tokens = 256;
  std::string bytes = EncodeJob(s);
  std::span<const std::byte> view(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(DecodeJob(view));
  }
}
BENCHMARK(BM_DecodeSubmit);

}  // namespace
}  // namespace wafer::host

BENCHMARK_MAIN();

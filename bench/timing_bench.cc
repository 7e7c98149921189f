// Host cost of the board timing model, which runs on every Step: a decode step of a
// Llama-3.1-405B-shaped model pipelined over 20 wse3 boards must cost under 1 ms of host time.
// The baseline measured in the same run is one layer on one board.
#include <cstdio>
#include <string>

#include <benchmark/benchmark.h>

#include "board_sim/preset.h"
#include "board_sim/timing_model.h"

namespace wafer::sim {
namespace {

Preset Wse3() {
  std::string error;
  auto preset = LoadPreset("wse3", &error);
  if (!preset.ok()) {
    std::fprintf(stderr, "timing-bench: %s\n", error.c_str());
    std::abort();
  }
  return *preset;
}

ModelShape Llama405BLayers(uint32_t layers, bool head) {
  ModelShape s;
  s.layers = layers;
  s.hidden = 16384;
  s.intermediate = 53248;
  s.heads = 128;
  s.kv_heads = 8;
  s.head_dim = 128;
  s.vocab = head ? 128256 : 0;
  return s;
}

// Baseline: one layer, one board, one decode token for a batch of 16.
void BM_OneLayerOneBoard(benchmark::State& state) {
  const TimingModel model(Wse3());
  const ModelShape shape = Llama405BLayers(1, false);
  for (auto _ : state) benchmark::DoNotOptimize(model.Pass(shape, 16, 4096));
}
BENCHMARK(BM_OneLayerOneBoard);

// A 405B decode step of batch 16 over 20 boards (126 layers: 6 or 7 per board, head on the last).
void BM_Llama405BDecodeStepOver20Wse3(benchmark::State& state) {
  const TimingModel model(Wse3());
  for (auto _ : state) {
    int64_t total = 0;
    for (uint32_t board = 0; board < 20; ++board) {
      const uint32_t layers = board < 6 ? 7 : 6;  // 6 * 7 + 14 * 6 = 126.
      const PassTime t = model.Pass(Llama405BLayers(layers, board == 19), 16, 4096);
      total += t.compute_ns + t.fabric_ns;
    }
    total += model.HostIoNs(16 * 64);
    benchmark::DoNotOptimize(total);
  }
}
BENCHMARK(BM_Llama405BDecodeStepOver20Wse3);

}  // namespace
}  // namespace wafer::sim

BENCHMARK_MAIN();

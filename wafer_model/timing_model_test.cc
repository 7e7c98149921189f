#include "wafer_model/timing_model.h"

#include <gtest/gtest.h>

namespace wafer::wafer_model {
namespace {

// A 100 x 100 fabric with round numbers, so that the figures below can be worked by hand:
// 8 MAC lanes, 24 B/cycle of SRAM per PE, 1 cycle per hop, 3 per router, and 10 ns per cycle.
Preset RoundPreset() {
  Preset p;
  p.name = "round";
  p.fabric_width = 100;
  p.fabric_height = 100;
  p.sram_per_pe_bytes = 49152;
  p.sram_bytes_per_cycle_per_pe = 24;
  p.simd_width = 8;
  p.clock_hz = 1e8;
  p.hop_latency_cycles = 1;
  p.router_cycles = 3;
  p.io_bytes_per_s = 1e9;
  p.round_trip_us = 200;
  return p;
}

// Per layer: q_dim 64, kv_dim 32, parameters 64*64 + 2*64*32 + 64*64 + 3*64*128 = 36,864.
// At context 100 the attention adds 2*64*100 = 12,800 MACs and reads 2*32*100*2 = 12,800 bytes
// of KV: 49,664 MACs and 86,528 bytes per token, compute-bound (49,664 / 8 > 86,528 / 24).
// The head: 1000 * 64 = 64,000 MACs, 128,000 bytes.
ModelArch Small(uint32_t layers) {
  ModelArch m;
  m.vocab_size = 1000;
  m.hidden_size = 64;
  m.intermediate_size = 128;
  m.num_layers = layers;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 16;
  return m;
}

constexpr double kContext = 100;

WaferStages Layers(std::initializer_list<Band> bands) {
  WaferStages s;
  s.layers = bands;
  return s;
}

// Equal share, 3 layers: 4 stages of 2,500 PEs, strips of 100 x 25.
//   layer compute = max(49,664 / 20,000, 86,528 / 60,000) = 2.4832 cycles; head = 3.2 cycles.
//   reduce = 99 hops + ceil(log2 100) = 7 levels * 3 = 120; broadcast = 24 + 3; hand-off 25 + 3.
//   layer fabric = 7 * 120 + 27 + 28 = 895; head fabric = 120 + 27 = 147.
//   1 token:   compute 3 * 2.4832 + 3.2 = 10.6496 cycles = 106.496 ns; fabric 2,832 cycles.
//   10 tokens: + 9 * 3.2 = 39.4496 cycles = 394.496 ns; fabric + 9 * 7 * 3 = 3,021 cycles.
TEST(TimingModelTest, EqualShareGivesTheHandComputedFigures) {
  const TimingModel timing(RoundPreset());
  const WaferStages stages = timing.EqualShareStages(Small(3));
  ASSERT_EQ(stages.layers.size(), 3u);
  EXPECT_TRUE(stages.has_head);
  EXPECT_EQ(stages.head.width, 100u);
  EXPECT_EQ(stages.head.height, 25u);
  for (const Band& b : stages.layers) EXPECT_EQ(b.pes, 2500u);

  for (const PassTime& t : {timing.Pass(Small(3), 1, kContext),
                            timing.Pass(Small(3), stages, 1, kContext)}) {
    EXPECT_EQ(t.compute_ns, 106);
    EXPECT_EQ(t.fabric_ns, 28320);
  }
  for (const PassTime& t : {timing.Pass(Small(3), 10, kContext),
                            timing.Pass(Small(3), stages, 10, kContext)}) {
    EXPECT_EQ(t.compute_ns, 394);
    EXPECT_EQ(t.fabric_ns, 30210);
  }
}

// An equal share is rarely whole rows: 10,000 / 3 = 3,333 PEs is 33 full rows and a partial
// one, computed on 3,333 PEs, with 34 rows of broadcast. A share under a row is a short strip.
TEST(TimingModelTest, EqualShareKeepsAPartialLastRow) {
  const TimingModel timing(RoundPreset());
  const WaferStages two = timing.EqualShareStages(Small(2));
  ASSERT_EQ(two.layers.size(), 2u);
  EXPECT_EQ(two.layers[0].width, 100u);
  EXPECT_EQ(two.layers[0].height, 34u);
  EXPECT_EQ(two.layers[0].pes, 3333u);
  const PassTime a = timing.Pass(Small(2), 7, kContext);
  const PassTime b = timing.Pass(Small(2), two, 7, kContext);
  EXPECT_EQ(a.compute_ns, b.compute_ns);
  EXPECT_EQ(a.fabric_ns, b.fabric_ns);

  const WaferStages many = timing.EqualShareStages(Small(199));  // 10,000 / 200 = 50 PEs.
  EXPECT_EQ(many.layers[0].width, 50u);
  EXPECT_EQ(many.layers[0].height, 1u);
  EXPECT_TRUE(timing.EqualShareStages(Small(0)).layers.empty());
  EXPECT_EQ(timing.Pass(Small(0), 5, kContext).compute_ns, 0);
}

// A compute-bound layer on half the PEs takes twice the compute; the fabric does not double.
TEST(TimingModelTest, HalfThePesDoublesComputeOfAComputeBoundLayer) {
  const TimingModel timing(RoundPreset());
  const PassTime full = timing.Pass(Small(1), Layers({{100, 20}}), 1000, kContext);
  const PassTime half = timing.Pass(Small(1), Layers({{100, 10}}), 1000, kContext);
  // 49,664 / (2,000 * 8) = 3.104 cycles per token on 100 x 20: 1000 tokens = 31,040 ns.
  EXPECT_EQ(full.compute_ns, 31040);
  EXPECT_EQ(half.compute_ns, 62080);
  EXPECT_LT(half.fabric_ns, full.fabric_ns) << "fewer rows: a shorter broadcast and hand-off";
}

// The same 2,000 PEs as 50 x 40 instead of 100 x 20: equal compute, cheaper reductions.
//   100 wide: 7 * (99 + 7 * 3) + (19 + 3) + (20 + 3) = 885 cycles.
//   50 wide:  7 * (49 + 6 * 3) + (39 + 3) + (40 + 3) = 554 cycles.
TEST(TimingModelTest, NarrowerBandsMakeReductionsCheaper) {
  const TimingModel timing(RoundPreset());
  const PassTime wide = timing.Pass(Small(1), Layers({{100, 20}}), 1, kContext);
  const PassTime narrow = timing.Pass(Small(1), Layers({{50, 40}}), 1, kContext);
  EXPECT_EQ(wide.compute_ns, narrow.compute_ns);
  EXPECT_EQ(wide.fabric_ns, 8850);
  EXPECT_EQ(narrow.fabric_ns, 5540);
}

// Every token after the first waits for the slowest stage, wherever it sits in the pipeline.
TEST(TimingModelTest, TheSlowestStageSetsTheInterval) {
  const TimingModel timing(RoundPreset());
  const ModelArch m = Small(3);
  const WaferStages slow_middle = Layers({{100, 20}, {100, 5}, {100, 20}});
  const WaferStages slow_first = Layers({{100, 5}, {100, 20}, {100, 20}});
  const PassTime one = timing.Pass(m, slow_middle, 1, kContext);
  const PassTime many = timing.Pass(m, slow_middle, 101, kContext);
  // 100 more tokens at 49,664 / (500 * 8) = 12.416 cycles = 124.16 ns each.
  EXPECT_NEAR(many.compute_ns - one.compute_ns, 12416, 1);
  // 100 more tokens at 7 pipelined reductions of 3 router cycles = 210 ns each.
  EXPECT_EQ(many.fabric_ns - one.fabric_ns, 21000);
  const PassTime reordered = timing.Pass(m, slow_first, 101, kContext);
  EXPECT_EQ(reordered.compute_ns, many.compute_ns);
  EXPECT_EQ(reordered.fabric_ns, many.fabric_ns);
}

TEST(TimingModelTest, TheHeadCountsOnlyWhenTheWaferHasIt) {
  const TimingModel timing(RoundPreset());
  const ModelArch m = Small(1);
  WaferStages stages = Layers({{100, 20}});
  stages.head = {100, 1};  // 100 PEs: 64,000 / 800 = 80 cycles a token, the slowest stage.
  const PassTime without = timing.Pass(m, stages, 11, kContext);
  EXPECT_EQ(without.compute_ns, timing.Pass(m, Layers({{100, 20}}), 11, kContext).compute_ns);
  stages.has_head = true;
  const PassTime with = timing.Pass(m, stages, 11, kContext);
  // First token: + 80 cycles; each of 10 more: 80 instead of 3.104 cycles.
  EXPECT_NEAR(with.compute_ns - without.compute_ns, 800 + 10 * (800 - 31.04), 1);
  // The logits reduction (99 + 21) and a one-row broadcast (0 + 3): 123 cycles.
  EXPECT_EQ(with.fabric_ns - without.fabric_ns, 1230);

  // A wafer that holds only the head: one reduction, so 3 router cycles a further token.
  WaferStages head_only;
  head_only.has_head = true;
  head_only.head = {100, 1};
  const PassTime h = timing.Pass(m, head_only, 2, kContext);
  EXPECT_EQ(h.compute_ns, 1600);
  EXPECT_EQ(h.fabric_ns, 1230 + 30);
  EXPECT_EQ(timing.Pass(m, WaferStages{}, 2, kContext).fabric_ns, 0);
}

// A zero-size band breaks the REQUIRES; it must cost as one PE, not divide by zero.
TEST(TimingModelTest, AZeroSizeBandCostsAsOnePe) {
  const TimingModel timing(RoundPreset());
  const PassTime zero = timing.Pass(Small(1), Layers({{0, 0}}), 3, kContext);
  const PassTime one = timing.Pass(Small(1), Layers({{1, 1}}), 3, kContext);
  EXPECT_EQ(zero.compute_ns, one.compute_ns);
  EXPECT_EQ(zero.fabric_ns, one.fabric_ns);
  EXPECT_GT(zero.compute_ns, 0);
}

}  // namespace
}  // namespace wafer::wafer_model

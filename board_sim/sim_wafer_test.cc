#include "board_sim/sim_wafer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "board_sim/testing/row_placement.h"
#include "board_sim/testing/step_rig.h"
#include "board_sim/testing/tiny_llama.h"
#include "board_sim/testing/tiny_stage.h"

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;
using testing::StepRig;

wafer_model::Preset LoadOrDie(const char* name) {
  HostResult<wafer_model::Preset> p = wafer_model::LoadPreset(name, WAFER_PRESET_DIR_FOR_TEST);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return p.ok() ? *p : wafer_model::Preset{};
}

class SimWaferTest : public ::testing::Test {
 protected:
  SimWaferTest() : wafer_(LoadOrDie("mini"), clock_, SimWaferOptions{}) {}

  // Stages and commits the tiny functional model as model `id` with `slots` x `context`.
  void LoadTiny(uint32_t id, uint32_t slots, uint32_t context) {
    tensors_ = testing::MakeTinyLlama(arch_, 7);
    specs_.clear();
    for (const testing::TinyTensor& t : tensors_) specs_.push_back(testing::TinySpec(t));
    hal::ModelManifest m;
    m.model_id = id;
    m.arch = arch_;
    const testing::RowPlacement placed = testing::PlaceInRows(
        specs_, m.arch.num_layers, SimWafer::KvCacheBytes(m.arch, slots, context) / m.arch.num_layers,
        wafer_.Info().fabric_width, wafer_.Info().sram_per_pe);
    kv_ = placed.kv;
    m.tensors = specs_;
    m.kv_regions = kv_;
    m.slots = slots;
    m.context_length = context;
    ASSERT_TRUE(wafer_.BeginModel(m).ok());
    for (uint32_t i = 0; i < tensors_.size(); ++i) {
      auto bytes = tensors_[i].bytes();
      // Two chunks per tensor, as the host would send them.
      const size_t half = bytes.size() / 2;
      ASSERT_TRUE(wafer_.WriteTensor(id, i, 0, bytes.first(half)).ok());
      ASSERT_TRUE(wafer_.WriteTensor(id, i, half, bytes.subspan(half)).ok());
    }
    Status s = wafer_.CommitModel(id);
    ASSERT_TRUE(s.ok()) << s.name();
  }

  FakeClock clock_;
  SimWafer wafer_;
  ModelArch arch_ = testing::TinyArch();
  std::vector<testing::TinyTensor> tensors_;
  std::vector<hal::TensorSpec> specs_;
  std::vector<hal::KvRegion> kv_;
};

// A one-layer model of one tensor placed on `tensor_rect` and a KV cache of 120 bytes on
// `kv_rect` (3 slots x 5 tokens x 2 x 1 kv head x 2 dims x 2 bytes).
struct OneTensorModel {
  hal::TensorSpec tensor;
  hal::KvRegion kv;
  hal::ModelManifest manifest;

  OneTensorModel(uint32_t id, uint64_t floats, hal::PeRect tensor_rect, hal::PeRect kv_rect) {
    tensor.rank = 1;
    tensor.dtype = DType::kF32;
    tensor.shape[0] = floats;
    tensor.byte_size = floats * 4;
    tensor.placement = tensor_rect;
    kv = {0, kv_rect, (120 + kv_rect.pes() - 1) / std::max<uint64_t>(1, kv_rect.pes())};
    manifest.model_id = id;
    manifest.arch = {4, 4, 4, 1, 1, 1, 2};
    manifest.tensors = std::span(&tensor, 1);
    manifest.kv_regions = std::span(&kv, 1);
    manifest.slots = 3;
    manifest.context_length = 5;
  }
};

TEST_F(SimWaferTest, SramIsAccountedPerPeOfEachPlacement) {
  ASSERT_EQ(wafer_.sram_total_bytes(), 128ull * 128 * 48 * 1024);
  EXPECT_EQ(SimWafer::KvCacheBytes(ModelArch{4, 4, 4, 1, 1, 1, 2}, 3, 5), 120u);
  // 1000 floats over a 3x2 rectangle: ceil(4000 / 6) = 667 bytes on each of its PEs.
  OneTensorModel m(1, 1000, {10, 20, 3, 2}, {0, 0, 4, 1});
  ASSERT_TRUE(wafer_.BeginModel(m.manifest).ok());
  EXPECT_EQ(wafer_.sram_used_bytes(), 6u * 667 + 4 * 30);
  EXPECT_EQ(wafer_.sram().used_at(20, 10), 667u);
  EXPECT_EQ(wafer_.sram().used_at(21, 12), 667u);
  EXPECT_EQ(wafer_.sram().used_at(21, 13), 0u);
  EXPECT_EQ(wafer_.sram().used_at(0, 3), 30u);
  EXPECT_EQ(wafer_.sram().used_at(1, 0), 0u);
  ASSERT_TRUE(wafer_.UnloadModel(1).ok());
  EXPECT_EQ(wafer_.sram_used_bytes(), 0u);
  EXPECT_EQ(wafer_.sram().used_at(20, 10), 0u);
}

TEST_F(SimWaferTest, OverCommittingOnePeIsResourceExhaustedAndReservesNothing) {
  const uint64_t per_pe = wafer_.Info().sram_per_pe;
  // A full PE: 12288 floats on one PE fill its 48 KB exactly.
  OneTensorModel full(1, per_pe / 4, {5, 5, 1, 1}, {0, 0, 1, 1});
  ASSERT_TRUE(full.manifest.tensors[0].byte_size == per_pe);
  ASSERT_TRUE(wafer_.BeginModel(full.manifest).ok());
  // One more float than a PE holds: refused although the wafer is almost empty.
  OneTensorModel too_big(2, per_pe / 4 + 1, {6, 5, 1, 1}, {1, 0, 1, 1});
  EXPECT_EQ(wafer_.BeginModel(too_big.manifest).code(), StatusCode::kResourceExhausted);
  // A model whose tensor fits but whose KV region lands on the full PE: refused, and the
  // tensor reserved before the failure is released again (all or nothing).
  const uint64_t used = wafer_.sram_used_bytes();
  OneTensorModel overlap(3, 8, {20, 20, 1, 1}, {5, 5, 1, 1});
  EXPECT_EQ(wafer_.BeginModel(overlap.manifest).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(wafer_.sram_used_bytes(), used);
  EXPECT_EQ(wafer_.sram().used_at(20, 20), 0u);
  // The same model beside it fits; sharing a PE that has room is fine too.
  OneTensorModel beside(3, 8, {6, 5, 3, 3}, {0, 0, 1, 1});
  EXPECT_TRUE(wafer_.BeginModel(beside.manifest).ok());
  EXPECT_EQ(wafer_.sram().used_at(0, 0), 120u + 120u);  // Both models' KV.
  // Once the full model leaves, its PE is free again.
  ASSERT_TRUE(wafer_.UnloadModel(1).ok());
  EXPECT_TRUE(wafer_.BeginModel(OneTensorModel(4, per_pe / 4, {5, 5, 1, 1}, {2, 0, 1, 1}).manifest).ok());
}

TEST_F(SimWaferTest, PlacementsMustBeInsideTheUsableRectangleAndCoverTheKvCache) {
  EXPECT_EQ(wafer_.BeginModel(OneTensorModel(1, 8, {127, 0, 2, 1}, {0, 0, 1, 1}).manifest).code(),
            StatusCode::kInvalidArgument);  // One column past the edge.
  EXPECT_EQ(wafer_.BeginModel(OneTensorModel(1, 8, {0, 128, 1, 1}, {0, 0, 1, 1}).manifest).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(wafer_.BeginModel(OneTensorModel(1, 8, {0, 0, 0, 1}, {0, 0, 1, 1}).manifest).code(),
            StatusCode::kInvalidArgument);  // Empty.
  EXPECT_EQ(wafer_.BeginModel(OneTensorModel(1, 8, {0, 0, 1, 1}, {0, 0, 1, 0}).manifest).code(),
            StatusCode::kInvalidArgument);  // Empty KV region.
  OneTensorModel short_kv(1, 8, {0, 0, 1, 1}, {0, 1, 4, 1});
  short_kv.kv.bytes_per_pe = 29;  // 4 x 29 = 116 < 120 bytes.
  EXPECT_EQ(wafer_.BeginModel(short_kv.manifest).code(), StatusCode::kInvalidArgument);
  OneTensorModel no_kv(1, 8, {0, 0, 1, 1}, {0, 1, 4, 1});
  no_kv.manifest.kv_regions = {};
  EXPECT_EQ(wafer_.BeginModel(no_kv.manifest).code(), StatusCode::kInvalidArgument);
  OneTensorModel wrong_layer(1, 8, {0, 0, 1, 1}, {0, 1, 4, 1});
  wrong_layer.kv.layer = 1;  // The model has one layer.
  EXPECT_EQ(wafer_.BeginModel(wrong_layer.manifest).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wafer_.sram_used_bytes(), 0u);
}

TEST_F(SimWaferTest, KvCacheAloneCanExhaustAPe) {
  // 120 bytes of KV squeezed onto one PE that a tensor nearly fills.
  const uint64_t per_pe = wafer_.Info().sram_per_pe;
  OneTensorModel m(1, per_pe / 4 - 16, {0, 0, 1, 1}, {0, 0, 1, 1});
  EXPECT_EQ(wafer_.BeginModel(m.manifest).code(), StatusCode::kResourceExhausted);
  m.manifest.slots = 257;  // Above max_slots.
  EXPECT_EQ(wafer_.BeginModel(m.manifest).code(), StatusCode::kResourceExhausted);
  m.manifest.slots = 0;
  EXPECT_EQ(wafer_.BeginModel(m.manifest).code(), StatusCode::kInvalidArgument);
}

TEST_F(SimWaferTest, ContentsOfPeFollowPlacements) {
  LoadTiny(3, 2, 32);
  std::vector<uint32_t> found(8);
  for (uint32_t i = 0; i < specs_.size(); ++i) {
    const hal::PeRect& r = specs_[i].placement;
    hal::PeContents c = wafer_.ContentsOfPe(r.y + r.h - 1, r.x + r.w - 1, found);
    ASSERT_TRUE(c.has_model) << i;
    EXPECT_EQ(c.model_id, 3u);
    ASSERT_EQ(c.tensor_count, 1u) << "row bands do not share PEs";
    EXPECT_EQ(found[0], i);
    EXPECT_FALSE(c.kv_cache);
  }
  hal::PeContents kv = wafer_.ContentsOfPe(kv_[1].rect.y, 0, found);
  EXPECT_TRUE(kv.has_model);
  EXPECT_TRUE(kv.kv_cache);
  EXPECT_EQ(kv.tensor_count, 0u);
  EXPECT_FALSE(wafer_.ContentsOfPe(kv_[1].rect.y + kv_[1].rect.h, 0, found).has_model);
}

TEST_F(SimWaferTest, MisshapenTensorIsInvalidArgument) {
  OneTensorModel m(1, 16, {0, 0, 1, 1}, {0, 1, 1, 1});
  m.tensor.rank = 2;
  m.tensor.shape = {4, 4};
  m.tensor.byte_size = 60;  // Not 4 * 4 * 4.
  EXPECT_EQ(wafer_.BeginModel(m.manifest).code(), StatusCode::kInvalidArgument);
}

TEST_F(SimWaferTest, FunctionalStepMatchesEngineRunDirectly) {
  LoadTiny(3, 4, 128);
  const std::vector<uint32_t> prompt_a = {1, 5, 9, 13, 2};
  const std::vector<uint32_t> prompt_b = {7, 7, 3};
  const Sampling greedy;
  const Sampling hot{0.9f, 20, 0.95f};
  const auto want_a = testing::ReferenceGenerate(arch_, tensors_, prompt_a, 6, greedy, 0);
  const auto want_b = testing::ReferenceGenerate(arch_, tensors_, prompt_b, 6, hot, 42);
  ASSERT_EQ(want_a.size(), 6u);
  ASSERT_EQ(want_b.size(), 6u);

  StepRig rig;
  rig.seqs.resize(2);
  rig.seqs[0] = {.slot = 0, .reset = true, .input_tokens = prompt_a, .generate = 6};
  rig.seqs[1] = {.slot = 2, .reset = true, .input_tokens = prompt_b, .generate = 6,
                 .sampling = {0.9f, 20, 0.95f, 42}};
  ASSERT_TRUE(rig.Run(wafer_, 3).ok());
  EXPECT_EQ(rig.Tokens(0), want_a);
  EXPECT_EQ(rig.Tokens(1), want_b);
  EXPECT_EQ(rig.outcomes[0].code, StatusCode::kOk);
  EXPECT_EQ(rig.outcomes[0].context_tokens, 5u + 5u);  // The last token is not fed yet.
  EXPECT_EQ(rig.outcomes[1].context_tokens, 3u + 5u);
  EXPECT_GT(rig.time.compute_ns, 0);
  EXPECT_GT(rig.time.fabric_ns, 0);
  EXPECT_GE(rig.time.host_io_ns, 200'000);  // The 200 us host round trip.
  EXPECT_LT(rig.time.host_io_ns, 201'000);
  EXPECT_EQ(rig.time.total_ns,
            rig.time.compute_ns + rig.time.fabric_ns + rig.time.host_io_ns);

  // Continuing the greedy sequence over two steps gives the same tokens as one step.
  const auto want_long = testing::ReferenceGenerate(arch_, tensors_, prompt_a, 9, greedy, 0);
  StepRig next;
  next.seqs = {{.slot = 0, .input_tokens = std::span(&want_a.back(), 1), .generate = 3}};
  ASSERT_TRUE(next.Run(wafer_, 3).ok());
  EXPECT_EQ(next.Tokens(0), std::vector<uint32_t>(want_long.begin() + 6, want_long.end()));
}

TEST_F(SimWaferTest, APeFaultPoisonsItsShareUntilTheTensorIsRewritten) {
  // PE faults need a harvested fabric.
  const hal::PhysicalGeometry g = wafer_.Geometry();
  std::vector<uint32_t> row_map(g.rows);
  uint32_t kept = 0;
  for (uint32_t r = 0; r < g.rows; ++r) {
    row_map[r] = wafer_.ReadRowFuses(r) > g.spare_cols ? hal::kRowDropped : kept++;
  }
  ASSERT_TRUE(wafer_.ProgramHarvest(row_map).ok());
  LoadTiny(3, 2, 64);
  const std::vector<uint32_t> prompt = {4, 8, 15, 16, 23, 42};
  const auto want = testing::ReferenceGenerate(arch_, tensors_, prompt, 6, Sampling{}, 0);
  ASSERT_EQ(want.size(), 6u);
  const auto generate = [&] {
    StepRig rig;
    rig.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt, .generate = 6}};
    EXPECT_TRUE(rig.Run(wafer_, 3).ok());
    return rig.Tokens(0);
  };
  ASSERT_EQ(generate(), want);

  // Tensor 2 is layer 0's query projection, tensor 10 layer 1's attention norm; the first PE of
  // each rectangle holds the tensor's first bytes. A stopped PE and an uncorrectable ECC error
  // both lose them.
  const struct {
    uint32_t index;
    hal::FaultKind kind;
  } faults[] = {{2, hal::FaultKind::kPeStop}, {10, hal::FaultKind::kEccUncorrectable}};
  for (const auto& f : faults) {
    SCOPED_TRACE(f.index);
    const hal::PeRect r = specs_[f.index].placement;
    ASSERT_TRUE(wafer_.InjectFault({f.kind, 0, r.y, r.x, 0}).ok());
    std::vector<uint32_t> found(8);
    const hal::PeContents c = wafer_.ContentsOfPe(r.y, r.x, found);
    ASSERT_EQ(c.tensor_count, 1u);
    EXPECT_EQ(found[0], f.index);
    // The NaN reaches every logit: greedy sampling picks token 0 every time.
    EXPECT_EQ(generate(), std::vector<uint32_t>(6, 0));

    // Rewritten in two chunks and committed again, the tensor is whole.
    const auto bytes = tensors_[f.index].bytes();
    const size_t half = bytes.size() / 2;
    ASSERT_TRUE(wafer_.WriteTensor(3, f.index, 0, bytes.first(half)).ok());
    ASSERT_TRUE(wafer_.WriteTensor(3, f.index, half, bytes.subspan(half)).ok());
    ASSERT_TRUE(wafer_.CommitModel(3).ok());
    EXPECT_EQ(generate(), want);
  }
}

TEST_F(SimWaferTest, StopTokensAndFullContext) {
  LoadTiny(1, 2, 8);
  const std::vector<uint32_t> prompt = {1, 2, 3, 4, 5};
  const auto want = testing::ReferenceGenerate(arch_, tensors_, prompt, 3, Sampling{}, 0);
  StepRig stop;
  const uint32_t stop_token = want[1];
  stop.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt, .generate = 3,
                .stop_tokens = std::span(&stop_token, 1)}};
  ASSERT_TRUE(stop.Run(wafer_, 1).ok());
  // Stops at the first occurrence of the stop token (which may be want[0] too).
  const size_t first = want[0] == stop_token ? 1 : 2;
  EXPECT_EQ(stop.Tokens(0), std::vector<uint32_t>(want.begin(), want.begin() + first));

  StepRig full;  // 5 prompt tokens + 3 fed back fills the context of 8.
  full.seqs = {{.slot = 1, .reset = true, .input_tokens = prompt, .generate = 10}};
  ASSERT_TRUE(full.Run(wafer_, 1).ok());
  EXPECT_EQ(full.outcomes[0].code, StatusCode::kResourceExhausted);
  EXPECT_EQ(full.outcomes[0].token_count, 4u);
  EXPECT_EQ(full.outcomes[0].context_tokens, 8u);

  StepRig overflow;
  overflow.seqs = {{.slot = 1, .input_tokens = prompt, .generate = 1}};
  ASSERT_TRUE(overflow.Run(wafer_, 1).ok());
  EXPECT_EQ(overflow.outcomes[0].code, StatusCode::kResourceExhausted);
  EXPECT_EQ(overflow.outcomes[0].token_count, 0u);

  StepRig dup;
  dup.seqs = {{.slot = 0, .input_tokens = prompt}, {.slot = 0, .input_tokens = prompt}};
  EXPECT_EQ(dup.Run(wafer_, 1).code(), StatusCode::kInvalidArgument);
  StepRig bad_slot;
  bad_slot.seqs = {{.slot = 2, .input_tokens = prompt}};
  EXPECT_EQ(bad_slot.Run(wafer_, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad_slot.Run(wafer_, 99).code(), StatusCode::kNotFound);
}

// A shape-only Llama manifest with its tensors and KV cache placed in row bands on `wafer`.
struct ShapeOnlyModel {
  std::vector<hal::TensorSpec> specs;
  std::vector<hal::KvRegion> kv;
  hal::ModelManifest manifest;

  ShapeOnlyModel(const SimWafer& wafer, ModelArch arch) {
    specs = testing::LlamaSpecs(arch);
    manifest.model_id = 8;
    manifest.arch = arch;
    manifest.shape_only = true;
    manifest.slots = 4;
    manifest.context_length = 2048;
    kv = testing::PlaceInRows(specs, arch.num_layers,
                              SimWafer::KvCacheBytes(arch, 4, 2048) / arch.num_layers,
                              wafer.Info().fabric_width, wafer.Info().sram_per_pe)
             .kv;
    manifest.tensors = specs;
    manifest.kv_regions = kv;
  }
};

ModelArch Llama8B() {
  ModelArch a;
  a.vocab_size = 128256;
  a.hidden_size = 4096;
  a.intermediate_size = 14336;
  a.num_layers = 32;
  a.num_heads = 32;
  a.num_kv_heads = 8;
  a.head_dim = 128;
  return a;
}

TEST(SimWaferShapeOnlyTest, DeterministicSyntheticTokensAndModeledTime) {
  FakeClock clock;
  SimWafer a(LoadOrDie("wse3"), clock, SimWaferOptions{});
  SimWafer b(LoadOrDie("wse3"), clock, SimWaferOptions{});
  ASSERT_TRUE(a.BeginModel(ShapeOnlyModel(a, Llama8B()).manifest).ok());
  ASSERT_TRUE(b.BeginModel(ShapeOnlyModel(b, Llama8B()).manifest).ok());
  ASSERT_TRUE(a.CommitModel(8).ok());
  ASSERT_TRUE(b.CommitModel(8).ok());
  // 8.0 B parameters at 16 bit plus 4 * 2048 * 32 * 2 * 8 * 128 * 2 bytes of KV (each rounded
  // up to whole PEs of its band), reserved although no weight is stored.
  EXPECT_GT(a.sram_used_bytes(), 16'000'000'000ull);
  EXPECT_LT(a.sram_used_bytes(), 17'200'000'000ull);

  std::vector<uint32_t> prompt(100, 17);
  auto run = [&](SimWafer& w, uint64_t seed, uint32_t gen) {
    StepRig rig;
    rig.seqs = {{.slot = 1, .reset = true, .input_tokens = prompt, .generate = gen,
                 .sampling = {.seed = seed}}};
    EXPECT_TRUE(rig.Run(w, 8).ok());
    return rig;
  };
  StepRig ra = run(a, 5, 16), rb = run(b, 5, 16), rc = run(a, 6, 16);
  EXPECT_EQ(ra.Tokens(0), rb.Tokens(0));
  EXPECT_NE(ra.Tokens(0), rc.Tokens(0));
  for (uint32_t t : ra.Tokens(0)) EXPECT_LT(t, 128256u);
  EXPECT_EQ(ra.outcomes[0].context_tokens, 115u);
  EXPECT_EQ(ra.time.total_ns, rb.time.total_ns);

  // Decode is latency-bound: fabric dominates compute. Prefill amortizes it: 100 prompt tokens
  // in one pass cost far less than 100 single-token passes.
  StepRig prefill = run(a, 1, 0);
  StepRig decode = run(a, 1, 101);
  const int64_t prefill_device = prefill.time.compute_ns + prefill.time.fabric_ns;
  const int64_t decode_device = decode.time.compute_ns + decode.time.fabric_ns;
  EXPECT_GT(decode.time.fabric_ns, decode.time.compute_ns);
  EXPECT_LT(prefill_device * 5, decode_device);
  EXPECT_EQ(prefill.time.host_io_ns / 1000, 200);  // 200 us round trip + a few bytes.
}

TEST(SimWaferShapeOnlyTest, TimingFollowsThePlacedBands) {
  // The same shape (8B's layers, 16 of them) twice: packed into the fewest rows, and with every
  // rectangle twice as tall (twice the PEs per tensor and per layer). Prefill is compute-bound:
  // the spread placement computes in about half the time.
  FakeClock clock;
  SimWafer packed(LoadOrDie("wse3"), clock, SimWaferOptions{});
  SimWafer spread(LoadOrDie("wse3"), clock, SimWaferOptions{});
  ModelArch arch = Llama8B();
  arch.num_layers = 16;
  ShapeOnlyModel p(packed, arch), s(spread, arch);
  for (hal::TensorSpec& t : s.specs) t.placement = {t.placement.x, 2 * t.placement.y, t.placement.w, 2 * t.placement.h};
  for (hal::KvRegion& r : s.kv) {
    r.rect = {r.rect.x, 2 * r.rect.y, r.rect.w, 2 * r.rect.h};
    r.bytes_per_pe = (r.bytes_per_pe + 1) / 2;
  }
  ASSERT_LE(s.kv.back().rect.y + s.kv.back().rect.h, spread.Info().fabric_height);
  ASSERT_TRUE(packed.BeginModel(p.manifest).ok());
  ASSERT_TRUE(spread.BeginModel(s.manifest).ok());
  ASSERT_TRUE(packed.CommitModel(8).ok());
  ASSERT_TRUE(spread.CommitModel(8).ok());
  const std::vector<uint32_t> prompt(512, 3);
  auto prefill = [&](SimWafer& w) {
    StepRig rig;
    rig.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt}};
    EXPECT_TRUE(rig.Run(w, 8).ok());
    return rig.time;
  };
  const DeviceTime a = prefill(packed), b = prefill(spread);
  EXPECT_LT(double(b.compute_ns), 0.6 * double(a.compute_ns));
  EXPECT_GT(double(b.compute_ns), 0.4 * double(a.compute_ns));
}

TEST(SimWaferThermalTest, TemperatureFollowsActivity) {
  FakeClock clock;
  SimWafer w(LoadOrDie("mini"), clock, SimWaferOptions{});
  hal::SensorReadout idle;
  w.ReadSensors(idle);
  ASSERT_EQ(idle.region_count, 4u);
  EXPECT_NEAR(idle.power_w, 75, 1e-3);
  ModelArch arch = Llama8B();
  arch.num_layers = 2;
  arch.vocab_size = 1000;
  arch.hidden_size = 256;
  arch.intermediate_size = 512;
  arch.num_heads = 4;
  arch.num_kv_heads = 2;
  arch.head_dim = 64;
  ShapeOnlyModel m(w, arch);
  ASSERT_TRUE(w.BeginModel(m.manifest).ok());
  ASSERT_TRUE(w.CommitModel(8).ok());
  std::vector<uint32_t> prompt(8, 1);
  // Back-to-back steps for 60 simulated seconds: the wafer is busy all the time.
  for (int i = 0; i < 600; ++i) {
    StepRig rig;
    rig.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt, .generate = 1}};
    ASSERT_TRUE(rig.Run(w, 8).ok());
    clock.Advance(std::min<int64_t>(rig.time.compute_ns + rig.time.fabric_ns, 100'000'000));
  }
  hal::SensorReadout hot;
  w.ReadSensors(hot);
  EXPECT_GT(hot.power_w, idle.power_w);
  EXPECT_GT(hot.region_temp_c[0], idle.region_temp_c[0] + 1);
  EXPECT_GT(hot.region_temp_c[1], hot.region_temp_c[0]);  // Downstream in the coolant.
  EXPECT_GT(hot.coolant_out_c, hot.coolant_in_c);
  clock.Advance(600'000'000'000);  // Ten idle minutes.
  hal::SensorReadout cooled;
  w.ReadSensors(cooled);
  EXPECT_NEAR(cooled.region_temp_c[0], idle.region_temp_c[0], 0.5);
}

// ---------------------------------------------------------------------------------------------
// A model split by layers over several wafers.
// ---------------------------------------------------------------------------------------------

using testing::StageManifest;

// The tiny model with 4 layers, so that it splits three ways.
ModelArch FourLayerArch(bool tied) {
  ModelArch a = testing::TinyArch();
  a.num_layers = 4;
  a.tie_embeddings = tied;
  return a;
}

// Model 1 split over one wafer per stage. Step() runs a step through them as the daemon does:
// the first wafer gets the seqs, each next one the same seqs with the previous one's hidden
// states, and only the last (the head) generates.
class Pipeline {
 public:
  Pipeline(const Clock& clock, const ModelArch& arch, const std::vector<testing::TinyTensor>& all,
           const std::vector<ModelStage>& stages)
      : hidden_size_(arch.hidden_size) {
    for (const ModelStage& stage : stages) {
      wafers_.push_back(std::make_unique<SimWafer>(LoadOrDie("mini"), clock, SimWaferOptions{}));
      manifests_.push_back(
          std::make_unique<StageManifest>(*wafers_.back(), arch, all, 1, stage, 4, 64));
      const Status loaded = testing::LoadStage(*wafers_.back(), *manifests_.back());
      EXPECT_TRUE(loaded.ok()) << loaded.name();
    }
  }

  void Step(const std::vector<hal::SeqStepView>& seqs) {
    rigs_.assign(wafers_.size(), StepRig{});
    for (size_t k = 0; k < wafers_.size(); ++k) {
      const ModelStage& stage = manifests_[k]->manifest.stage;
      StepRig& rig = rigs_[k];
      rig.seqs = seqs;
      rig.hidden_width = stage.has_head ? 0 : hidden_size_;
      for (size_t i = 0; i < seqs.size(); ++i) {
        if (!stage.has_head) rig.seqs[i].generate = 0;
        if (k > 0) rig.seqs[i].hidden_in = rigs_[k - 1].Hidden(i);
      }
      const Status ran = rig.Run(*wafers_[k], 1);
      ASSERT_TRUE(ran.ok()) << "stage " << k << ": " << ran.name();
    }
  }
  const StepRig& rig(size_t stage) const { return rigs_[stage]; }
  const StepRig& last() const { return rigs_.back(); }
  SimWafer& wafer(size_t stage) { return *wafers_[stage]; }
  size_t stages() const { return wafers_.size(); }

 private:
  uint32_t hidden_size_;
  std::vector<std::unique_ptr<SimWafer>> wafers_;
  std::vector<std::unique_ptr<StageManifest>> manifests_;
  std::vector<StepRig> rigs_;
};

// Two sequences through prefill chunks and batched decode, one token per step (a stage without
// the embedding generates at most one): the split model's tokens must be the whole model's.
void ExpectSplitGeneratesWholeModelTokens(bool tied, const std::vector<ModelStage>& stages) {
  FakeClock clock;
  const ModelArch arch = FourLayerArch(tied);
  const auto tensors = testing::MakeTinyLlama(arch, 11);
  Pipeline whole(clock, arch, tensors, {ModelStage{}});
  Pipeline split(clock, arch, tensors, stages);
  const std::vector<uint32_t> p0 = {1, 5, 9, 13, 2, 8, 40, 3, 22}, p1 = {7, 7, 3, 60, 11};
  std::vector<uint32_t> generated;  // Sequence 1's tokens, for the reference below.
  uint32_t next[2] = {0, 0};
  for (int step = 0; step < 7; ++step) {
    std::vector<hal::SeqStepView> seqs(2);
    seqs[0] = {.slot = 0, .reset = step == 0, .generate = step == 0 ? 0u : 1u};
    seqs[1] = {.slot = 2, .reset = step == 0, .generate = 1};
    // Step 0: a prefill chunk of p0 and all of p1; step 1: the rest of p0 and p1's first decode.
    seqs[0].input_tokens = step == 0   ? std::span(p0).first(5)
                           : step == 1 ? std::span(p0).subspan(5)
                                       : std::span<const uint32_t>(&next[0], 1);
    seqs[1].input_tokens = step == 0 ? std::span<const uint32_t>(p1)
                                     : std::span<const uint32_t>(&next[1], 1);
    whole.Step(seqs);
    split.Step(seqs);
    for (size_t i = 0; i < 2; ++i) {
      ASSERT_EQ(split.last().outcomes[i].code, StatusCode::kOk);
      EXPECT_EQ(split.last().Tokens(i), whole.last().Tokens(i)) << "step " << step;
      for (size_t k = 0; k + 1 < split.stages(); ++k) {
        EXPECT_EQ(split.rig(k).outcomes[i].token_count, 0u);
        EXPECT_EQ(split.rig(k).outcomes[i].hidden_count,
                  seqs[i].input_tokens.size() * arch.hidden_size);
      }
      for (size_t k = 0; k < split.stages(); ++k) {
        EXPECT_EQ(split.rig(k).outcomes[i].context_tokens,
                  whole.last().outcomes[i].context_tokens);
      }
    }
    if (step > 0) next[0] = whole.last().Tokens(0).at(0);
    next[1] = whole.last().Tokens(1).at(0);
    generated.push_back(next[1]);
  }
  // And they are the model's greedy tokens.
  EXPECT_EQ(generated, testing::ReferenceGenerate(arch, tensors, p1, 7, Sampling{}, 0));
}

TEST(SimWaferStageTest, TwoStagesGenerateTheWholeModelsTokens) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    ExpectSplitGeneratesWholeModelTokens(tied, {{0, 1, true, false}, {1, 0, false, true}});
  }
}

TEST(SimWaferStageTest, ThreeStagesGenerateTheWholeModelsTokens) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    ExpectSplitGeneratesWholeModelTokens(
        tied, {{0, 1, true, false}, {1, 2, false, false}, {3, 1, false, true}});
  }
}

TEST(SimWaferStageTest, BeginModelTakesExactlyTheStagesTensorsAndKvRegions) {
  FakeClock clock;
  SimWafer wafer(LoadOrDie("mini"), clock, SimWaferOptions{});
  const ModelArch arch = FourLayerArch(false);
  const auto tensors = testing::MakeTinyLlama(arch, 3);
  auto begin = [&](const ModelStage& stage, const ModelStage* tensors_of = nullptr) {
    return wafer.BeginModel(StageManifest(wafer, arch, tensors, 1, stage, 2, 16, tensors_of)
                                .manifest)
        .code();
  };
  const ModelStage middle{1, 2, false, false};
  // Not a part of the model: no layer left, past the last, the embedding not feeding layer 0,
  // the head not reading the last layer.
  EXPECT_EQ(begin({4, 0, false, true}), StatusCode::kInvalidArgument);
  EXPECT_EQ(begin({2, 3, false, true}), StatusCode::kInvalidArgument);
  EXPECT_EQ(begin({1, 0, true, true}), StatusCode::kInvalidArgument);
  EXPECT_EQ(begin({0, 3, true, true}), StatusCode::kInvalidArgument);
  // Tensors outside the stage: another layer's, the embedding, the head.
  const ModelStage wider{0, 3, false, false}, with_embedding{0, 3, true, false},
      with_head{1, 0, false, true};
  EXPECT_EQ(begin(middle, &wider), StatusCode::kInvalidArgument);
  EXPECT_EQ(begin(middle, &with_embedding), StatusCode::kInvalidArgument);
  EXPECT_EQ(begin(middle, &with_head), StatusCode::kInvalidArgument);
  // KV regions: one of a layer outside the stage, or a stage layer without one.
  StageManifest m(wafer, arch, tensors, 1, middle, 2, 16);
  m.kv[0].layer = 0;
  EXPECT_EQ(wafer.BeginModel(m.manifest).code(), StatusCode::kInvalidArgument);
  m.kv[0].layer = 1;
  m.manifest.kv_regions = std::span(m.kv).first(1);
  EXPECT_EQ(wafer.BeginModel(m.manifest).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(wafer.sram_used_bytes(), 0u);
  // The stage's own tensors, KV regions by global layer: reserved and committed.
  m.manifest.kv_regions = m.kv;
  EXPECT_TRUE(testing::LoadStage(wafer, m).ok());
  // A functional stage missing one of its tensors stages, but its weights are refused at commit.
  const ModelStage fewer{1, 1, false, false};
  StageManifest missing(wafer, arch, tensors, 2, middle, 2, 16, &fewer);
  EXPECT_EQ(testing::LoadStage(wafer, missing).code(), StatusCode::kInvalidArgument);
}

TEST(SimWaferStageTest, StepsFollowTheStageRules) {
  FakeClock clock;
  const ModelArch arch = FourLayerArch(false);
  const auto tensors = testing::MakeTinyLlama(arch, 5);
  Pipeline p(clock, arch, tensors, {{0, 2, true, false}, {2, 0, false, true}});
  const std::vector<uint32_t> prompt = {4, 8, 15};
  std::vector<float> hidden(prompt.size() * arch.hidden_size, 0.5f);
  auto run = [&](size_t stage, uint32_t generate, std::span<const float> hidden_in,
                 uint32_t hidden_width) {
    StepRig rig;
    rig.seqs = {{.slot = 1, .reset = true, .input_tokens = prompt, .generate = generate}};
    rig.seqs[0].hidden_in = hidden_in;
    rig.hidden_width = hidden_width;
    return rig.Run(p.wafer(stage), 1).code();
  };
  const uint32_t width = arch.hidden_size;
  // The first stage: no head (nothing to generate), the embedding (no hidden states in), and
  // room for its hidden states out.
  EXPECT_EQ(run(0, 1, {}, width), StatusCode::kInvalidArgument);
  EXPECT_EQ(run(0, 0, hidden, width), StatusCode::kInvalidArgument);
  EXPECT_EQ(run(0, 0, {}, width - 1), StatusCode::kInvalidArgument);
  // The last stage: one token at most, from hidden_size values per input token.
  EXPECT_EQ(run(1, 2, hidden, 0), StatusCode::kInvalidArgument);
  EXPECT_EQ(run(1, 1, std::span(hidden).first(hidden.size() - 1), 0),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run(1, 1, {}, 0), StatusCode::kInvalidArgument);
  // Nothing ran: the slot is still empty on both.
  EXPECT_EQ(run(0, 0, {}, width), StatusCode::kOk);
  EXPECT_EQ(run(1, 1, hidden, 0), StatusCode::kOk);
}

TEST(SimWaferStageTest, ShapeOnlyStagesCarryNoHiddenStatesAndOnlyTheHeadSamples) {
  FakeClock clock;
  SimWafer first(LoadOrDie("mini"), clock, SimWaferOptions{});
  SimWafer last(LoadOrDie("mini"), clock, SimWaferOptions{});
  ModelArch arch = FourLayerArch(false);
  arch.vocab_size = 1000;
  StageManifest m0(first, arch, 8, {0, 2, true, false}, 4, 256);
  StageManifest m1(last, arch, 8, {2, 0, false, true}, 4, 256);
  ASSERT_TRUE(first.BeginModel(m0.manifest).ok());
  ASSERT_TRUE(last.BeginModel(m1.manifest).ok());
  ASSERT_TRUE(first.CommitModel(8).ok());
  ASSERT_TRUE(last.CommitModel(8).ok());
  const std::vector<uint32_t> prompt(20, 3);
  const std::vector<float> hidden(prompt.size() * arch.hidden_size);
  StepRig a, b;
  a.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt}};
  b.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt, .generate = 1}};
  a.hidden_width = arch.hidden_size;  // Room the wafer must leave unused.
  ASSERT_TRUE(a.Run(first, 8).ok());
  ASSERT_TRUE(b.Run(last, 8).ok());
  EXPECT_EQ(a.outcomes[0].hidden_count, 0u);
  EXPECT_EQ(a.outcomes[0].token_count, 0u);
  EXPECT_EQ(a.outcomes[0].context_tokens, 20u);
  ASSERT_EQ(b.outcomes[0].token_count, 1u);
  EXPECT_LT(b.Tokens(0)[0], 1000u);
  EXPECT_EQ(b.outcomes[0].context_tokens, 20u);
  // Hidden states are refused; so is generating on the first stage.
  b.seqs[0].hidden_in = hidden;
  EXPECT_EQ(b.Run(last, 8).code(), StatusCode::kInvalidArgument);
  a.seqs[0].generate = 1;
  EXPECT_EQ(a.Run(first, 8).code(), StatusCode::kInvalidArgument);
}

TEST(SimWaferStageTest, InterWaferTimeIsChargedOnStagesWithoutTheEmbedding) {
  FakeClock clock;
  const ModelArch arch = FourLayerArch(true);
  const auto tensors = testing::MakeTinyLlama(arch, 9);
  Pipeline whole(clock, arch, tensors, {ModelStage{}});
  Pipeline split(clock, arch, tensors,
                 {{0, 1, true, false}, {1, 2, false, false}, {3, 1, false, true}});
  const std::vector<uint32_t> a = {1, 2, 3, 4, 5}, b = {6, 7, 8};
  const std::vector<hal::SeqStepView> seqs = {
      {.slot = 0, .reset = true, .input_tokens = a, .generate = 1},
      {.slot = 1, .reset = true, .input_tokens = b, .generate = 1}};
  whole.Step(seqs);
  split.Step(seqs);
  // The hop's latency plus 8 tokens of 32 values at 16 bits over the link.
  const wafer_model::Preset& preset = split.wafer(1).preset();
  const int64_t hop = std::llround(preset.interwafer_hop_latency_us * 1e3 +
                                   8.0 * 32 * 2 / preset.interwafer_bytes_per_s * 1e9);
  ASSERT_GT(hop, 0);
  EXPECT_EQ(whole.last().time.inter_wafer_ns, 0);
  EXPECT_EQ(split.rig(0).time.inter_wafer_ns, 0);
  for (size_t k = 1; k < 3; ++k) {
    const DeviceTime& t = split.rig(k).time;
    EXPECT_EQ(t.inter_wafer_ns, hop) << k;
    EXPECT_EQ(t.total_ns, t.compute_ns + t.fabric_ns + t.inter_wafer_ns + t.host_io_ns);
  }
}

}  // namespace
}  // namespace wafer::sim

#include "board_sim/sim_wafer.h"

#include <gtest/gtest.h>

#include <vector>

#include "board_sim/testing/row_placement.h"
#include "board_sim/testing/tiny_llama.h"

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;

Preset LoadOrDie(const char* name) {
  std::string error;
  Result<Preset> p = LoadPreset(name, &error, WAFER_PRESET_DIR_FOR_TEST);
  EXPECT_TRUE(p.ok()) << error;
  return p.ok() ? *p : Preset{};
}

hal::ModelArch ToHal(const LlamaArch& a) {
  hal::ModelArch h;
  h.vocab_size = a.vocab_size;
  h.hidden_size = a.hidden_size;
  h.intermediate_size = a.intermediate_size;
  h.num_layers = a.num_layers;
  h.num_heads = a.num_heads;
  h.num_kv_heads = a.num_kv_heads;
  h.head_dim = a.head_dim;
  h.rope_theta = a.rope_theta;
  h.rms_norm_eps = a.rms_norm_eps;
  h.max_position = a.max_position;
  h.tie_embeddings = a.tie_embeddings;
  return h;
}

// A step of one or more sequences, with storage for the firmware-provided token buffers.
struct StepRig {
  std::vector<hal::SeqStepView> seqs;
  std::vector<hal::SeqOutcome> outcomes;
  std::vector<std::vector<uint32_t>> buffers;
  hal::DeviceTime time;

  Status Run(SimWafer& wafer, uint32_t model_id) {
    outcomes.assign(seqs.size(), {});
    buffers.assign(seqs.size(), {});
    for (size_t i = 0; i < seqs.size(); ++i) {
      buffers[i].resize(seqs[i].generate);
      outcomes[i].slot = seqs[i].slot;
      outcomes[i].token_buffer = buffers[i];
    }
    return wafer.RunStep(hal::StepRequest{model_id, seqs}, outcomes, time);
  }
  std::vector<uint32_t> Tokens(size_t i) const {
    return {buffers[i].begin(), buffers[i].begin() + outcomes[i].token_count};
  }
};

class SimWaferTest : public ::testing::Test {
 protected:
  SimWaferTest() : wafer_(LoadOrDie("mini"), clock_, SimWaferOptions{}) {}

  // Stages and commits the tiny functional model as model `id` with `slots` x `context`.
  void LoadTiny(uint32_t id, uint32_t slots, uint32_t context) {
    tensors_ = testing::MakeTinyLlama(arch_, 7);
    specs_.clear();
    for (const testing::TinyTensor& t : tensors_) {
      hal::TensorSpec s;
      s.role = static_cast<hal::TensorRole>(t.role);
      s.layer = t.layer;
      s.dtype = hal::DType::kF32;
      s.rank = static_cast<uint32_t>(t.shape.size());
      for (size_t i = 0; i < t.shape.size(); ++i) s.shape[i] = t.shape[i];
      s.byte_size = t.byte_size();
      specs_.push_back(s);
    }
    hal::ModelManifest m;
    m.model_id = id;
    m.arch = ToHal(arch_);
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
  LlamaArch arch_ = testing::TinyArch();
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
    tensor.dtype = hal::DType::kF32;
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
  EXPECT_EQ(SimWafer::KvCacheBytes(hal::ModelArch{4, 4, 4, 1, 1, 1, 2}, 3, 5), 120u);
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

  ShapeOnlyModel(const SimWafer& wafer, hal::ModelArch arch) {
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

hal::ModelArch Llama8B() {
  hal::ModelArch a;
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

TEST(SimWaferThermalTest, TemperatureFollowsActivity) {
  FakeClock clock;
  SimWafer w(LoadOrDie("mini"), clock, SimWaferOptions{});
  hal::SensorReadout idle;
  w.ReadSensors(idle);
  ASSERT_EQ(idle.region_count, 4u);
  EXPECT_NEAR(idle.power_w, 75, 1e-3);
  hal::ModelArch arch = Llama8B();
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

}  // namespace
}  // namespace wafer::sim

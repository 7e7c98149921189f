// What each board command costs the simulator's host memory (FunctionalModel behind SimWafer),
// pinned by counts: weights are converted by WriteTensor, CommitModel converts nothing and takes
// no KV cache, a slot's KV cache is taken by the first step that uses it, unloading frees it all.
#include "board_sim/functional_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "board_sim/sim_wafer.h"
#include "board_sim/testing/step_rig.h"
#include "board_sim/testing/tiny_llama.h"
#include "board_sim/testing/tiny_stage.h"

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;
using testing::StepRig;

wafer_model::Preset Mini() {
  HostResult<wafer_model::Preset> p = wafer_model::LoadPreset("mini", WAFER_PRESET_DIR_FOR_TEST);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return p.ok() ? *p : wafer_model::Preset{};
}

constexpr uint32_t kId = 4;
constexpr uint32_t kSlots = 6;
constexpr uint32_t kContext = 64;

class FunctionalModelTest : public ::testing::Test {
 protected:
  FunctionalModelTest()
      : wafer_(Mini(), clock_, SimWaferOptions{}),
        manifest_(wafer_, arch_, tensors_, kId, ModelStage{}, kSlots, kContext) {}

  // Writes tensor `i` in `chunk`-byte pieces, last piece first.
  void WriteBackwards(uint32_t i, size_t chunk) {
    const std::span<const std::byte> b = tensors_[i].bytes();
    for (size_t c = (b.size() + chunk - 1) / chunk; c-- > 0;) {
      const size_t begin = c * chunk;
      ASSERT_TRUE(
          wafer_.WriteTensor(kId, i, begin, b.subspan(begin, std::min(chunk, b.size() - begin)))
              .ok());
    }
  }
  uint64_t WeightBytes() const {
    uint64_t total = 0;
    for (const testing::TinyTensor& t : tensors_) total += t.byte_size();
    return total;
  }
  // Host bytes of one slot's KV cache: float32 keys and values of every layer and position.
  uint64_t SlotKvBytes() const {
    return uint64_t{2} * arch_.num_layers * kContext * arch_.num_kv_heads * arch_.head_dim * 4;
  }
  // Greedy generation from `prompt` in a freshly reset `slot`.
  std::vector<uint32_t> Generate(uint32_t slot, const std::vector<uint32_t>& prompt) {
    StepRig rig;
    rig.seqs = {{.slot = slot, .reset = true, .input_tokens = prompt, .generate = 6}};
    EXPECT_TRUE(rig.Run(wafer_, kId).ok());
    return rig.Tokens(0);
  }

  FakeClock clock_;
  SimWafer wafer_;
  ModelArch arch_ = testing::TinyArch();
  std::vector<testing::TinyTensor> tensors_ = testing::MakeTinyLlama(arch_, 3);
  testing::StageManifest manifest_;
  const std::vector<uint32_t> prompt_ = {9, 8, 7, 1, 2, 3};
  const std::vector<uint32_t> want_ =
      testing::ReferenceGenerate(arch_, tensors_, prompt_, 6, Sampling{}, 0);
};

TEST_F(FunctionalModelTest, WritesConvertTheWeightsAndCommitConvertsNothingNorTakesKvCache) {
  const uint64_t sram_before = wafer_.sram_used_bytes();
  ASSERT_TRUE(wafer_.BeginModel(manifest_.manifest).ok());
  const uint64_t sram_reserved = wafer_.sram_used_bytes() - sram_before;
  // SRAM is reserved whole at BeginModel (weights and KV regions); host memory is not.
  EXPECT_GE(sram_reserved, WeightBytes() + SimWafer::KvCacheBytes(manifest_.manifest.arch,
                                                                  kSlots, kContext));
  SimWafer::HostUsage u = wafer_.host_usage();
  EXPECT_EQ(u.weight_bytes, 0u);
  EXPECT_EQ(u.kv_bytes, 0u);
  EXPECT_EQ(u.weight_bytes_converted, 0u);

  for (uint32_t i = 0; i < tensors_.size(); ++i) WriteBackwards(i, 100);
  u = wafer_.host_usage();
  EXPECT_EQ(u.weight_bytes_converted, WeightBytes());
  EXPECT_GE(u.weight_bytes, WeightBytes());
  EXPECT_EQ(u.kv_bytes, 0u);

  ASSERT_TRUE(wafer_.CommitModel(kId).ok());
  const SimWafer::HostUsage committed = wafer_.host_usage();
  EXPECT_EQ(committed.weight_bytes_converted, WeightBytes());  // Commit converted nothing...
  EXPECT_LE(committed.weight_bytes, u.weight_bytes);           // ...nor copied anything.
  EXPECT_GE(committed.weight_bytes, WeightBytes());
  EXPECT_EQ(committed.kv_bytes, 0u);
  for (uint32_t s = 0; s < kSlots; ++s) EXPECT_EQ(wafer_.kv_host_bytes(kId, s), 0u) << s;
  EXPECT_EQ(wafer_.sram_used_bytes() - sram_before, sram_reserved);  // Accounting unchanged.
}

TEST_F(FunctionalModelTest, AStepTakesTheKvCacheOfItsSlotsOnlyAndUnloadFreesEverything) {
  ASSERT_TRUE(testing::LoadStage(wafer_, manifest_).ok());
  const uint64_t sram_used = wafer_.sram_used_bytes();
  ASSERT_EQ(want_.size(), 6u);

  EXPECT_EQ(Generate(3, prompt_), want_);
  for (uint32_t s = 0; s < kSlots; ++s) {
    EXPECT_EQ(wafer_.kv_host_bytes(kId, s), s == 3 ? SlotKvBytes() : 0u) << s;
  }
  EXPECT_EQ(wafer_.host_usage().kv_bytes, SlotKvBytes());
  EXPECT_EQ(wafer_.sram_used_bytes(), sram_used);

  // Slot 3 again (its cache reused) and slot 0 for the first time, in one step: the fresh slot
  // reads as an empty cache, so both give the reference tokens.
  StepRig rig;
  rig.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt_, .generate = 6},
              {.slot = 3, .reset = true, .input_tokens = prompt_, .generate = 6}};
  ASSERT_TRUE(rig.Run(wafer_, kId).ok());
  EXPECT_EQ(rig.Tokens(0), want_);
  EXPECT_EQ(rig.Tokens(1), want_);
  EXPECT_EQ(wafer_.host_usage().kv_bytes, 2 * SlotKvBytes());
  EXPECT_EQ(wafer_.kv_host_bytes(kId, 1), 0u);

  ASSERT_TRUE(wafer_.UnloadModel(kId).ok());
  const SimWafer::HostUsage u = wafer_.host_usage();
  EXPECT_EQ(u.weight_bytes, 0u);
  EXPECT_EQ(u.kv_bytes, 0u);
  EXPECT_EQ(wafer_.kv_host_bytes(kId, 3), 0u);
}

TEST_F(FunctionalModelTest, CommitNeedsEveryByteOfEveryTensor) {
  ASSERT_TRUE(wafer_.BeginModel(manifest_.manifest).ok());
  for (uint32_t i = 0; i < tensors_.size(); ++i) {
    const std::span<const std::byte> b = tensors_[i].bytes();
    // Tensor 2's last byte is missing; the others go in out of order and some twice.
    if (i == 2) {
      ASSERT_TRUE(wafer_.WriteTensor(kId, i, 0, b.first(b.size() - 1)).ok());
    } else {
      WriteBackwards(i, 48);
      ASSERT_TRUE(wafer_.WriteTensor(kId, i, 8, b.subspan(8, 40)).ok());
    }
  }
  EXPECT_EQ(wafer_.WriteTensor(kId, 2, 1, tensors_[2].bytes()).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(wafer_.WriteTensor(kId, 99, 0, tensors_[2].bytes()).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(wafer_.CommitModel(kId).code(), StatusCode::kInvalidArgument);
  StepRig rig;
  rig.seqs = {{.slot = 0, .reset = true, .input_tokens = prompt_, .generate = 1}};
  EXPECT_EQ(rig.Run(wafer_, kId).code(), StatusCode::kNotFound);  // Not committed.

  const std::span<const std::byte> b2 = tensors_[2].bytes();
  ASSERT_TRUE(wafer_.WriteTensor(kId, 2, b2.size() - 1, b2.last(1)).ok());
  ASSERT_TRUE(wafer_.CommitModel(kId).ok());
  EXPECT_EQ(Generate(1, prompt_), want_);
}

// A PE lost while the model is being staged poisons the share of a tensor already converted
// (the committed model then samples token 0); rewriting the tensor and committing again (a
// repair) heals it, converting the rewrite as it arrives and nothing at the commit.
TEST_F(FunctionalModelTest, APeLostWhileStagingPoisonsTheConvertedTensorUntilItIsRewritten) {
  const hal::PhysicalGeometry g = wafer_.Geometry();
  std::vector<uint32_t> row_map(g.rows);
  uint32_t kept = 0;
  for (uint32_t r = 0; r < g.rows; ++r) {
    row_map[r] = wafer_.ReadRowFuses(r) > g.spare_cols ? hal::kRowDropped : kept++;
  }
  ASSERT_TRUE(wafer_.ProgramHarvest(row_map).ok());
  testing::StageManifest m(wafer_, arch_, tensors_, kId, ModelStage{}, kSlots, kContext);
  ASSERT_TRUE(wafer_.BeginModel(m.manifest).ok());
  for (uint32_t i = 0; i < tensors_.size(); ++i) WriteBackwards(i, 256);
  // Tensor 7 is layer 0's gate projection; the first PE of its rectangle held its first bytes.
  ASSERT_EQ(tensors_[7].role, TensorRole::kWGate);
  const hal::PeRect r = m.specs[7].placement;
  ASSERT_TRUE(wafer_.InjectFault({hal::FaultKind::kEccUncorrectable, 0, r.y, r.x, 0}).ok());
  ASSERT_TRUE(wafer_.CommitModel(kId).ok());
  EXPECT_EQ(Generate(0, prompt_), std::vector<uint32_t>(6, 0));

  const uint64_t converted = wafer_.host_usage().weight_bytes_converted;
  WriteBackwards(7, 512);
  EXPECT_EQ(wafer_.host_usage().weight_bytes_converted, converted + tensors_[7].byte_size());
  ASSERT_TRUE(wafer_.CommitModel(kId).ok());
  EXPECT_EQ(wafer_.host_usage().weight_bytes_converted, converted + tensors_[7].byte_size());
  EXPECT_EQ(Generate(0, prompt_), want_);
}

TEST(FunctionalModelShapeOnlyTest, AShapeOnlyModelTakesNoHostMemory) {
  FakeClock clock;
  SimWafer wafer(Mini(), clock, SimWaferOptions{});
  const ModelArch arch = testing::TinyArch();
  testing::StageManifest m(wafer, arch, kId, ModelStage{}, kSlots, kContext);
  ASSERT_TRUE(wafer.BeginModel(m.manifest).ok());
  EXPECT_GT(wafer.sram_used_bytes(), 0u);  // Its SRAM is reserved all the same.
  EXPECT_EQ(wafer.WriteTensor(kId, 0, 0, std::as_bytes(std::span("abcd", 4))).code(),
            StatusCode::kFailedPrecondition);
  ASSERT_TRUE(wafer.CommitModel(kId).ok());
  StepRig rig;
  const std::vector<uint32_t> prompt = {1, 2, 3};
  rig.seqs = {{.slot = 2, .reset = true, .input_tokens = prompt, .generate = 4}};
  ASSERT_TRUE(rig.Run(wafer, kId).ok());
  EXPECT_EQ(rig.Tokens(0).size(), 4u);
  const SimWafer::HostUsage u = wafer.host_usage();
  EXPECT_EQ(u.weight_bytes, 0u);
  EXPECT_EQ(u.kv_bytes, 0u);
  EXPECT_EQ(u.weight_bytes_converted, 0u);
  EXPECT_EQ(wafer.kv_host_bytes(kId, 2), 0u);
}

}  // namespace
}  // namespace wafer::sim

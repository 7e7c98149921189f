#include "board_sim/llama/staged_tensor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "board_sim/llama/llama_engine.h"
#include "board_sim/testing/tiny_llama.h"

namespace wafer::sim {
namespace {

// The tiny model's tensors in `dtype` (bfloat16: the float32 values truncated), with views.
struct Model {
  ModelArch arch = testing::TinyArch();
  std::vector<testing::TinyTensor> tensors = testing::MakeTinyLlama(arch, 11);
  std::vector<std::vector<std::byte>> bytes;
  std::vector<TensorView> views;

  explicit Model(DType dtype) {
    for (const testing::TinyTensor& t : tensors) {
      std::vector<std::byte> b;
      if (dtype == DType::kF32) {
        b.assign(t.bytes().begin(), t.bytes().end());
      } else {
        for (float f : t.data) {
          uint32_t u;
          std::memcpy(&u, &f, 4);
          b.push_back(static_cast<std::byte>((u >> 16) & 0xff));
          b.push_back(static_cast<std::byte>(u >> 24));
        }
      }
      bytes.push_back(std::move(b));
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      views.push_back(TensorView{tensors[i].role, tensors[i].layer, dtype, tensors[i].shape,
                                 bytes[i]});
    }
  }

  // Every tensor staged with nothing written.
  std::vector<StagedTensor> Empty() const {
    std::vector<StagedTensor> out;
    for (const TensorView& v : views) out.emplace_back(v.role, v.layer, v.dtype, v.shape);
    return out;
  }
  // Every tensor written in `chunk`-byte pieces, last piece first (elements split over writes).
  std::vector<StagedTensor> Staged(size_t chunk) const {
    std::vector<StagedTensor> out = Empty();
    for (size_t i = 0; i < views.size(); ++i) {
      const std::span<const std::byte> b = views[i].bytes;
      for (size_t c = (b.size() + chunk - 1) / chunk; c-- > 0;) {
        const size_t begin = c * chunk;
        EXPECT_TRUE(out[i].Write(begin, b.subspan(begin, std::min(chunk, b.size() - begin))).ok());
      }
    }
    return out;
  }
};

// The logits of `prompt` prefilled into slot `slot`.
std::vector<float> Logits(LlamaEngine& e, uint32_t slot, const std::vector<uint32_t>& prompt) {
  std::vector<float> logits(e.arch().vocab_size);
  std::span<const uint32_t> tokens(prompt);
  EXPECT_TRUE(e.Forward(std::span(&slot, 1), std::span(&tokens, 1), logits).ok());
  return logits;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

const std::vector<uint32_t> kPrompt = {3, 1, 4, 1, 5, 9, 2, 6};

TEST(StagedTensorTest, CompleteOnlyOnceEveryByteIsWritten) {
  const Model m(DType::kF32);
  const TensorView& wq = m.views[2];
  ASSERT_EQ(wq.role, TensorRole::kWq);
  StagedTensor t(wq.role, wq.layer, wq.dtype, wq.shape);
  const uint64_t size = wq.bytes.size();
  EXPECT_EQ(t.byte_size(), size);
  EXPECT_FALSE(t.written());
  EXPECT_FALSE(t.complete());
  EXPECT_EQ(t.host_bytes(), 0u);  // Nothing taken before the first write.

  EXPECT_EQ(t.Write(size - 3, wq.bytes.subspan(size - 3, 4)).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(t.host_bytes(), 0u);
  ASSERT_TRUE(t.Write(size / 2 + 1, wq.bytes.subspan(size / 2 + 1)).ok());
  EXPECT_TRUE(t.written());
  EXPECT_FALSE(t.complete());
  EXPECT_GE(t.host_bytes(), size);
  ASSERT_TRUE(t.Write(0, wq.bytes.first(size / 2)).ok());
  EXPECT_FALSE(t.complete());  // One byte is missing.
  // Rewrites up to the hole and from just past it leave it open.
  ASSERT_TRUE(t.Write(size / 4, wq.bytes.subspan(size / 4, size / 4)).ok());
  ASSERT_TRUE(t.Write(size / 2 + 1, wq.bytes.subspan(size / 2 + 1, 8)).ok());
  EXPECT_FALSE(t.complete());
  ASSERT_TRUE(t.Write(size / 2, wq.bytes.subspan(size / 2, 1)).ok());
  EXPECT_TRUE(t.complete());
}

// The same tensors staged in chunks of any size, in any order, give an engine that computes
// bit for bit what one built from whole views computes, and creating it moves them in.
TEST(StagedTensorTest, EngineFromChunksInAnyOrderEqualsEngineFromViews) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype == DType::kF32 ? "f32" : "bf16");
    const Model m(dtype);
    auto from_views = LlamaEngine::Create(m.arch, m.views, 2, 32);
    ASSERT_TRUE(from_views.ok());
    const std::vector<float> want = Logits(**from_views, 1, kPrompt);
    for (size_t chunk : {1u, 7u, 4096u}) {
      SCOPED_TRACE(chunk);
      std::vector<StagedTensor> staged = m.Staged(chunk);
      uint64_t staged_bytes = 0;
      for (const StagedTensor& t : staged) {
        ASSERT_TRUE(t.complete());
        staged_bytes += t.host_bytes();
      }
      auto engine = LlamaEngine::Create(m.arch, std::span<StagedTensor>(staged), 2, 32);
      ASSERT_TRUE(engine.ok());
      for (const StagedTensor& t : staged) {
        EXPECT_EQ(t.host_bytes(), 0u);  // Moved into the engine, not copied.
        EXPECT_FALSE(t.written());
      }
      EXPECT_EQ((*engine)->weight_bytes(), (*from_views)->weight_bytes());
      EXPECT_LE((*engine)->weight_bytes(), staged_bytes);
      EXPECT_TRUE(SameBits(Logits(**engine, 1, kPrompt), want));
    }
  }
}

TEST(StagedTensorTest, CreateRefusesAnIncompleteTensorAndMovesNothing) {
  const Model m(DType::kF32);
  std::vector<StagedTensor> staged = m.Empty();
  for (size_t i = 0; i < staged.size(); ++i) {
    const std::span<const std::byte> b = m.views[i].bytes;
    ASSERT_TRUE(staged[i].Write(0, i == 5 ? b.first(b.size() - 1) : b).ok());
  }
  std::vector<uint64_t> held;
  for (const StagedTensor& t : staged) held.push_back(t.host_bytes());
  EXPECT_EQ(LlamaEngine::Create(m.arch, std::span<StagedTensor>(staged), 1, 16).status().code(),
            StatusCode::kInvalidArgument);
  for (size_t i = 0; i < staged.size(); ++i) EXPECT_EQ(staged[i].host_bytes(), held[i]);

  const std::span<const std::byte> b5 = m.views[5].bytes;
  ASSERT_TRUE(staged[5].Write(b5.size() - 1, b5.last(1)).ok());
  auto engine = LlamaEngine::Create(m.arch, std::span<StagedTensor>(staged), 1, 16);
  ASSERT_TRUE(engine.ok());
  auto from_views = LlamaEngine::Create(m.arch, m.views, 1, 16);
  ASSERT_TRUE(from_views.ok());
  EXPECT_TRUE(SameBits(Logits(**engine, 0, kPrompt), Logits(**from_views, 0, kPrompt)));
}

// Lost SRAM under staged bytes reads as all-ones, as it did when the board kept the raw bytes
// until commit: an engine from the poisoned staged tensors equals one from views whose bytes
// were overwritten with 0xFF, NaN payloads included. Poison before the first write does
// nothing; a later write overwrites poisoned bytes.
TEST(StagedTensorTest, PoisonedStagedBytesEqualAllOnesInTheViewsBytes) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype == DType::kF32 ? "f32" : "bf16");
    Model m(dtype);
    // A range of layer 1's up projection that splits elements, and part of layer 0's attention
    // norm after it is complete.
    struct Loss {
      size_t index;
      uint64_t begin, end;
    };
    ASSERT_EQ(m.views[17].role, TensorRole::kWUp);
    ASSERT_EQ(m.views[1].role, TensorRole::kAttnNorm);
    const Loss losses[] = {{17, 301, 777}, {1, 6, 13}};
    std::vector<StagedTensor> staged = m.Staged(1000);
    StagedTensor unwritten(m.views[3].role, m.views[3].layer, dtype, m.views[3].shape);
    unwritten.Poison(0, 64);
    EXPECT_FALSE(unwritten.written());
    EXPECT_EQ(unwritten.host_bytes(), 0u);
    for (const Loss& l : losses) {
      staged[l.index].Poison(l.begin, l.end);
      std::fill(m.bytes[l.index].begin() + static_cast<ptrdiff_t>(l.begin),
                m.bytes[l.index].begin() + static_cast<ptrdiff_t>(l.end), std::byte{0xFF});
    }
    auto poisoned = LlamaEngine::Create(m.arch, std::span<StagedTensor>(staged), 1, 16);
    auto from_views = LlamaEngine::Create(m.arch, m.views, 1, 16);
    ASSERT_TRUE(poisoned.ok() && from_views.ok());
    const std::vector<float> logits = Logits(**poisoned, 0, kPrompt);
    EXPECT_TRUE(std::any_of(logits.begin(), logits.end(), [](float x) { return std::isnan(x); }));
    EXPECT_TRUE(SameBits(logits, Logits(**from_views, 0, kPrompt)));
  }
}

TEST(StagedTensorTest, ReplaceTensorTakesAStagedTensorByMove) {
  const Model m(DType::kF32);
  auto engine = LlamaEngine::Create(m.arch, m.views, 1, 16);
  ASSERT_TRUE(engine.ok());
  LlamaEngine& e = **engine;
  const std::vector<float> healthy = Logits(e, 0, kPrompt);
  const TensorView& up = m.views[17];
  ASSERT_EQ(up.role, TensorRole::kWUp);
  ASSERT_TRUE(e.PoisonTensor(up.role, up.layer, 10, 100).ok());
  e.ResetSlot(0);
  EXPECT_FALSE(SameBits(Logits(e, 0, kPrompt), healthy));

  StagedTensor t(up.role, up.layer, up.dtype, up.shape);
  ASSERT_TRUE(t.Write(0, up.bytes.first(up.bytes.size() - 4)).ok());
  const uint64_t held = t.host_bytes();
  EXPECT_EQ(e.ReplaceTensor(t).code(), StatusCode::kInvalidArgument);  // Not complete.
  EXPECT_EQ(t.host_bytes(), held);
  ASSERT_TRUE(t.Write(up.bytes.size() - 4, up.bytes.last(4)).ok());
  StagedTensor other_layer(up.role, 5, up.dtype, up.shape);
  ASSERT_TRUE(other_layer.Write(0, up.bytes).ok());
  EXPECT_EQ(e.ReplaceTensor(other_layer).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(e.ReplaceTensor(t).ok());
  EXPECT_EQ(t.host_bytes(), 0u);
  EXPECT_FALSE(t.written());
  e.ResetSlot(0);
  EXPECT_TRUE(SameBits(Logits(e, 0, kPrompt), healthy));
}

// No slot holds a KV cache until a Forward lists it; then exactly that slot's is taken, once,
// and a fresh slot computes what a slot of a fresh engine does.
TEST(LlamaEngineKvTest, EachSlotsCacheIsTakenByItsFirstForward) {
  const Model m(DType::kF32);
  const uint32_t slots = 4, context = 24;
  auto engine = LlamaEngine::Create(m.arch, m.views, slots, context);
  ASSERT_TRUE(engine.ok());
  LlamaEngine& e = **engine;
  for (uint32_t s = 0; s < slots; ++s) EXPECT_EQ(e.kv_bytes(s), 0u);
  const uint64_t per_slot = uint64_t{2} * m.arch.num_layers * context * m.arch.num_kv_heads *
                            m.arch.head_dim * sizeof(float);

  const std::vector<float> first = Logits(e, 3, kPrompt);
  for (uint32_t s = 0; s < slots; ++s) EXPECT_EQ(e.kv_bytes(s), s == 3 ? per_slot : 0u) << s;
  e.ResetSlot(3);
  EXPECT_EQ(e.kv_bytes(3), per_slot);  // Kept for the slot's next sequence.
  EXPECT_TRUE(SameBits(Logits(e, 3, kPrompt), first));

  // Two slots in one batch: slot 0 is new, slot 3 reused; the new one computes what slot 3 did.
  std::vector<float> logits(2 * m.arch.vocab_size);
  const uint32_t both[] = {0, 3};
  e.ResetSlot(3);
  const std::span<const uint32_t> tokens[] = {kPrompt, kPrompt};
  ASSERT_TRUE(e.Forward(both, tokens, logits).ok());
  EXPECT_EQ(e.kv_bytes(0), per_slot);
  EXPECT_EQ(e.kv_bytes(1), 0u);
  EXPECT_EQ(std::memcmp(logits.data(), first.data(), first.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(logits.data() + m.arch.vocab_size, first.data(),
                        first.size() * sizeof(float)),
            0);
  EXPECT_EQ(e.kv_bytes(slots), 0u);  // Out of range.
}

}  // namespace
}  // namespace wafer::sim

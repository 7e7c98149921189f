// The arithmetic the simulated wafer performs for a Llama-family decoder: embedding, RMSNorm,
// rotary attention (grouped-query, optional Llama 3 rope scaling) over a per-slot KV cache,
// SwiGLU MLP and the output head, in float32 on the host CPU ("functional" simulation). An engine
// runs the whole model or one stage of a model split by layers over several boards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/model_arch.h"
#include "common/model_stage.h"
#include "common/result.h"
#include "common/sampling.h"
#include "common/tensor_types.h"

namespace wafer::sim {

// A tensor's bytes as they sit in (simulated) SRAM, row-major, outermost dimension first.
struct TensorView {
  TensorRole role = TensorRole::kEmbedding;
  uint32_t layer = 0;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::span<const std::byte> bytes;
};

class StagedTensor;  // board_sim/llama/staged_tensor.h

// Not thread-safe; owned by the simulated board. Internally, Forward() spreads large matrix
// products and the attention rows over one private helper thread (started by Create, idle
// between calls).
//
// Host memory: the weights, in their stored dtype, from Create on; each slot's KV cache (float32,
// 2 * stage layers * context_length * kv_heads * head_dim values) from the first Forward that
// lists the slot until the engine is destroyed. Creating an engine from staged tensors converts
// nothing and takes no KV cache, so its cost does not grow with the model.
//
// Stages chained by their hidden states compute exactly what the whole model does: a stage's
// layers are the whole model's, run on the same float32 rows, and every kernel gives each row
// the same result whatever else is in the batch, so the last stage's logits are bit-identical
// to the whole model's for the same batches.
class LlamaEngine {
 public:
  // Validates `stage` and every tensor's role, layer (global), dtype and shape against `arch`,
  // and copies the weights in their stored dtype (norm weights as float32); `tensors` may be
  // freed afterwards. The stage needs exactly: the embedding when it has the embedding or the
  // head of a tied model; every per-layer tensor of its layers; the final norm and, untied, the
  // LM head when it has the head. The KV cache covers the stage's layers only, of `slots`
  // sequences of `context_length` tokens; each slot's is taken on its first use (Forward).
  // Returns INVALID_ARGUMENT (a missing, duplicate, misshapen or out-of-stage tensor; a bad arch;
  // a stage outside the model, the embedding on a stage not starting at layer 0 or the head on
  // one not ending at the last layer) or RESOURCE_EXHAUSTED (the weights cannot be copied, or
  // the whole KV cache would not fit the address space).
  static Result<std::unique_ptr<LlamaEngine>> Create(const ModelArch& arch,
                                                     std::span<const TensorView> tensors,
                                                     uint32_t slots, uint32_t context_length,
                                                     const ModelStage& stage = ModelStage{});
  // The same from tensors already written and converted (StagedTensor), which the engine takes
  // by move: no weight byte is copied or converted. Each must also be complete (else
  // INVALID_ARGUMENT). On OK every tensor's storage has moved into the engine (each is left
  // empty); on an error none has.
  static Result<std::unique_ptr<LlamaEngine>> Create(const ModelArch& arch,
                                                     std::span<StagedTensor> tensors,
                                                     uint32_t slots, uint32_t context_length,
                                                     const ModelStage& stage = ModelStage{});
  ~LlamaEngine();

  // Clears a slot's KV cache.
  void ResetSlot(uint32_t slot);
  uint32_t context_tokens(uint32_t slot) const;
  uint32_t slots() const;
  uint32_t context_length() const;
  const ModelArch& arch() const;
  // The stage, with layer_count resolved.
  const ModelStage& stage() const;

  // Replaces the weights of one of the stage's tensors (the one of t.role and t.layer), as a
  // repair after a PE fault rewrites it; the other tensors and every KV cache stay. Validates
  // `t` as Create does (role in the stage, global layer, dtype, shape, byte count) and copies
  // its bytes; `t` may be freed afterwards.
  // Returns:
  //   OK                 - installed; the next Forward uses it.
  //   INVALID_ARGUMENT   - not a tensor of the stage, or misshapen; nothing changed.
  //   RESOURCE_EXHAUSTED - the copy could not be allocated; nothing changed.
  Status ReplaceTensor(const TensorView& t);
  // The same from a staged tensor, taken by move (nothing copied or converted; never
  // RESOURCE_EXHAUSTED). INVALID_ARGUMENT also when `t` is not complete. On OK `t` is left
  // empty; on an error it is untouched.
  Status ReplaceTensor(StagedTensor& t);

  // Host bytes of slot `slot`'s KV cache: 0 until a Forward first lists the slot (and for a
  // slot out of range).
  uint64_t kv_bytes(uint32_t slot) const;
  // Host bytes the weights take (in the kernels' layout, padding included).
  uint64_t weight_bytes() const;

  // Makes elements [first, first + count) of the stage's tensor (role, layer), counted in
  // row-major order, unreadable (NaN), as the loss of the SRAM that held them would: every
  // product that reads one gives NaN, and so do the logits downstream. A poisoned matrix is kept
  // in float32 (its other values exact) until ReplaceTensor restores it.
  // Returns OK, INVALID_ARGUMENT (the stage holds no such tensor), OUT_OF_RANGE (past the
  // tensor's end) or RESOURCE_EXHAUSTED (nothing changed).
  Status PoisonTensor(TensorRole role, uint32_t layer, uint64_t first, uint64_t count);

  // Appends `tokens` to each listed slot's sequence (prefill chunk or decode token) and writes
  // the logits of each slot's last position to `logits[i * vocab_size ...]`. Slots are distinct.
  // Returns OUT_OF_RANGE (a slot or token id out of range) or RESOURCE_EXHAUSTED (a slot's
  // context would overflow, or a slot's KV cache, taken on its first use, cannot be allocated);
  // on error no slot's tokens change.
  // REQUIRES: a whole-model engine (a stage with the embedding and the head); INVALID_ARGUMENT
  // otherwise.
  Status Forward(std::span<const uint32_t> slots,
                 std::span<const std::span<const uint32_t>> tokens, std::span<float> logits);

  // The same for any stage. The rows are every slot's tokens, slot after slot in the order
  // listed, each slot's in order. A stage without the embedding reads its input rows from
  // `hidden_in` (exactly rows * hidden_size values: the previous stage's `hidden_out`) instead of
  // embedding the tokens, whose ids still count positions and are checked against the vocabulary;
  // one with the embedding takes an empty `hidden_in`. A stage without the head writes its last
  // layer's output for every row to `hidden_out` (exactly rows * hidden_size values) and takes an
  // empty `logits`; one with the head writes logits as above and takes an empty `hidden_out`.
  // Returns what Forward above does, and INVALID_ARGUMENT for spans of the wrong size.
  Status Forward(std::span<const uint32_t> slots,
                 std::span<const std::span<const uint32_t>> tokens,
                 std::span<const float> hidden_in, std::span<float> hidden_out,
                 std::span<float> logits);

 private:
  struct Impl;
  explicit LlamaEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Picks a token from logits. Greedy when temperature is 0; otherwise temperature, top-k, top-p,
// then a draw from `rng_state` (advanced), so a seed reproduces the same tokens. `sampling.seed`
// is not read here: the caller seeds `rng_state` from it when the sequence starts.
uint32_t SampleToken(std::span<const float> logits, const Sampling& sampling, uint64_t& rng_state);

// Advances `rng_state` as `samples` draws would (SampleToken draws once per token when the
// temperature is above 0): a recomputed sequence resumes its sampler where it stopped.
void SkipSamples(uint64_t& rng_state, uint64_t samples);

}  // namespace wafer::sim

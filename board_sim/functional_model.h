// The weights and engine of a functional model on the simulated wafer: WriteTensor's chunks are
// converted into the engine's layout as they arrive, so that CommitModel only checks that every
// tensor is whole and moves them into a LlamaEngine, which takes each slot's KV cache on the
// slot's first use. No single board command's work grows with the model: a chunk's is its
// bytes (a tensor's first chunk allocates that tensor), a commit's is one move per tensor, a
// slot's first step takes that slot's cache.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "board_sim/llama/llama_engine.h"
#include "board_sim/llama/staged_tensor.h"
#include "common/status.h"
#include "firmware/hal/wafer.h"

namespace wafer::sim {

// Not thread-safe; owned by SimWafer.
class FunctionalModel {
 public:
  // `tensors` in manifest order, nothing written. `stage` with layer_count resolved. Takes no
  // host memory for weights or KV cache.
  FunctionalModel(const ModelArch& arch, const ModelStage& stage,
                  uint32_t slots, uint32_t context, std::vector<StagedTensor> tensors);

  // Writes bytes of tensor `index`, converted into place: while staging, or on a committed model
  // a rewrite (repair) that the engine takes at the next Commit.
  // Returns:
  //   OK                 - written.
  //   OUT_OF_RANGE       - no such tensor, or the range runs past its end; nothing written.
  //   RESOURCE_EXHAUSTED - no host memory for the tensor (see StagedTensor::Write).
  Status Write(uint32_t index, uint64_t offset, std::span<const std::byte> data);

  // The first time it succeeds: checks that every tensor is whole and hands them all to a new
  // LlamaEngine by move (no weight byte is converted, no KV cache taken). After that, a repair:
  // installs each tensor written since, one by one, by move; a failure leaves the rest staged
  // for the next attempt.
  // Returns:
  //   OK                 - committed (or repaired).
  //   INVALID_ARGUMENT   - a tensor is not fully written, or the engine refuses the weights (a
  //                        missing, duplicate or misshapen tensor, a bad arch); nothing moved.
  //   RESOURCE_EXHAUSTED - the engine could not be built.
  Status Commit();

  // A PE lost bytes [begin, end) of tensor `index` (clamped to it): they read NaN in its staged
  // bytes, if any, and in the engine's copy once committed.
  void Poison(uint32_t index, uint64_t begin, uint64_t end);

  // nullptr until the first Commit succeeds.
  LlamaEngine* engine() const { return engine_.get(); }
  // Weight bytes converted into the engine's layout so far: every byte Write took. Commit adds
  // none.
  uint64_t weight_bytes_converted() const { return converted_; }
  // Host bytes the weights take: those staged plus the engine's.
  uint64_t weight_host_bytes() const;
  // Host bytes of the KV caches the engine has taken (0 before the first step).
  uint64_t kv_host_bytes() const;

 private:
  ModelArch arch_;
  ModelStage stage_;
  uint32_t slots_;
  uint32_t context_;
  std::vector<StagedTensor> tensors_;
  std::unique_ptr<LlamaEngine> engine_;
  uint64_t converted_ = 0;
};

}  // namespace wafer::sim

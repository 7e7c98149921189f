// One weight tensor of a LlamaEngine arriving in chunks (the board's WriteWeights), converted
// into the layout the engine computes with as each chunk arrives, so that handing it to the
// engine (LlamaEngine::Create, ReplaceTensor) is a move, not a conversion.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "board_sim/llama/llama_engine.h"
#include "common/status.h"

namespace wafer::sim {

namespace internal {
class PackedMatrix;
}  // namespace internal

// A matrix (a rank-2 tensor of a matrix role) goes straight into the engine's panel layout, in
// its stored dtype, byte range by byte range. Anything else (the norm vectors, and a misshapen
// tensor the engine will refuse) is kept as bytes, and a norm is converted to float32 by every
// write or poison that leaves it complete. So the work of a call is that of its bytes, except
// that the first write allocates (and zeroes) the tensor's storage and a norm's completion
// converts the norm (one vector of hidden_size values): never more than one tensor.
//
// Not thread-safe. Movable; a moved-from tensor must not be used.
class StagedTensor {
 public:
  // Nothing written and no storage taken yet.
  StagedTensor(TensorRole role, uint32_t layer, DType dtype, std::vector<uint64_t> shape);
  StagedTensor(StagedTensor&&) noexcept;
  StagedTensor& operator=(StagedTensor&&) noexcept;
  ~StagedTensor();

  TensorRole role() const { return role_; }
  uint32_t layer() const { return layer_; }
  DType dtype() const { return dtype_; }
  const std::vector<uint64_t>& shape() const { return shape_; }
  // The product of the shape times the element size (saturated at UINT64_MAX).
  uint64_t byte_size() const { return byte_size_; }
  // Whether every byte of [0, byte_size()) has been written since construction (a tensor of no
  // bytes is complete).
  bool complete() const;
  // Whether any byte has been written.
  bool written() const { return !covered_.empty(); }
  // Host bytes the tensor holds (0 until the first Write).
  uint64_t host_bytes() const;

  // Writes bytes [offset, offset + data.size()) of the row-major tensor, converting them into
  // place; a range written before is overwritten.
  // Returns:
  //   OK                 - written.
  //   OUT_OF_RANGE       - the range runs past byte_size(); nothing written.
  //   RESOURCE_EXHAUSTED - the first write could not allocate the tensor (nothing written), or
  //                        the record of written ranges could not grow (the range does not
  //                        count as written; writing it again may).
  Status Write(uint64_t offset, std::span<const std::byte> data);

  // Bytes [begin, end) of the row-major tensor (clamped to it) read as all-ones, a NaN in
  // float32, binary16 and bfloat16 alike, as when the SRAM that held them is lost. Only bytes
  // with storage: before the first Write there is nothing to lose, and later writes overwrite.
  void Poison(uint64_t begin, uint64_t end);

 private:
  friend class LlamaEngine;
  enum class Layout : uint8_t { kMatrix, kBytes };

  // For LlamaEngine, on a complete tensor of the matching layout: moves the converted storage
  // out. The tensor is then empty (no storage, nothing written).
  internal::PackedMatrix TakeMatrix();
  std::vector<float> TakeNorm();
  bool is_matrix() const { return layout_ == Layout::kMatrix; }
  void Clear();
  // Records that [begin, end) has been written.
  void Cover(uint64_t begin, uint64_t end);

  TensorRole role_;
  uint32_t layer_;
  DType dtype_;
  std::vector<uint64_t> shape_;
  uint64_t byte_size_ = 0;
  Layout layout_ = Layout::kBytes;
  std::unique_ptr<internal::PackedMatrix> matrix_;  // kMatrix, after the first write.
  std::vector<std::byte> bytes_;                     // kBytes, after the first write.
  std::vector<float> norm_;  // A norm's values, whenever it is complete.
  std::map<uint64_t, uint64_t> covered_;  // Written byte ranges: begin -> end, disjoint.
};

}  // namespace wafer::sim

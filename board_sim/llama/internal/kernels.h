// Float32 kernels of the functional Llama simulation: dtype conversion, batched matrix products
// over weights kept in their stored dtype (repacked into panels), RMSNorm, rotary embedding
// tables. Private to board_sim/llama.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "board_sim/llama/llama_engine.h"
#include "board_sim/llama/internal/worker_pool.h"

namespace wafer::sim::internal {

// IEEE 754 binary16 and bfloat16 bit patterns to float32 (exact; subnormals, inf, NaN kept).
float HalfToFloat(uint16_t bits);
float BFloat16ToFloat(uint16_t bits);

// Dot product with eight independent accumulators so that -O2 vectorizes it without fast-math.
float Dot(const float* a, const float* b, size_t n);

// A borrowed weight matrix [out, in], row-major (nn.Linear), in its stored dtype (little-endian
// float32, binary16 or bfloat16).
struct WeightMatrix {
  DType dtype = DType::kF32;
  const std::byte* data = nullptr;
  size_t out = 0;
  size_t in = 0;
};

// Converts row `row` of `w` (`w.in` elements) to float32 (exact).
void ConvertRow(const WeightMatrix& w, size_t row, float* out);

// A weight matrix copied, in its stored dtype, into the layout MatMul streams: output rows in
// panels of kPanelRows (the last one zero-padded), each panel input-major, so that one 64-byte
// line holds the weights of all sixteen rows for two inputs (one input for float32), and sixteen
// such lines (32 inputs) are one AMX tile. A kernel converts each line once and multiplies it
// into every batch row it holds, instead of re-reading each weight row once per batch row. Same
// size as the source up to padding (inputs to a multiple of 32); 64-byte aligned. Move-only;
// immutable after construction, so concurrent reads are safe.
class PackedMatrix {
 public:
  static constexpr size_t kPanelRows = 16;

  PackedMatrix() = default;
  // Copies `w`. Throws std::bad_alloc when memory runs out.
  explicit PackedMatrix(const WeightMatrix& w);
  // A [out, in] matrix of `dtype` whose every element is 0, filled later by Store. Throws
  // std::bad_alloc when memory runs out.
  PackedMatrix(DType dtype, size_t out, size_t in);
  PackedMatrix(PackedMatrix&&) noexcept = default;
  PackedMatrix& operator=(PackedMatrix&&) noexcept = default;

  DType dtype() const { return dtype_; }
  size_t out() const { return out_; }
  size_t in() const { return in_; }
  size_t panels() const { return (out_ + kPanelRows - 1) / kPanelRows; }
  // Bytes of one panel: ceil(in / 32) * 16 steps of two inputs, 64 bytes each (128 for float32).
  size_t panel_bytes() const { return panel_bytes_; }
  const std::byte* panel(size_t p) const { return data_.get() + p * panel_bytes_; }

  // Converts row `row` (`in()` elements) to float32 (exact). REQUIRES: row < out().
  void ConvertRow(size_t row, float* out) const;

  // Copies bytes [offset, offset + data.size()) of the row-major [out, in] matrix, in its stored
  // dtype, to their places in the panels: any byte range, so an element may arrive split over
  // two calls. The work is proportional to data.size(). Not to be called while a MatMul reads
  // the matrix.
  // REQUIRES: offset + data.size() <= out() * in() * element size.
  void Store(size_t offset, std::span<const std::byte> data);

  // Host bytes the panels take (the matrix's bytes plus padding).
  size_t bytes() const { return panels() * panel_bytes_; }

 private:
  // Copies bytes [offset, offset + data.size()) element by element (Store's general case: a
  // split element, a partial row, a row that is not a whole number of layout units).
  void StoreElements(size_t offset, std::span<const std::byte> data);

  struct Free {
    // 0 (value-initialized): from operator new; otherwise an mmap of this many bytes. No default
    // member initializer: the enclosing class must see Free as default-constructible.
    size_t mapped_bytes;
    void operator()(std::byte* p) const;
  };
  DType dtype_ = DType::kF32;
  size_t out_ = 0;
  size_t in_ = 0;
  size_t panel_bytes_ = 0;
  std::unique_ptr<std::byte[], Free> data_;
};

// The instruction sets MatMul can use. Every one gives the same results up to float32 rounding.
// In increasing order, each needing the ones before it: a CPU runs exactly those up to BestIsa().
enum class Isa : uint8_t {
  kPortable,   // Plain C++ that -O2 vectorizes with the baseline ISA.
  kAvx2Fma,    // x86-64 AVX2 + FMA + F16C, chosen at run time.
  kAvx512,     // x86-64 AVX-512 F/BW (with the above), chosen at run time.
  kAvx512Amx,  // kAvx512, with AMX-BF16 tiles for bfloat16 weights. On Linux the process must
               // be granted the tile state, which BestIsa() requests the first time it runs.
};
// The best Isa this CPU supports.
Isa BestIsa();

// Whether this CPU can run `isa`.
bool IsaSupported(Isa isa);

// y[t, o] = sum_i w[o, i] * x[t, i] for t < rows, o < w.out(); `x` is [rows, w.in()], `y` is
// [rows, w.out()]. Each weight line is read from memory and converted once per call for up to
// sixteen batch rows (AVX-512 and AMX; four with AVX2), whose accumulators stay in registers or
// tiles. Large products split the panels over `pool` (optional). Each y element is computed the
// same way whatever `rows` and the split are, so a sequence's logits do not depend on what else
// is in the batch: a float32 multiply-add chain over i in order (fused with AVX2/AVX-512, which
// agree exactly), or with AMX a float32 sum, in the tile unit's order, of the exact products of
// each bfloat16 weight with the three bfloat16 terms that x splits into exactly (x values below
// about 2^-110 lose their low terms; infinite x gives NaN).
// An `isa` this CPU cannot run is replaced by the best one it can, the lesser of `isa` and
// BestIsa() (so kAvx512Amx falls back to kAvx512, and on down to kPortable) instead of faulting
// on an illegal instruction. BestIsa() is asked once per process for this, so the check costs a
// compare per call.
void MatMul(const float* x, size_t rows, const PackedMatrix& w, float* y, WorkerPool* pool,
            Isa isa);

// One matrix of a shared-input MatMul and its output ([rows, w->out()]).
struct Product {
  const PackedMatrix* w = nullptr;
  float* y = nullptr;
};

// MatMul of the same `x` by several matrices (Q, K and V; gate and up): the batch is rearranged
// once and the panels of all of them are split over `pool` in one go. An unsupported `isa` falls
// back as above. REQUIRES: every matrix has the same in().
void MatMul(const float* x, size_t rows, std::span<const Product> products, WorkerPool* pool,
            Isa isa);

// y[i] += a * x[i] for i < n (separate multiply and add, as a scalar loop would). `x` and `y` do
// not overlap.
void Axpy(float a, const float* x, size_t n, float* y);

// gate[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i] for i < n. The AVX-512
// variants evaluate exp with a polynomial; the others call std::exp. Either way the result is
// within 2.5 ulp of exact where it is a normal float. An unsupported `isa` falls back as in
// MatMul.
void SiluMul(float* gate, const float* up, size_t n, Isa isa);

// out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i]; `out` may alias `x`.
void RmsNorm(const float* x, const float* weight, size_t n, float eps, float* out);

// Inverse frequencies theta^(-2i/d), i < d/2, with Llama 3 scaling applied when factor > 0
// (Hugging Face `_compute_llama3_parameters`). Computed in double precision.
std::vector<double> RopeInvFreq(uint32_t head_dim, double theta, double factor,
                                double low_freq_factor, double high_freq_factor,
                                double original_max_position);

// Fills cos[i] and sin[i] of the angle pos * inv_freq[i] for i < half (angles in double).
void RopeCosSin(const double* inv_freq, uint32_t half, uint32_t pos, float* cos, float* sin);

// Rotates one head vector in place with the tables of its position, Hugging Face rotate_half
// convention: element i pairs with element i + head_dim/2.
void ApplyRope(float* head, uint32_t head_dim, const float* cos, const float* sin);

}  // namespace wafer::sim::internal

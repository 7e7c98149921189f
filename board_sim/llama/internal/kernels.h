// Float32 kernels of the functional Llama simulation: dtype conversion, batched matrix-vector
// products over weights kept in their stored dtype, RMSNorm, rotary embedding tables. Private to
// board_sim/llama.
#pragma once

#include <cstddef>
#include <cstdint>
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

// The instruction sets MatMul can use. Every one gives the same results up to float32 rounding.
enum class Isa : uint8_t {
  kPortable,  // Plain C++ that -O2 vectorizes with the baseline ISA.
  kAvx2Fma,   // x86-64 AVX2 + FMA + F16C, chosen at run time.
  kAvx512,    // x86-64 AVX-512 F/BW (with the above), chosen at run time.
};

// The best Isa this CPU supports.
Isa BestIsa();

// Whether this CPU can run `isa`.
bool IsaSupported(Isa isa);

// Converts row `row` of `w` (`w.in` elements) to float32 (exact).
void ConvertRow(const WeightMatrix& w, size_t row, float* out);

// y[t, o] = sum_i w[o, i] * x[t, i] for t < rows, o < w.out; `x` is [rows, w.in], `y` is
// [rows, w.out]. Each weight row is streamed from memory once per call for the whole batch,
// converted to float32 on the fly (or, for batches above two rows, once into a small per-thread
// block that every batch row then reuses). Large products split the output rows over `pool`
// (optional). Each y element is computed the same way whatever `rows` and the split are, so a
// sequence's logits do not depend on what else is in the batch.
void MatMul(const float* x, size_t rows, const WeightMatrix& w, float* y, WorkerPool* pool,
            Isa isa);

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

// Float32 kernels of the functional Llama simulation: dtype conversion, batched matrix-vector
// products, RMSNorm, rotary embedding tables. Private to board_sim/llama.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace wafer::sim::internal {

// IEEE 754 binary16 and bfloat16 bit patterns to float32 (exact; subnormals, inf, NaN kept).
float HalfToFloat(uint16_t bits);
float BFloat16ToFloat(uint16_t bits);

// Dot product with eight independent accumulators so that -O2 vectorizes it without fast-math.
float Dot(const float* a, const float* b, size_t n);

// y[t, o] = sum_i w[o, i] * x[t, i] for t < rows, o < out; `w` is [out, in] row-major (nn.Linear),
// `x` is [rows, in], `y` is [rows, out]. Each weight row is read once for the whole batch. Large
// products split the output rows over two threads.
void MatMul(const float* x, size_t rows, const float* w, size_t out, size_t in, float* y);

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

#include "board_sim/llama/internal/kernels.h"

#include <bit>
#include <cmath>
#include <numbers>
#include <system_error>
#include <thread>

namespace wafer::sim::internal {

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  const uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) {
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  return std::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

float BFloat16ToFloat(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

float Dot(const float* a, const float* b, size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

namespace {

void MatMulRows(const float* x, size_t rows, const float* w, size_t out_begin, size_t out_end,
                size_t out, size_t in, float* y) {
  // Four weight rows at a time: each row is streamed once while every batch row reuses it.
  size_t o = out_begin;
  for (; o + 4 <= out_end; o += 4) {
    const float* w0 = w + o * in;
    for (size_t t = 0; t < rows; ++t) {
      const float* xt = x + t * in;
      float* yt = y + t * out + o;
      yt[0] = Dot(w0, xt, in);
      yt[1] = Dot(w0 + in, xt, in);
      yt[2] = Dot(w0 + 2 * in, xt, in);
      yt[3] = Dot(w0 + 3 * in, xt, in);
    }
  }
  for (; o < out_end; ++o) {
    for (size_t t = 0; t < rows; ++t) y[t * out + o] = Dot(w + o * in, x + t * in, in);
  }
}

// Below this many multiply-adds a second thread costs more than it saves.
constexpr size_t kThreadedMatMulMacs = size_t{1} << 21;

}  // namespace

void MatMul(const float* x, size_t rows, const float* w, size_t out, size_t in, float* y) {
  if (rows * out * in < kThreadedMatMulMacs || out < 64) {
    MatMulRows(x, rows, w, 0, out, out, in, y);
    return;
  }
  const size_t split = (out / 2) & ~size_t{3};
  std::thread helper;
  try {
    helper = std::thread([=] { MatMulRows(x, rows, w, split, out, out, in, y); });
  } catch (const std::system_error&) {
    MatMulRows(x, rows, w, 0, out, out, in, y);  // No thread available: do it all here.
    return;
  }
  MatMulRows(x, rows, w, 0, split, out, in, y);
  helper.join();
}

void RmsNorm(const float* x, const float* weight, size_t n, float eps, float* out) {
  double sum_sq = 0;
  for (size_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

std::vector<double> RopeInvFreq(uint32_t head_dim, double theta, double factor,
                                double low_freq_factor, double high_freq_factor,
                                double original_max_position) {
  const uint32_t half = head_dim / 2;
  std::vector<double> inv_freq(half);
  for (uint32_t i = 0; i < half; ++i) {
    inv_freq[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / head_dim);
  }
  if (factor <= 0) return inv_freq;
  const double low_freq_wavelen = original_max_position / low_freq_factor;
  const double high_freq_wavelen = original_max_position / high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2 * std::numbers::pi / f;
    if (wavelen > low_freq_wavelen) {
      f = f / factor;  // Low frequency: fully interpolated.
    } else if (wavelen >= high_freq_wavelen) {
      // Medium frequency: blend between interpolated and original.
      const double smooth = (original_max_position / wavelen - low_freq_factor) /
                            (high_freq_factor - low_freq_factor);
      f = (1 - smooth) * f / factor + smooth * f;
    }
    // High frequency (wavelen < high_freq_wavelen): unchanged.
  }
  return inv_freq;
}

void RopeCosSin(const double* inv_freq, uint32_t half, uint32_t pos, float* cos, float* sin) {
  for (uint32_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(pos) * inv_freq[i];
    cos[i] = static_cast<float>(std::cos(angle));
    sin[i] = static_cast<float>(std::sin(angle));
  }
}

void ApplyRope(float* head, uint32_t head_dim, const float* cos, const float* sin) {
  const uint32_t half = head_dim / 2;
  for (uint32_t i = 0; i < half; ++i) {
    const float x1 = head[i];
    const float x2 = head[i + half];
    head[i] = x1 * cos[i] - x2 * sin[i];
    head[i + half] = x2 * cos[i] + x1 * sin[i];
  }
}

}  // namespace wafer::sim::internal

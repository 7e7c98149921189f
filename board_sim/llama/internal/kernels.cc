#include "board_sim/llama/internal/kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>

#if defined(__x86_64__)
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() values into masked builtins, which
// -Wuninitialized reports inside the header when they are inlined; the values are unused.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

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

size_t ElementBytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

float ElementAt(DType dtype, const std::byte* row, size_t i) {
  switch (dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, row + 4 * i, 4);
      return f;
    }
    case DType::kF16: {
      uint16_t bits;
      std::memcpy(&bits, row + 2 * i, 2);
      return HalfToFloat(bits);
    }
    case DType::kBF16: {
      uint16_t bits;
      std::memcpy(&bits, row + 2 * i, 2);
      return BFloat16ToFloat(bits);
    }
  }
  return 0;
}

// Output rows per block: each block's weight rows are read from memory once and then reused
// from cache by every batch row.
constexpr size_t kRowBlock = 4;

// Per-thread float32 copy of one block of weight rows (the portable path, and the AVX2 path for
// batches above two rows). Reused across calls, so steady-state decode does not allocate.
float* BlockScratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

void RowsPortable(const float* x, size_t rows, const WeightMatrix& w, size_t o_begin,
                  size_t o_end, float* y) {
  const size_t in = w.in;
  const size_t row_bytes = in * ElementBytes(w.dtype);
  float* scratch = w.dtype == DType::kF32 ? nullptr : BlockScratch(kRowBlock * in);
  for (size_t o = o_begin; o < o_end; o += kRowBlock) {
    const size_t n = std::min(kRowBlock, o_end - o);
    const float* block;
    if (scratch == nullptr) {
      block = reinterpret_cast<const float*>(w.data + o * row_bytes);
    } else {
      for (size_t r = 0; r < n; ++r) ConvertRow(w, o + r, scratch + r * in);
      block = scratch;
    }
    for (size_t t = 0; t < rows; ++t) {
      for (size_t r = 0; r < n; ++r) y[t * w.out + o + r] = Dot(block + r * in, x + t * in, in);
    }
  }
}

#if defined(__x86_64__)

#define WAFER_AVX2 __attribute__((target("avx2,fma,f16c")))

// Loaders: eight consecutive elements of a row as float32, exactly.
struct LoadF32 {
  static constexpr DType kDType = DType::kF32;
  WAFER_AVX2 static __m256 Load(const std::byte* row, size_t i) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
};
struct LoadBF16 {
  static constexpr DType kDType = DType::kBF16;
  WAFER_AVX2 static __m256 Load(const std::byte* row, size_t i) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
};
struct LoadF16 {
  static constexpr DType kDType = DType::kF16;
  WAFER_AVX2 static __m256 Load(const std::byte* row, size_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i)));
  }
};

WAFER_AVX2 inline float HorizontalSum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 d = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(d, _mm_movehdup_ps(d)));
}

// R weight rows x T batch rows of dot products, one 8-lane accumulator each. Every (row, batch
// row) pair sees the same sequence of operations whatever R and T are, so results do not depend
// on the blocking.
template <int R, int T, class L>
WAFER_AVX2 void Tile(const std::byte* w, size_t row_bytes, const float* x, size_t in, float* y,
                     size_t y_stride) {
  __m256 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  size_t i = 0;
  for (; i + 8 <= in; i += 8) {
    __m256 xv[T];
#pragma GCC unroll 2
    for (int t = 0; t < T; ++t) xv[t] = _mm256_loadu_ps(x + t * in + i);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = L::Load(w + r * row_bytes, i);
#pragma GCC unroll 2
      for (int t = 0; t < T; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float sum = HorizontalSum(acc[r][t]);
      for (size_t j = i; j < in; ++j) {
        sum += ElementAt(L::kDType, w + r * row_bytes, j) * x[t * in + j];
      }
      y[t * y_stride + r] = sum;
    }
  }
}

// All batch rows against weight rows [o, o + R).
template <int R, class L>
WAFER_AVX2 void BlockAvx2(const float* x, size_t rows, const std::byte* w, size_t row_bytes,
                          size_t in, float* y, size_t out) {
  size_t t = 0;
  for (; t + 2 <= rows; t += 2) Tile<R, 2, L>(w, row_bytes, x + t * in, in, y + t * out, out);
  if (t < rows) Tile<R, 1, L>(w, row_bytes, x + t * in, in, y + t * out, out);
}

template <class L>
WAFER_AVX2 void ConvertBlockAvx2(const std::byte* w, size_t row_bytes, size_t n, size_t in,
                                 float* dst) {
  for (size_t r = 0; r < n; ++r) {
    const std::byte* row = w + r * row_bytes;
    size_t i = 0;
    for (; i + 8 <= in; i += 8) _mm256_storeu_ps(dst + r * in + i, L::Load(row, i));
    for (; i < in; ++i) dst[r * in + i] = ElementAt(L::kDType, row, i);
  }
}

// Batches of one or two rows convert in registers (the weights stream at their stored width);
// larger batches convert each block once into a per-thread float32 copy that stays in L1/L2.
template <class L>
WAFER_AVX2 void RowsAvx2(const float* x, size_t rows, const WeightMatrix& w, size_t o_begin,
                         size_t o_end, float* y) {
  const size_t in = w.in;
  const size_t row_bytes = in * ElementBytes(w.dtype);
  const bool convert = L::kDType != DType::kF32 && rows > 2;
  float* scratch = convert ? BlockScratch(kRowBlock * in) : nullptr;
  for (size_t o = o_begin; o < o_end; o += kRowBlock) {
    const size_t n = std::min(kRowBlock, o_end - o);
    const std::byte* block = w.data + o * row_bytes;
    float* yo = y + o;
    if (convert) {
      ConvertBlockAvx2<L>(block, row_bytes, n, in, scratch);
      const auto* f = reinterpret_cast<const std::byte*>(scratch);
      if (n == kRowBlock) {
        BlockAvx2<kRowBlock, LoadF32>(x, rows, f, in * 4, in, yo, w.out);
      } else {
        for (size_t r = 0; r < n; ++r) BlockAvx2<1, LoadF32>(x, rows, f + r * in * 4, in * 4, in, yo + r, w.out);
      }
    } else if (n == kRowBlock) {
      BlockAvx2<kRowBlock, L>(x, rows, block, row_bytes, in, yo, w.out);
    } else {
      for (size_t r = 0; r < n; ++r) {
        BlockAvx2<1, L>(x, rows, block + r * row_bytes, row_bytes, in, yo + r, w.out);
      }
    }
  }
}

#define WAFER_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

// The AVX-512 variant of the loaders and tiles above: sixteen lanes, and 32 registers allow 4x4
// tiles, which halves the weight loads per multiply-add at large batches.
struct Load512F32 {
  static constexpr DType kDType = DType::kF32;
  WAFER_AVX512 static __m512 Load(const std::byte* row, size_t i) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(row) + i);
  }
};
struct Load512BF16 {
  static constexpr DType kDType = DType::kBF16;
  WAFER_AVX512 static __m512 Load(const std::byte* row, size_t i) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i));
    // The masked form: GCC 12's unmasked one trips -Wmaybe-uninitialized in its own header.
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
  }
};
struct Load512F16 {
  static constexpr DType kDType = DType::kF16;
  WAFER_AVX512 static __m512 Load(const std::byte* row, size_t i) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 2 * i)));
  }
};

// Not _mm512_reduce_add_ps: GCC 12's version trips -Wuninitialized in its own header.
WAFER_AVX512 inline float HorizontalSum512(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(v), 1));
  return HorizontalSum(_mm256_add_ps(lo, hi));
}

template <int R, int T, class L>
WAFER_AVX512 void Tile512(const std::byte* w, size_t row_bytes, const float* x, size_t in,
                          float* y, size_t y_stride) {
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  size_t i = 0;
  for (; i + 16 <= in; i += 16) {
    __m512 xv[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) xv[t] = _mm512_loadu_ps(x + t * in + i);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 wv = L::Load(w + r * row_bytes, i);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float sum = HorizontalSum512(acc[r][t]);
      for (size_t j = i; j < in; ++j) {
        sum += ElementAt(L::kDType, w + r * row_bytes, j) * x[t * in + j];
      }
      y[t * y_stride + r] = sum;
    }
  }
}

template <int R, class L>
WAFER_AVX512 void Block512(const float* x, size_t rows, const std::byte* w, size_t row_bytes,
                           size_t in, float* y, size_t out) {
  size_t t = 0;
  for (; t + 4 <= rows; t += 4) Tile512<R, 4, L>(w, row_bytes, x + t * in, in, y + t * out, out);
  for (; t < rows; ++t) Tile512<R, 1, L>(w, row_bytes, x + t * in, in, y + t * out, out);
}

template <class L>
WAFER_AVX512 void ConvertBlock512(const std::byte* w, size_t row_bytes, size_t n, size_t in,
                                  float* dst) {
  for (size_t r = 0; r < n; ++r) {
    const std::byte* row = w + r * row_bytes;
    size_t i = 0;
    for (; i + 16 <= in; i += 16) _mm512_storeu_ps(dst + r * in + i, L::Load(row, i));
    for (; i < in; ++i) dst[r * in + i] = ElementAt(L::kDType, row, i);
  }
}

template <class L>
WAFER_AVX512 void Rows512(const float* x, size_t rows, const WeightMatrix& w, size_t o_begin,
                          size_t o_end, float* y) {
  const size_t in = w.in;
  const size_t row_bytes = in * ElementBytes(w.dtype);
  const bool convert = L::kDType != DType::kF32 && rows > 2;
  float* scratch = convert ? BlockScratch(kRowBlock * in) : nullptr;
  for (size_t o = o_begin; o < o_end; o += kRowBlock) {
    const size_t n = std::min(kRowBlock, o_end - o);
    const std::byte* block = w.data + o * row_bytes;
    float* yo = y + o;
    if (convert) {
      ConvertBlock512<L>(block, row_bytes, n, in, scratch);
      const auto* f = reinterpret_cast<const std::byte*>(scratch);
      if (n == kRowBlock) {
        Block512<kRowBlock, Load512F32>(x, rows, f, in * 4, in, yo, w.out);
      } else {
        for (size_t r = 0; r < n; ++r) {
          Block512<1, Load512F32>(x, rows, f + r * in * 4, in * 4, in, yo + r, w.out);
        }
      }
    } else if (n == kRowBlock) {
      Block512<kRowBlock, L>(x, rows, block, row_bytes, in, yo, w.out);
    } else {
      for (size_t r = 0; r < n; ++r) {
        Block512<1, L>(x, rows, block + r * row_bytes, row_bytes, in, yo + r, w.out);
      }
    }
  }
}

void Rows(const float* x, size_t rows, const WeightMatrix& w, size_t o_begin, size_t o_end,
          float* y, Isa isa) {
  if (isa == Isa::kAvx512) {
    switch (w.dtype) {
      case DType::kF32: return Rows512<Load512F32>(x, rows, w, o_begin, o_end, y);
      case DType::kBF16: return Rows512<Load512BF16>(x, rows, w, o_begin, o_end, y);
      case DType::kF16: return Rows512<Load512F16>(x, rows, w, o_begin, o_end, y);
    }
  }
  if (isa == Isa::kAvx2Fma) {
    switch (w.dtype) {
      case DType::kF32: return RowsAvx2<LoadF32>(x, rows, w, o_begin, o_end, y);
      case DType::kBF16: return RowsAvx2<LoadBF16>(x, rows, w, o_begin, o_end, y);
      case DType::kF16: return RowsAvx2<LoadF16>(x, rows, w, o_begin, o_end, y);
    }
  }
  RowsPortable(x, rows, w, o_begin, o_end, y);
}

#else  // !defined(__x86_64__)

void Rows(const float* x, size_t rows, const WeightMatrix& w, size_t o_begin, size_t o_end,
          float* y, Isa) {
  RowsPortable(x, rows, w, o_begin, o_end, y);
}

#endif

// Below this many multiply-adds, waking a helper costs more than it saves.
constexpr size_t kThreadedMatMulMacs = size_t{1} << 18;
// Output rows per parallel part: small enough that a helper which wakes late still gets work,
// large enough that claiming a part is noise.
constexpr size_t kRowsPerPart = 64;

}  // namespace

Isa BestIsa() {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                           __builtin_cpu_supports("f16c");
  static const bool avx512 =
      avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  if (avx512) return Isa::kAvx512;
  if (avx2) return Isa::kAvx2Fma;
#endif
  return Isa::kPortable;
}

bool IsaSupported(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return true;
    case Isa::kAvx2Fma:
      return BestIsa() != Isa::kPortable;
    case Isa::kAvx512:
      return BestIsa() == Isa::kAvx512;
  }
  return false;
}

void ConvertRow(const WeightMatrix& w, size_t row, float* out) {
  const std::byte* src = w.data + row * w.in * ElementBytes(w.dtype);
  if (w.dtype == DType::kF32) {
    std::memcpy(out, src, w.in * sizeof(float));
    return;
  }
  for (size_t i = 0; i < w.in; ++i) out[i] = ElementAt(w.dtype, src, i);
}

void MatMul(const float* x, size_t rows, const WeightMatrix& w, float* y, WorkerPool* pool,
            Isa isa) {
  if (pool == nullptr || pool->parallelism() < 2 || rows * w.out * w.in < kThreadedMatMulMacs ||
      w.out < 2 * kRowsPerPart) {
    Rows(x, rows, w, 0, w.out, y, isa);
    return;
  }
  const size_t parts = (w.out + kRowsPerPart - 1) / kRowsPerPart;
  pool->Run(parts, [&](size_t part) {
    const size_t begin = part * kRowsPerPart;
    Rows(x, rows, w, begin, std::min(w.out, begin + kRowsPerPart), y, isa);
  });
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

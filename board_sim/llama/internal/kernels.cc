#include "board_sim/llama/internal/kernels.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <new>
#include <numbers>
#include <utility>

#include <sys/mman.h>

#include "board_sim/llama/internal/kernels_amx.h"

#include "board_sim/llama/internal/intrinsics.h"

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

constexpr size_t kLanes = PackedMatrix::kPanelRows;
// PackedMatrix data: whole cache lines, so that a step or an AMX block row is one line.
constexpr size_t kAlignment = 64;
// From this size on a PackedMatrix takes its storage straight from mmap (see its constructor).
constexpr size_t kMapBytes = size_t{1} << 20;

size_t ElementBytes(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

float ElementAt(DType dtype, const std::byte* p) {
  switch (dtype) {
    case DType::kF32: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    case DType::kF16: {
      uint16_t bits;
      std::memcpy(&bits, p, 2);
      return HalfToFloat(bits);
    }
    case DType::kBF16: {
      uint16_t bits;
      std::memcpy(&bits, p, 2);
      return BFloat16ToFloat(bits);
    }
  }
  return 0;
}

// A panel is a sequence of steps, one per pair of inputs (2j, 2j + 1): 64 bytes for the 16-bit
// dtypes, 128 for float32. Within a step:
//   float32:  input 2j for lanes 0..15, then input 2j + 1 for lanes 0..15;
//   binary16: the same order (so one load and one vcvtph2ps give sixteen lanes of one input);
//   bfloat16: lane by lane, the pair (2j, 2j + 1) in one 32-bit word (so a shift gives input 2j
//             and a mask input 2j + 1, both exactly as float32).
constexpr size_t StepBytes(DType dtype) { return dtype == DType::kF32 ? 128 : 64; }

constexpr size_t PackedOffset(DType dtype, size_t i, size_t lane) {
  const size_t step = i / 2, odd = i % 2;
  switch (dtype) {
    case DType::kF32: return step * 128 + odd * 64 + lane * 4;
    case DType::kF16: return step * 64 + odd * 32 + lane * 2;
    case DType::kBF16: return step * 64 + lane * 4 + odd * 2;
  }
  return 0;
}

// Panels per group of the kernels, and the granule of a parallel part.
constexpr size_t kPanelsPerPart = 4;
// Parallel parts per MatMul call, about: enough that the threads finish together (the last part
// is a 1/kTargetParts of the work) and a helper that wakes late still gets some, few enough that
// claiming parts (a contended atomic each) stays noise.
constexpr size_t kTargetParts = 32;
// Batch rows per AVX-512 tile: sixteen accumulator registers of one panel.
constexpr size_t kMaxTileRows = 16;
// Steps per chunk of the AVX-512 kernel: 128 steps of sixteen rows' inputs are 16 KiB, a third of
// L1.
constexpr size_t kChunkSteps = 128;
// Below this many multiply-adds, waking a helper costs more than it saves.
constexpr size_t kThreadedMatMulMacs = size_t{1} << 18;

// The batch in the layouts the kernels read, each prepared once per MatMul call (see StepMajor and
// SplitMajor) when some product needs it.
struct Batch {
  size_t rows = 0;
  const float* steps = nullptr;     // For the multiply-add kernels.
  const uint16_t* splits = nullptr;  // For the AMX kernel.
};

// Per-thread float32 copy of one panel (portable path). Reused across calls, so steady-state
// decode does not allocate.
float* PanelScratch(size_t floats) {
  thread_local std::vector<float> scratch;
  if (scratch.size() < floats) scratch.resize(floats);
  return scratch.data();
}

// Panels [p_begin, p_end) of `w` times the batch. `xs` is the batch in steps (see StepMajor):
// input i of batch row t at xs[(i / 2) * 2 * rows + 2 * t + i % 2]. One chain of separate
// multiplies and adds per output, over i in order.
void RowsPortable(const float* xs, size_t rows, const PackedMatrix& w, size_t p_begin,
                  size_t p_end, float* y) {
  const size_t in = w.in(), out = w.out();
  float* wf = PanelScratch(in * kLanes);
  for (size_t p = p_begin; p < p_end; ++p) {
    const std::byte* panel = w.panel(p);
    for (size_t i = 0; i < in; ++i) {
      for (size_t l = 0; l < kLanes; ++l) {
        wf[i * kLanes + l] = ElementAt(w.dtype(), panel + PackedOffset(w.dtype(), i, l));
      }
    }
    const size_t lanes = std::min(kLanes, out - p * kLanes);
    for (size_t t = 0; t < rows; ++t) {
      float acc[kLanes] = {};
      for (size_t i = 0; i < in; ++i) {
        const float xv = xs[(i / 2) * 2 * rows + 2 * t + i % 2];
        for (size_t l = 0; l < kLanes; ++l) acc[l] = acc[l] + wf[i * kLanes + l] * xv;
      }
      std::memcpy(y + t * out + p * kLanes, acc, lanes * sizeof(float));
    }
  }
}

#if defined(__x86_64__)

#define WAFER_AVX2 __attribute__((target("avx2,fma,f16c")))
#define WAFER_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

// How far ahead of the step being multiplied a tile asks for its panel's weights (one 4 KiB page:
// the hardware streamer stops at page boundaries, so without this the first lines of every page
// arrive late; measured best among 1-8 KiB).
constexpr size_t kPrefetchBytes = 4096;

// Requests the lines of the step kPrefetchBytes past `s` into L1. A prefetch never faults, so the
// address may lie past the end of the panel (it is computed as an integer for that reason).
template <size_t kStep>
inline void Prefetch(const std::byte* s) {
  const uintptr_t ahead = reinterpret_cast<uintptr_t>(s) + kPrefetchBytes;
  for (size_t line = 0; line < kStep; line += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(ahead + line), _MM_HINT_T0);
  }
}

// AVX-512 step loaders: the sixteen lanes of inputs 2j (`even`) and 2j + 1 (`odd`), exactly.
struct Bf16x16 {
  static constexpr DType kDType = DType::kBF16;
  WAFER_AVX512 static void Step(const std::byte* s, __m512& even, __m512& odd) {
    const __m512i v = _mm512_load_si512(s);
    even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    const __m512i top = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
    odd = _mm512_castsi512_ps(_mm512_and_si512(v, top));
  }
};
struct F16x16 {
  static constexpr DType kDType = DType::kF16;
  WAFER_AVX512 static void Step(const std::byte* s, __m512& even, __m512& odd) {
    even = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(s)));
    odd = _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(s + 32)));
  }
};
struct F32x16 {
  static constexpr DType kDType = DType::kF32;
  WAFER_AVX512 static void Step(const std::byte* s, __m512& even, __m512& odd) {
    even = _mm512_load_ps(s);
    odd = _mm512_load_ps(s + 64);
  }
};

// P consecutive panels times T batch rows over steps [s_begin, s_end), one accumulator register
// each, resumed from and left in `acc` ([P][T][16] floats, 64-byte aligned). Every weight step is
// loaded and converted once and feeds P * T * 2 fused multiply-adds; P * T <= 16 keeps the
// accumulators, the converted weights and the broadcasts within the 32 registers. `x` holds the
// tile's inputs of step s_begin (x[2t], x[2t + 1] for batch row t), `x_step` floats apart. When
// `half_last`, the last step has only its even input (the odd one is padding and is skipped).
template <int P, int T, class L>
WAFER_AVX512 void Tile512(const std::byte* w, size_t panel_bytes, const float* x, size_t x_step,
                          size_t s_begin, size_t s_end, bool half_last, float* acc_out) {
  constexpr size_t kStep = StepBytes(L::kDType);
  __m512 acc[P][T];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[p][t] = _mm512_load_ps(acc_out + (p * T + t) * kLanes);
  }
  const size_t full_end = s_end - (half_last ? 1 : 0);
  for (size_t j = s_begin; j < full_end; ++j, x += x_step) {
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      const std::byte* s = w + p * panel_bytes + j * kStep;
      Prefetch<kStep>(s);
      __m512 even, odd;
      L::Step(s, even, odd);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        acc[p][t] = _mm512_fmadd_ps(even, _mm512_set1_ps(x[2 * t]), acc[p][t]);
      }
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        acc[p][t] = _mm512_fmadd_ps(odd, _mm512_set1_ps(x[2 * t + 1]), acc[p][t]);
      }
    }
  }
  if (half_last) {
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      __m512 even, odd;
      L::Step(w + p * panel_bytes + full_end * kStep, even, odd);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        acc[p][t] = _mm512_fmadd_ps(even, _mm512_set1_ps(x[2 * t]), acc[p][t]);
      }
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) _mm512_store_ps(acc_out + (p * T + t) * kLanes, acc[p][t]);
  }
}

using TileFn = void (*)(const std::byte*, size_t, const float*, size_t, size_t, size_t, bool,
                        float*);

template <int P, class L, int... T>
constexpr std::array<TileFn, sizeof...(T)> Tiles512(std::integer_sequence<int, T...>) {
  return {&Tile512<P, T + 1, L>...};
}

// Panels [p_begin, p_end) in groups of kPanelsPerPart. Within a group, batch tiles of up to
// sixteen rows: up to four rows take four panels at a time (independent chains hide the FMA
// latency), up to eight two, more one. The steps go in chunks of kChunkSteps: one chunk of the
// tile's inputs (16 KiB at sixteen rows) stays in L1 while every panel of the group streams
// through it; the accumulators wait in `acc` between chunks, which leaves each output's chain of
// operations unchanged.
template <class L>
WAFER_AVX512 void Rows512(const float* xs, size_t rows, const PackedMatrix& w, size_t p_begin,
                          size_t p_end, float* y) {
  static constexpr auto kP4 = Tiles512<4, L>(std::make_integer_sequence<int, 4>());
  static constexpr auto kP2 = Tiles512<2, L>(std::make_integer_sequence<int, 8>());
  static constexpr auto kP1 = Tiles512<1, L>(std::make_integer_sequence<int, kMaxTileRows>());
  alignas(64) float acc[kPanelsPerPart * kMaxTileRows * kLanes];
  const size_t out = w.out(), pb = w.panel_bytes(), steps = (w.in() + 1) / 2;
  const bool odd_in = w.in() % 2 != 0;
  for (size_t g = p_begin; g < p_end; g += kPanelsPerPart) {
    const size_t n = std::min(kPanelsPerPart, p_end - g);
    for (size_t t0 = 0; t0 < rows; t0 += kMaxTileRows) {
      const size_t tile = std::min(kMaxTileRows, rows - t0);
      const size_t group = tile <= 4 ? 4 : tile <= 8 ? 2 : 1;
      const TileFn wide = tile <= 4 ? kP4[tile - 1] : tile <= 8 ? kP2[tile - 1] : nullptr;
      const TileFn narrow = kP1[tile - 1];
      std::memset(acc, 0, n * tile * kLanes * sizeof(float));
      for (size_t s0 = 0; s0 < steps; s0 += kChunkSteps) {
        const size_t s1 = std::min(steps, s0 + kChunkSteps);
        const bool half = odd_in && s1 == steps;
        const float* x = xs + s0 * 2 * rows + 2 * t0;
        size_t p = 0;
        for (; group > 1 && p + group <= n; p += group) {
          wide(w.panel(g + p), pb, x, 2 * rows, s0, s1, half, acc + p * tile * kLanes);
        }
        for (; p < n; ++p) {
          narrow(w.panel(g + p), pb, x, 2 * rows, s0, s1, half, acc + p * tile * kLanes);
        }
      }
      for (size_t p = 0; p < n; ++p) {
        const size_t first = (g + p) * kLanes;
        const __mmask16 mask = static_cast<__mmask16>((1u << std::min(kLanes, out - first)) - 1);
        for (size_t t = 0; t < tile; ++t) {
          _mm512_mask_storeu_ps(y + (t0 + t) * out + first, mask,
                                _mm512_load_ps(acc + (p * tile + t) * kLanes));
        }
      }
    }
  }
}

// AVX2 step loaders: lanes 0..7 and 8..15 of inputs 2j (`even`) and 2j + 1 (`odd`), exactly.
struct Bf16x8 {
  static constexpr DType kDType = DType::kBF16;
  WAFER_AVX2 static void Step(const std::byte* s, __m256 even[2], __m256 odd[2]) {
    const __m256i mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(s + 32 * h));
      even[h] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      odd[h] = _mm256_castsi256_ps(_mm256_and_si256(v, mask));
    }
  }
};
struct F16x8 {
  static constexpr DType kDType = DType::kF16;
  WAFER_AVX2 static void Step(const std::byte* s, __m256 even[2], __m256 odd[2]) {
    for (int h = 0; h < 2; ++h) {
      even[h] = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(s + 16 * h)));
      odd[h] = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(s + 32 + 16 * h)));
    }
  }
};
struct F32x8 {
  static constexpr DType kDType = DType::kF32;
  WAFER_AVX2 static void Step(const std::byte* s, __m256 even[2], __m256 odd[2]) {
    for (int h = 0; h < 2; ++h) {
      even[h] = _mm256_load_ps(reinterpret_cast<const float*>(s + 32 * h));
      odd[h] = _mm256_load_ps(reinterpret_cast<const float*>(s + 64 + 32 * h));
    }
  }
};

// One panel (two registers wide) times T <= 4 batch rows: the 16 registers hold 2T accumulators,
// the four converted weight halves and a broadcast.
template <int T, class L>
WAFER_AVX2 void Tile256(const std::byte* w, const float* x, size_t x_step, size_t in, float* y,
                        size_t out, size_t o) {
  constexpr size_t kStep = StepBytes(L::kDType);
  __m256 acc[T][2];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  const size_t steps = in / 2;
  __m256 even[2], odd[2];
  for (size_t j = 0; j < steps; ++j, x += x_step) {
    Prefetch<kStep>(w + j * kStep);
    L::Step(w + j * kStep, even, odd);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m256 xe = _mm256_broadcast_ss(x + 2 * t);
      acc[t][0] = _mm256_fmadd_ps(even[0], xe, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(even[1], xe, acc[t][1]);
      const __m256 xo = _mm256_broadcast_ss(x + 2 * t + 1);
      acc[t][0] = _mm256_fmadd_ps(odd[0], xo, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(odd[1], xo, acc[t][1]);
    }
  }
  if (in % 2 != 0) {
    L::Step(w + steps * kStep, even, odd);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m256 xe = _mm256_broadcast_ss(x + 2 * t);
      acc[t][0] = _mm256_fmadd_ps(even[0], xe, acc[t][0]);
      acc[t][1] = _mm256_fmadd_ps(even[1], xe, acc[t][1]);
    }
  }
  const size_t lanes = std::min(kLanes, out - o);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    float* dst = y + t * out + o;
    if (lanes == kLanes) {
      _mm256_storeu_ps(dst, acc[t][0]);
      _mm256_storeu_ps(dst + 8, acc[t][1]);
    } else {
      alignas(32) float tmp[kLanes];
      _mm256_store_ps(tmp, acc[t][0]);
      _mm256_store_ps(tmp + 8, acc[t][1]);
      std::memcpy(dst, tmp, lanes * sizeof(float));
    }
  }
}

template <class L>
WAFER_AVX2 void RowsAvx2(const float* xs, size_t rows, const PackedMatrix& w, size_t p_begin,
                         size_t p_end, float* y) {
  const size_t in = w.in(), out = w.out();
  for (size_t p = p_begin; p < p_end; ++p) {
    const std::byte* panel = w.panel(p);
    const size_t o = p * kLanes;
    size_t t = 0;
    const size_t x_step = 2 * rows;
    for (; t + 4 <= rows; t += 4) {
      Tile256<4, L>(panel, xs + 2 * t, x_step, in, y + t * out, out, o);
    }
    switch (rows - t) {
      case 3: Tile256<3, L>(panel, xs + 2 * t, x_step, in, y + t * out, out, o); break;
      case 2: Tile256<2, L>(panel, xs + 2 * t, x_step, in, y + t * out, out, o); break;
      case 1: Tile256<1, L>(panel, xs + 2 * t, x_step, in, y + t * out, out, o); break;
      default: break;
    }
  }
}

// Whether MatMul runs `w` on the AMX kernel.
bool UsesAmx(const PackedMatrix& w, Isa isa) {
  return isa == Isa::kAvx512Amx && w.dtype() == DType::kBF16;
}

void Rows(const Batch& batch, const PackedMatrix& w, size_t p_begin, size_t p_end, float* y,
          Isa isa) {
  const float* xs = batch.steps;
  const size_t rows = batch.rows;
  if (UsesAmx(w, isa)) return RowsAmx(batch.splits, rows, w, p_begin, p_end, y);
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Amx) {
    switch (w.dtype()) {
      case DType::kF32: return Rows512<F32x16>(xs, rows, w, p_begin, p_end, y);
      case DType::kBF16: return Rows512<Bf16x16>(xs, rows, w, p_begin, p_end, y);
      case DType::kF16: return Rows512<F16x16>(xs, rows, w, p_begin, p_end, y);
    }
  }
  if (isa == Isa::kAvx2Fma) {
    switch (w.dtype()) {
      case DType::kF32: return RowsAvx2<F32x8>(xs, rows, w, p_begin, p_end, y);
      case DType::kBF16: return RowsAvx2<Bf16x8>(xs, rows, w, p_begin, p_end, y);
      case DType::kF16: return RowsAvx2<F16x8>(xs, rows, w, p_begin, p_end, y);
    }
  }
  RowsPortable(xs, rows, w, p_begin, p_end, y);
}

// exp(x) for float32 inputs: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split
// of ln2), e^r by the Cephes expf polynomial, times 2^n by vscalefps (which overflows to inf and
// underflows through the subnormals to 0 as exp does). Inputs are clamped to +-150 first, past
// which exp is inf or 0 anyway; NaN becomes 150 (callers see the NaN through other operands).
// SiluMul built on it stays within 2.5 ulp of exact, as with std::exp (SiluMulTest).
WAFER_AVX512 inline __m512 Exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-150.0f)), _mm512_set1_ps(150.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

WAFER_AVX512 void SiluMul512(float* gate, const float* up, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 e = Exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
  }
}

#else  // !defined(__x86_64__)

bool UsesAmx(const PackedMatrix&, Isa) { return false; }

void Rows(const Batch& batch, const PackedMatrix& w, size_t p_begin, size_t p_end, float* y,
          Isa) {
  RowsPortable(batch.steps, batch.rows, w, p_begin, p_end, y);
}

#endif

// The batch in steps of two inputs, matching the panels: input i of batch row t at
// xs[(i / 2) * 2 * rows + 2 * t + i % 2], so a tile finds both inputs of every row of a step at
// fixed offsets. Kept in a per-thread buffer reused across calls. A single row already is.
const float* StepMajor(const float* x, size_t rows, size_t in) {
  if (rows == 1) return x;
  thread_local std::vector<float> xs;
  const size_t steps = (in + 1) / 2;
  if (xs.size() < steps * 2 * rows) xs.resize(steps * 2 * rows);
  // Step by step: sequential writes, and one line of each row's input in L1 at a time.
  float* dst = xs.data();
  for (size_t i = 0; i + 1 < in; i += 2) {
    for (size_t t = 0; t < rows; ++t, dst += 2) {
      dst[0] = x[t * in + i];
      dst[1] = x[t * in + i + 1];
    }
  }
  if (in % 2 != 0) {
    for (size_t t = 0; t < rows; ++t, dst += 2) dst[0] = x[t * in + in - 1];  // No partner.
  }
  return xs.data();
}

}  // namespace

void PackedMatrix::Free::operator()(std::byte* p) const {
  if (mapped_bytes != 0) {
    ::munmap(p, mapped_bytes);
  } else {
    ::operator delete(p, std::align_val_t{kAlignment});
  }
}

PackedMatrix::PackedMatrix(const WeightMatrix& w) : PackedMatrix(w.dtype, w.out, w.in) {
  Store(0, std::span<const std::byte>(w.data, w.out * w.in * ElementBytes(w.dtype)));
}

PackedMatrix::PackedMatrix(DType dtype, size_t out, size_t in)
    : dtype_(dtype),
      out_(out),
      in_(in),
      panel_bytes_(((in + 1) / 2 + kAmxSteps - 1) / kAmxSteps * kAmxSteps * StepBytes(dtype)) {
  const size_t bytes = panels() * panel_bytes_;
  if (bytes == 0) return;
  if (bytes >= kMapBytes) {
    // Fresh anonymous pages, which read as 0 as the padding rows and the odd input's partner
    // must: nothing to zero here, so each page is written once (by Store), not twice. Not
    // MADV_HUGEPAGE: on a virtual machine a 2 MiB page the host has not backed yet costs far more
    // to fault than 512 small ones (measured 10-18x).
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    data_ = std::unique_ptr<std::byte[], Free>(static_cast<std::byte*>(p), Free{bytes});
    return;
  }
  data_ = std::unique_ptr<std::byte[], Free>(
      static_cast<std::byte*>(::operator new(bytes, std::align_val_t{kAlignment})), Free{});
  std::memset(data_.get(), 0, bytes);  // Padding rows and the odd input's partner read as 0.
}

namespace {

// Copies whole rows [first, first + 16) of a row-major matrix into their panel, `units`
// transpose units per row (an element, or a bfloat16 pair: `T` is their size), `row_bytes`
// apart in `src`. Unit c of lane l goes to panel[c * 16 + l]: the panel's layout for every dtype
// once a bfloat16 pair counts as one unit. Blocks of 16 x 16 units, so that the reads of a block
// are 16 short runs and its writes one contiguous run, both within L1.
template <typename T>
void TransposePanel(const std::byte* src, size_t row_bytes, size_t units, std::byte* panel) {
  constexpr size_t kLanes16 = PackedMatrix::kPanelRows;
  for (size_t c0 = 0; c0 < units; c0 += kLanes16) {
    const size_t n = std::min(kLanes16, units - c0);
    std::byte* dst = panel + c0 * kLanes16 * sizeof(T);
    for (size_t l = 0; l < kLanes16; ++l) {
      const std::byte* row = src + l * row_bytes + c0 * sizeof(T);
      for (size_t k = 0; k < n; ++k) {
        std::memcpy(dst + (k * kLanes16 + l) * sizeof(T), row + k * sizeof(T), sizeof(T));
      }
    }
  }
}

#if defined(__x86_64__)
// The same for 4-byte units with AVX-512: each 16 x 16 block is sixteen 64-byte loads, an
// in-register transpose and sixteen 64-byte stores.
WAFER_AVX512 void TransposePanel32Avx512(const std::byte* src, size_t row_bytes, size_t units,
                                         std::byte* panel) {
  size_t c0 = 0;
  for (; c0 + 16 <= units; c0 += 16) {
    __m512 r[16], t[16];
    for (size_t l = 0; l < 16; ++l) r[l] = _mm512_loadu_ps(src + l * row_bytes + c0 * 4);
    for (size_t l = 0; l < 16; l += 2) {
      t[l] = _mm512_unpacklo_ps(r[l], r[l + 1]);
      t[l + 1] = _mm512_unpackhi_ps(r[l], r[l + 1]);
    }
    for (size_t l = 0; l < 16; l += 4) {
      r[l] = _mm512_shuffle_ps(t[l], t[l + 2], _MM_SHUFFLE(1, 0, 1, 0));
      r[l + 1] = _mm512_shuffle_ps(t[l], t[l + 2], _MM_SHUFFLE(3, 2, 3, 2));
      r[l + 2] = _mm512_shuffle_ps(t[l + 1], t[l + 3], _MM_SHUFFLE(1, 0, 1, 0));
      r[l + 3] = _mm512_shuffle_ps(t[l + 1], t[l + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (size_t h = 0; h < 16; h += 8) {
      for (size_t l = 0; l < 4; ++l) {
        t[h + l] = _mm512_shuffle_f32x4(r[h + l], r[h + l + 4], 0x88);
        t[h + l + 4] = _mm512_shuffle_f32x4(r[h + l], r[h + l + 4], 0xdd);
      }
    }
    for (size_t l = 0; l < 8; ++l) {
      r[l] = _mm512_shuffle_f32x4(t[l], t[l + 8], 0x88);
      r[l + 8] = _mm512_shuffle_f32x4(t[l], t[l + 8], 0xdd);
    }
    std::byte* dst = panel + c0 * 64;
    for (size_t k = 0; k < 16; ++k) _mm512_store_ps(dst + k * 64, r[k]);
  }
  if (c0 < units) {
    TransposePanel<uint32_t>(src + c0 * 4, row_bytes, units - c0, panel + c0 * 64);
  }
}
#endif

// One row (lane `lane` of its panel), `units` units of `T`.
template <typename T>
void ScatterRow(const std::byte* src, size_t units, size_t lane, std::byte* panel) {
  std::byte* dst = panel + lane * sizeof(T);
  for (size_t c = 0; c < units; ++c) {
    std::memcpy(dst + c * PackedMatrix::kPanelRows * sizeof(T), src + c * sizeof(T), sizeof(T));
  }
}

}  // namespace

void PackedMatrix::Store(size_t offset, std::span<const std::byte> data) {
  const size_t size = ElementBytes(dtype_);
  const size_t row_bytes = in_ * size;
  // A bfloat16 pair is one 4-byte unit of the layout; a row of an odd count of them is not a
  // whole number of units, and goes element by element.
  const size_t unit = dtype_ == DType::kF16 ? 2 : 4;
  if (row_bytes == 0 || row_bytes % unit != 0) return StoreElements(offset, data);
  const size_t end = offset + data.size();
  const size_t first_row = (offset + row_bytes - 1) / row_bytes;  // The first whole row...
  const size_t end_row = end / row_bytes;                          // ...and the end of the last.
  if (first_row >= end_row) return StoreElements(offset, data);
  const size_t head = first_row * row_bytes - offset;
  StoreElements(offset, data.first(head));
  const std::byte* src = data.data() + head;
  const size_t units = row_bytes / unit;
  for (size_t r = first_row; r < end_row;) {
    std::byte* panel = data_.get() + (r / kPanelRows) * panel_bytes_;
    const size_t lane = r % kPanelRows;
    if (lane == 0 && end_row - r >= kPanelRows) {
#if defined(__x86_64__)
      if (unit == 4 && BestIsa() >= Isa::kAvx512) {
        TransposePanel32Avx512(src, row_bytes, units, panel);
      } else
#endif
      if (unit == 4) {
        TransposePanel<uint32_t>(src, row_bytes, units, panel);
      } else {
        TransposePanel<uint16_t>(src, row_bytes, units, panel);
      }
      src += kPanelRows * row_bytes;
      r += kPanelRows;
      continue;
    }
    if (unit == 4) {
      ScatterRow<uint32_t>(src, units, lane, panel);
    } else {
      ScatterRow<uint16_t>(src, units, lane, panel);
    }
    src += row_bytes;
    ++r;
  }
  StoreElements(end_row * row_bytes, data.subspan(end_row * row_bytes - offset));
}

void PackedMatrix::StoreElements(size_t offset, std::span<const std::byte> data) {
  const size_t size = ElementBytes(dtype_);
  const std::byte* src = data.data();
  size_t b = offset;
  const size_t end = offset + data.size();
  // Where byte `byte` of the row-major matrix lives.
  const auto place = [&](size_t byte) {
    const size_t e = byte / size, o = e / in_;
    return data_.get() + (o / kPanelRows) * panel_bytes_ +
           PackedOffset(dtype_, e % in_, o % kPanelRows) + byte % size;
  };
  // A split element's bytes one by one; whole elements a row segment at a time.
  for (; b < end && b % size != 0; ++b) *place(b) = *src++;
  while (end - b >= size) {
    const size_t e = b / size, o = e / in_, first = e % in_;
    const size_t n = std::min(in_ - first, (end - b) / size);
    std::byte* panel = data_.get() + (o / kPanelRows) * panel_bytes_;
    const size_t lane = o % kPanelRows;
    for (size_t i = first; i < first + n; ++i, src += size) {
      std::memcpy(panel + PackedOffset(dtype_, i, lane), src, size);
    }
    b += n * size;
  }
  for (; b < end; ++b) *place(b) = *src++;
}

void PackedMatrix::ConvertRow(size_t row, float* out) const {
  const std::byte* p = panel(row / kPanelRows);
  const size_t lane = row % kPanelRows;
  for (size_t i = 0; i < in_; ++i) out[i] = ElementAt(dtype_, p + PackedOffset(dtype_, i, lane));
}

Isa BestIsa() {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                           __builtin_cpu_supports("f16c");
  static const bool avx512 =
      avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  static const bool amx = avx512 && __builtin_cpu_supports("amx-tile") &&
                          __builtin_cpu_supports("amx-bf16") && RequestTileData();
  if (amx) return Isa::kAvx512Amx;
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
      return BestIsa() == Isa::kAvx512 || BestIsa() == Isa::kAvx512Amx;
    case Isa::kAvx512Amx:
      return BestIsa() == Isa::kAvx512Amx;
  }
  return false;
}

void ConvertRow(const WeightMatrix& w, size_t row, float* out) {
  const size_t size = ElementBytes(w.dtype);
  const std::byte* src = w.data + row * w.in * size;
  if (w.dtype == DType::kF32) {
    std::memcpy(out, src, w.in * sizeof(float));
    return;
  }
  for (size_t i = 0; i < w.in; ++i) out[i] = ElementAt(w.dtype, src + i * size);
}

namespace {

// `isa` if this CPU runs it, else the best Isa it does run. The CPU runs exactly the Isas up to
// BestIsa() (each needs the ones before it), so that is the lesser of the two. BestIsa() is asked
// once per process; afterwards this is a load and a compare.
Isa Usable(Isa isa) {
  static const Isa best = BestIsa();
  return isa <= best ? isa : best;
}

}  // namespace

void MatMul(const float* x, size_t rows, std::span<const Product> products, WorkerPool* pool,
            Isa isa) {
  if (rows == 0 || products.empty()) return;
  isa = Usable(isa);
  const size_t in = products[0].w->in();
  Batch batch;
  batch.rows = rows;
  for (const Product& p : products) {
    if (UsesAmx(*p.w, isa)) {
      if (batch.splits == nullptr) batch.splits = SplitMajor(x, rows, in);
    } else if (batch.steps == nullptr) {
      batch.steps = StepMajor(x, rows, in);
    }
  }
  size_t panels = 0, macs = 0;
  for (const Product& p : products) {
    panels += p.w->panels();
    macs += rows * p.w->out() * in;
  }
  if (pool == nullptr || pool->parallelism() < 2 || macs < kThreadedMatMulMacs ||
      panels < 2 * kPanelsPerPart) {
    for (const Product& p : products) Rows(batch, *p.w, 0, p.w->panels(), p.y, isa);
    return;
  }
  // Parts of a multiple of kPanelsPerPart panels, about kTargetParts of them in all.
  const size_t per_part =
      std::max<size_t>(1, panels / (kTargetParts * kPanelsPerPart)) * kPanelsPerPart;
  size_t parts = 0;
  for (const Product& p : products) parts += (p.w->panels() + per_part - 1) / per_part;
  pool->Run(parts, [&](size_t part) {
    for (const Product& p : products) {
      const size_t own = (p.w->panels() + per_part - 1) / per_part;
      if (part < own) {
        const size_t begin = part * per_part;
        Rows(batch, *p.w, begin, std::min(p.w->panels(), begin + per_part), p.y, isa);
        return;
      }
      part -= own;
    }
  });
}

void MatMul(const float* x, size_t rows, const PackedMatrix& w, float* y, WorkerPool* pool,
            Isa isa) {
  const Product product{&w, y};
  MatMul(x, rows, std::span<const Product>(&product, 1), pool, isa);
}

void Axpy(float a, const float* x, size_t n, float* y) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    // Eight independent lanes through a temporary, so that -O2 vectorizes without alias checks.
    float t[8];
    for (size_t j = 0; j < 8; ++j) t[j] = y[i + j] + a * x[i + j];
    for (size_t j = 0; j < 8; ++j) y[i + j] = t[j];
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

void SiluMul(float* gate, const float* up, size_t n, Isa isa) {
#if defined(__x86_64__)
  isa = Usable(isa);
  if (isa == Isa::kAvx512 || isa == Isa::kAvx512Amx) return SiluMul512(gate, up, n);
#else
  (void)isa;
#endif
  for (size_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
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

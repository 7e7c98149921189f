#include "board_sim/llama/internal/kernels_amx.h"

#include <algorithm>
#include <vector>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "board_sim/llama/internal/intrinsics.h"

namespace wafer::sim::internal {

#if defined(__x86_64__)

namespace {

// The instruction sets are enabled per function (target attributes), not per file, so that this
// file builds with the baseline flags and nothing in it runs unless MatMul chose the AMX path.
#define WAFER_AVX512 __attribute__((target("avx512f,avx512bw,avx2,fma,f16c")))

constexpr size_t kLanes = PackedMatrix::kPanelRows;
// Inputs per AMX block.
constexpr size_t kAmxInputs = 2 * kAmxSteps;
// Panels per group: tiles 0-3 accumulate four panels.
constexpr size_t kAmxPanels = 4;

// How far ahead of the block being multiplied the AMX kernel asks for its panels' weights
// (measured best among 1-8 KiB).
constexpr size_t kAmxPrefetchBytes = 2048;
#define WAFER_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx2,fma,f16c")))

// The terms each input is split into for the AMX kernel.
constexpr size_t kTerms = 3;

// The batch for the AMX kernel: every input split exactly into three bfloat16 terms,
// x = hi + mid + lo (hi keeps the top 8 significant bits, mid the next 8, lo the last 8; each
// difference is exact in float32), laid out [term][block of 32 inputs][row][32 inputs] so that
// one term of up to sixteen consecutive rows is a tile with 64-byte rows. Inputs past `in` are
// zero. Subnormal terms (|x| below about 2^-110) are flushed by the tile unit; an infinite input
// gives NaN.
WAFER_AVX512 const uint16_t* SplitMajorAvx512(const float* x, size_t rows, size_t in) {
  thread_local std::vector<uint16_t> buffer;
  const size_t blocks = (in + kAmxInputs - 1) / kAmxInputs;
  const size_t term = blocks * rows * kAmxInputs;
  if (buffer.size() < kTerms * term) buffer.resize(kTerms * term);
  const __m512i top = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
  for (size_t b = 0; b < blocks; ++b) {
    for (size_t t = 0; t < rows; ++t) {
      uint16_t* dst = buffer.data() + (b * rows + t) * kAmxInputs;
      for (size_t h = 0; h < kAmxInputs; h += 16) {
        const size_t i = b * kAmxInputs + h;
        const size_t n = i < in ? std::min<size_t>(16, in - i) : 0;
        const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1);
        const __m512i v = _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, x + t * in + i));
        const __m512i hi = _mm512_and_si512(v, top);
        const __m512i r = _mm512_castps_si512(
            _mm512_sub_ps(_mm512_castsi512_ps(v), _mm512_castsi512_ps(hi)));
        const __m512i mid = _mm512_and_si512(r, top);
        const __m512i lo = _mm512_castps_si512(
            _mm512_sub_ps(_mm512_castsi512_ps(r), _mm512_castsi512_ps(mid)));
        const __m512i terms[kTerms] = {hi, mid, lo};
        for (size_t k = 0; k < kTerms; ++k) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + k * term + h),
                              _mm512_cvtepi32_epi16(_mm512_srli_epi32(terms[k], 16)));
        }
      }
    }
  }
  return buffer.data();
}

// The tile configuration (palette 1): tiles 0-3 accumulate the [rows x 16] float32 results of
// four panels, tiles 4-6 hold the three [rows x 32] bfloat16 terms of the batch, tile 7 a
// [16 x 32] weight block.
struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
};

WAFER_AMX void ConfigureTiles(size_t rows) {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = static_cast<uint8_t>(t < 7 ? rows : kAmxSteps);
    config.bytes_per_row[t] = 64;
  }
  // GCC 12 describes ldtilecfg's operand as 8 bytes, and would drop the other stores as dead.
  asm volatile("" : : "r"(&config) : "memory");
  _tile_loadconfig(&config);
}

// N <= 4 consecutive panels times the configured rows of the batch: per block of 32 inputs, the
// three terms are loaded once and each panel's weight block is multiplied into the panel's
// accumulator three times (hi, mid, lo). The product of a bfloat16 weight and a bfloat16 term is
// exact, so each output is a float32 sum of exact products, in the tile unit's order, and
// depends only on its own row of the batch. Results go to `c` ([N][16][16]). The tile
// intrinsics take tile numbers as literal tokens and do not tell the compiler which memory they
// touch, hence the macros and the barriers.
#define WAFER_AMX_PANEL(P)                                                          \
  if constexpr (N > (P)) {                                                          \
    const std::byte* block = w + (P) * panel_bytes + b * kAmxSteps * 64;            \
    const uintptr_t ahead = reinterpret_cast<uintptr_t>(block) + kAmxPrefetchBytes; \
    for (size_t line = 0; line < kAmxSteps * 64; line += 64) {                      \
      _mm_prefetch(reinterpret_cast<const char*>(ahead + line), _MM_HINT_T0);       \
    }                                                                               \
    _tile_loadd(7, block, 64);                                                      \
    _tile_dpbf16ps(P, 4, 7);                                                        \
    _tile_dpbf16ps(P, 5, 7);                                                        \
    _tile_dpbf16ps(P, 6, 7);                                                        \
  }

template <int N>
WAFER_AMX void PanelsAmx(const std::byte* w, size_t panel_bytes, const uint16_t* terms,
                         size_t block_elems, size_t term_elems, size_t blocks, float* c) {
  asm volatile("" : : : "memory");
  _tile_zero(0);
  if constexpr (N > 1) _tile_zero(1);
  if constexpr (N > 2) _tile_zero(2);
  if constexpr (N > 3) _tile_zero(3);
  for (size_t b = 0; b < blocks; ++b) {
    const uint16_t* a = terms + b * block_elems;
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a + term_elems, 64);
    _tile_loadd(6, a + 2 * term_elems, 64);
    WAFER_AMX_PANEL(0)
    WAFER_AMX_PANEL(1)
    WAFER_AMX_PANEL(2)
    WAFER_AMX_PANEL(3)
  }
  _tile_stored(0, c, 64);
  if constexpr (N > 1) _tile_stored(1, c + 1 * kLanes * kLanes, 64);
  if constexpr (N > 2) _tile_stored(2, c + 2 * kLanes * kLanes, 64);
  if constexpr (N > 3) _tile_stored(3, c + 3 * kLanes * kLanes, 64);
  asm volatile("" : : : "memory");
}
#undef WAFER_AMX_PANEL

WAFER_AMX void ReleaseTiles() { _tile_release(); }

// Bfloat16 panels [p_begin, p_end) in groups of four, batch tiles of sixteen rows. The tile state
// is configured here and released before returning, so a thread holds none between calls.
WAFER_AMX void RowsAmxTiles(const uint16_t* splits, size_t rows, const PackedMatrix& w,
                            size_t p_begin, size_t p_end, float* y) {
  using Fn = void (*)(const std::byte*, size_t, const uint16_t*, size_t, size_t, size_t, float*);
  static constexpr Fn kGroup[] = {&PanelsAmx<1>, &PanelsAmx<2>, &PanelsAmx<3>, &PanelsAmx<4>};
  alignas(64) float c[kAmxPanels * kLanes * kLanes];
  const size_t out = w.out(), blocks = (w.in() + kAmxInputs - 1) / kAmxInputs;
  const size_t block_elems = rows * kAmxInputs, term_elems = blocks * block_elems;
  size_t configured = 0;
  for (size_t g = p_begin; g < p_end; g += kAmxPanels) {
    const size_t n = std::min(kAmxPanels, p_end - g);
    for (size_t t0 = 0; t0 < rows; t0 += kLanes) {
      const size_t tile = std::min(kLanes, rows - t0);
      if (tile != configured) {
        ConfigureTiles(tile);
        configured = tile;
      }
      kGroup[n - 1](w.panel(g), w.panel_bytes(), splits + t0 * kAmxInputs, block_elems,
                    term_elems, blocks, c);
      for (size_t p = 0; p < n; ++p) {
        const size_t first = (g + p) * kLanes;
        const __mmask16 mask = static_cast<__mmask16>((1u << std::min(kLanes, out - first)) - 1);
        for (size_t t = 0; t < tile; ++t) {
          _mm512_mask_storeu_ps(y + (t0 + t) * out + first, mask,
                                _mm512_load_ps(c + (p * kLanes + t) * kLanes));
        }
      }
    }
  }
  if (configured != 0) ReleaseTiles();
}

#undef WAFER_AMX
#undef WAFER_AVX512

}  // namespace

// The entry points carry no target attribute (callers are baseline code, and a declaration that
// differs from its definition in target would declare a function version); each only forwards.
const uint16_t* SplitMajor(const float* x, size_t rows, size_t in) {
  return SplitMajorAvx512(x, rows, in);
}

void RowsAmx(const uint16_t* splits, size_t rows, const PackedMatrix& w, size_t p_begin,
             size_t p_end, float* y) {
  RowsAmxTiles(splits, rows, w, p_begin, p_end, y);
}

#else  // !defined(__x86_64__)

const uint16_t* SplitMajor(const float*, size_t, size_t) { return nullptr; }

// Unreachable: IsaSupported(Isa::kAvx512Amx) is false here.
void RowsAmx(const uint16_t*, size_t, const PackedMatrix&, size_t, size_t, float*) {}

#endif

bool RequestTileData() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr int kArchReqXcompPerm = 0x1023;
  constexpr int kXFeatureXTileData = 18;
  return ::syscall(SYS_arch_prctl, kArchReqXcompPerm, kXFeatureXTileData) == 0;
#else
  return false;
#endif
}

}  // namespace wafer::sim::internal

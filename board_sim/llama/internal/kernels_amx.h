// The Intel AMX (bfloat16 tile) kernel behind MatMul for bfloat16 weights, and the process setup
// it needs. Private to board_sim/llama/internal/kernels.cc, which chooses when to call it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "board_sim/llama/internal/kernels.h"

namespace wafer::sim::internal {

// Steps per AMX block: one 1 KiB bfloat16 tile of sixteen pairs of inputs by sixteen lanes.
// PackedMatrix zero-pads every panel to whole blocks (for every dtype, to keep one layout rule);
// RowsAmx reads whole blocks and relies on it.
inline constexpr size_t kAmxSteps = 16;

// Asks Linux for the AMX tile data state (arch_prctl), which a process must hold before its first
// tile instruction. Call once per process. Returns whether it was granted; false off Linux x86-64.
bool RequestTileData();

// The batch `x` ([rows, in]) in the layout RowsAmx reads: every input split exactly into three
// bfloat16 terms. The buffer is per thread and reused by the next call on the same thread.
// Returns nullptr off x86-64. REQUIRES: IsaSupported(Isa::kAvx512).
const uint16_t* SplitMajor(const float* x, size_t rows, size_t in);

// y[t, o] for the outputs of bfloat16 panels [p_begin, p_end) of `w` and every batch row t < rows,
// from `splits` = SplitMajor(x, rows, w.in()); `y` is [rows, w.out()]. Holds the tile state only
// during the call. REQUIRES: w.dtype() == DType::kBF16; IsaSupported(Isa::kAvx512Amx) (so
// RequestTileData() has succeeded).
void RowsAmx(const uint16_t* splits, size_t rows, const PackedMatrix& w, size_t p_begin,
             size_t p_end, float* y);

}  // namespace wafer::sim::internal

// Free bands of rows on boards shared by several models. Each model placed by the daemon owns a
// band of full-width rows [first, first + rows) on every board it spans (the same band on each,
// so that one plan serves all of them); the free gaps between bands are where the next model
// can go.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace wafer::host {

struct RowBand {
  uint32_t first = 0;
  uint32_t rows = 0;
  uint32_t end() const { return first + rows; }
  bool operator==(const RowBand&) const = default;
};

// The free gaps of a board `height` rows tall once `used` bands are taken, top to bottom.
// Bands may be given in any order and may overlap; parts past `height` are ignored.
std::vector<RowBand> FreeRowGaps(uint32_t height, std::span<const RowBand> used);

// The rows free on every board: the intersection of each board's gaps, top to bottom.
// `per_board` holds each board's FreeRowGaps. Empty input: no gaps.
std::vector<RowBand> CommonRowGaps(std::span<const std::vector<RowBand>> per_board);

}  // namespace wafer::host

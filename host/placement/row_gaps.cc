#include "host/placement/row_gaps.h"

#include <algorithm>

namespace wafer::host {

std::vector<RowBand> FreeRowGaps(uint32_t height, std::span<const RowBand> used) {
  std::vector<RowBand> sorted(used.begin(), used.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const RowBand& a, const RowBand& b) { return a.first < b.first; });
  std::vector<RowBand> gaps;
  uint32_t row = 0;  // First row not yet known to be used.
  for (const RowBand& band : sorted) {
    if (band.rows == 0) continue;
    const uint32_t first = std::min(band.first, height);
    if (first > row) gaps.push_back(RowBand{row, first - row});
    row = std::max(row, std::min(band.end(), height));
  }
  if (row < height) gaps.push_back(RowBand{row, height - row});
  return gaps;
}

std::vector<RowBand> CommonRowGaps(std::span<const std::vector<RowBand>> per_board) {
  if (per_board.empty()) return {};
  std::vector<RowBand> common = per_board[0];
  for (size_t b = 1; b < per_board.size(); ++b) {
    std::vector<RowBand> next;
    // Both lists are sorted and disjoint: a merge of their overlaps.
    size_t i = 0, j = 0;
    const std::vector<RowBand>& other = per_board[b];
    while (i < common.size() && j < other.size()) {
      const uint32_t first = std::max(common[i].first, other[j].first);
      const uint32_t end = std::min(common[i].end(), other[j].end());
      if (first < end) next.push_back(RowBand{first, end - first});
      if (common[i].end() < other[j].end()) {
        ++i;
      } else {
        ++j;
      }
    }
    common = std::move(next);
  }
  return common;
}

}  // namespace wafer::host

// SimWafer's built-in self-tests (hal::Wafer's diagnostics): SRAM March tests, the fabric link
// test and the known-answer kernel, over the latent faults and dead PEs the simulator keeps.
#include <algorithm>
#include <cmath>
#include <vector>

#include "board_sim/sim_wafer.h"

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;

// March C- is 10 operations per word (w0; r0w1; r1w0; r0w1; r1w0; r0, ascending and descending);
// the transparent variant first reads each word to save it and finally writes it back.
constexpr double kMarchOpsPerWord = 10;
constexpr double kTransparentOpsPerWord = 12;
// Test patterns sent over each link (walking ones and zeros, alternating, PRBS), east then south.
constexpr double kLinkPatterns = 256;
// The multiply-accumulates of the known-answer kernel per PE.
constexpr double kKnownAnswerMacs = 64;
// A failing link of a region corrupts its reduction: it flips this bit of the sum.
constexpr uint64_t kLinkFaultBit = uint64_t{1} << 63;

// One failing unit before ordering: a PE (SRAM) or a link (south or east of the PE).
struct Failure {
  uint32_t row = 0;
  uint32_t col = 0;
  uint64_t detail = 0;
  bool failed_before = false;
  bool operator<(const Failure& o) const {
    return row != o.row ? row < o.row : col != o.col ? col < o.col : detail < o.detail;
  }
};

// Sorts `failures` row-major and merges entries for the same unit (same PE, and for links the
// same direction): the first detail wins, failed_before from either.
void SortAndMerge(std::vector<Failure>& failures, bool same_unit_by_detail) {
  std::sort(failures.begin(), failures.end());
  std::vector<Failure> merged;
  for (const Failure& f : failures) {
    if (!merged.empty() && merged.back().row == f.row && merged.back().col == f.col &&
        (!same_unit_by_detail || merged.back().detail == f.detail)) {
      merged.back().failed_before |= f.failed_before;
      continue;
    }
    merged.push_back(f);
  }
  failures = std::move(merged);
}

// First row of die row `die` of `dies` over `height` rows: the first r with r * dies / height ==
// die.
uint32_t DieStart(uint32_t die, uint32_t dies, uint32_t height) {
  return static_cast<uint32_t>((uint64_t{die} * height + dies - 1) / dies);
}

}  // namespace

uint32_t SimWafer::RegionOf(uint32_t row, uint32_t col) const {
  const uint64_t height = std::max<uint32_t>(fabric_.usable_height(), 1);
  const uint64_t width = std::max<uint32_t>(fabric_.usable_width(), 1);
  const auto die_row = static_cast<uint32_t>(uint64_t{row} * preset_.dies_y / height);
  const auto die_col = static_cast<uint32_t>(uint64_t{col} * preset_.dies_x / width);
  return die_row * preset_.dies_x + die_col;
}

Status SimWafer::DiagRows(uint32_t first_row, uint32_t row_count, uint32_t& end) {
  if (!fabric_.programmed()) return FailedPrecondition();
  const uint32_t height = fabric_.usable_height();
  if (first_row >= height) return OutOfRange();
  thermal_.AdvanceTo(clock_.NowNanos());
  if (thermal_.halted()) return Unavailable();
  end = first_row + std::min(row_count, height - first_row);
  return OkStatus();
}

int64_t SimWafer::CyclesToNs(double cycles) const {
  const double hz = preset_.clock_hz * thermal_.min_clock_ratio();
  return hz > 0 ? std::llround(cycles / hz * 1e9) : 0;
}

Status SimWafer::TestSram(uint32_t first_row, uint32_t row_count, bool unused_only,
                          std::span<hal::DiagHit> hits, hal::DiagRun& run) {
  run = hal::DiagRun{};
  uint32_t end = 0;
  WAFER_RETURN_IF_ERROR(DiagRows(first_row, row_count, end));
  const uint32_t width = fabric_.usable_width();
  const auto tested = [&](uint32_t row, uint32_t col) {
    return !unused_only || sram_.used_at(row, col) == 0;
  };
  for (uint32_t r = first_row; r < end; ++r) {
    if (!unused_only) {
      run.units += width;
      continue;
    }
    for (uint32_t c = 0; c < width; ++c) run.units += tested(r, c) ? 1 : 0;
  }
  std::vector<Failure> failures;
  for (uint32_t r = first_row; r < end; ++r) {
    const uint32_t phys = fabric_.physical_row(r);
    const auto& stuck = latent_.stuck();
    for (auto it = stuck.lower_bound(LatentFaults::PeKey(phys, 0));
         it != stuck.end() && (it->first >> 32) == phys; ++it) {
      const auto col = static_cast<uint32_t>(it->first & 0xFFFFFFFFu);
      if (col < width && tested(r, col)) failures.push_back(Failure{r, col, it->second, false});
    }
  }
  // A dead PE answers nothing: its first word already fails.
  for (const FabricMap::Pe& pe : fabric_.DeadPes()) {
    if (pe.row >= first_row && pe.row < end && tested(pe.row, pe.col)) {
      failures.push_back(Failure{pe.row, pe.col, 0, true});
    }
  }
  SortAndMerge(failures, /*same_unit_by_detail=*/false);
  for (const Failure& f : failures) {
    if (run.hit_count < hits.size()) {
      hits[run.hit_count++] = hal::DiagHit{f.row, f.col, f.failed_before ? 0 : f.detail,
                                           RegionOf(f.row, f.col), f.failed_before};
    }
    ++run.failures;
  }
  run.rows = end - first_row;
  if (run.units > 0) {
    const double ops = unused_only ? kMarchOpsPerWord : kTransparentOpsPerWord;
    // Every PE tests its own SRAM at once, one word operation per cycle.
    run.device_ns = CyclesToNs(ops * (preset_.sram_per_pe_bytes / 8.0));
    thermal_.AddBusy(run.device_ns);
  }
  return OkStatus();
}

Status SimWafer::TestFabricLinks(uint32_t first_row, uint32_t row_count,
                                 std::span<hal::DiagHit> hits, hal::DiagRun& run) {
  run = hal::DiagRun{};
  uint32_t end = 0;
  WAFER_RETURN_IF_ERROR(DiagRows(first_row, row_count, end));
  const uint32_t width = fabric_.usable_width();
  const uint32_t height = fabric_.usable_height();
  for (uint32_t r = first_row; r < end; ++r) {
    run.units += width - 1;                 // East links.
    if (r + 1 < height) run.units += width;  // South links.
  }
  // A link exists east of every column but the last, south of every row but the last.
  const auto exists = [&](uint32_t row, uint32_t col, bool south) {
    return south ? row + 1 < height && col < width : col + 1 < width;
  };
  std::vector<Failure> failures;  // detail: 0 east, 1 south.
  for (uint32_t r = first_row; r < end; ++r) {
    const uint32_t phys = fabric_.physical_row(r);
    const auto& links = latent_.links();
    for (auto it = links.lower_bound(LatentFaults::LinkKey(phys, 0, false));
         it != links.end() && (*it >> 33) == phys; ++it) {
      const bool south = (*it & 1) != 0;
      const auto col = static_cast<uint32_t>((*it >> 1) & 0xFFFFFFFFu);
      if (exists(r, col, south)) failures.push_back(Failure{r, col, south ? 1u : 0u, false});
    }
  }
  // Every link into or out of a dead PE fails; its west and north neighbours' links too.
  const auto add_dead_link = [&](uint32_t row, uint32_t col, bool south) {
    if (row >= first_row && row < end && exists(row, col, south)) {
      failures.push_back(Failure{row, col, south ? 1u : 0u, true});
    }
  };
  for (const FabricMap::Pe& pe : fabric_.DeadPes()) {
    add_dead_link(pe.row, pe.col, false);
    add_dead_link(pe.row, pe.col, true);
    if (pe.col > 0) add_dead_link(pe.row, pe.col - 1, false);
    if (pe.row > 0) add_dead_link(pe.row - 1, pe.col, true);
  }
  SortAndMerge(failures, /*same_unit_by_detail=*/true);
  for (const Failure& f : failures) {
    if (run.hit_count < hits.size()) {
      hits[run.hit_count++] =
          hal::DiagHit{f.row, f.col, f.detail, RegionOf(f.row, f.col), f.failed_before};
    }
    ++run.failures;
  }
  run.rows = end - first_row;
  if (run.units > 0) {
    // All links of a direction at once: east, then south, each pattern one hop through two
    // routers.
    run.device_ns = CyclesToNs(
        2 * kLinkPatterns * (preset_.hop_latency_cycles + 2 * preset_.router_cycles));
    thermal_.AddBusy(run.device_ns);
  }
  return OkStatus();
}

Status SimWafer::RunKnownAnswer(uint32_t region, uint64_t& answer, uint64_t& pes,
                                int64_t& device_ns) {
  answer = 0;
  pes = 0;
  device_ns = 0;
  if (!fabric_.programmed()) return FailedPrecondition();
  if (region >= preset_.regions()) return OutOfRange();
  thermal_.AdvanceTo(clock_.NowNanos());
  const double ratio = thermal_.clock_ratio(region);
  if (!(ratio > 0)) return Unavailable();
  const uint32_t width = fabric_.usable_width();
  const uint32_t height = fabric_.usable_height();
  const uint32_t die_row = region / preset_.dies_x;
  const uint32_t die_col = region % preset_.dies_x;
  const uint32_t r0 = DieStart(die_row, preset_.dies_y, height);
  const uint32_t r1 = DieStart(die_row + 1, preset_.dies_y, height);
  const uint32_t c0 = DieStart(die_col, preset_.dies_x, width);
  const uint32_t c1 = DieStart(die_col + 1, preset_.dies_x, width);
  const auto inside = [&](uint32_t row, uint32_t col) {
    return row >= r0 && row < r1 && col >= c0 && col < c1;
  };
  constexpr uint64_t kPerPe = hal::KnownAnswerPerPe();
  pes = uint64_t{r1 - r0} * (c1 - c0);
  answer = pes * kPerPe;
  bool link_fault = false;
  for (uint32_t r = r0; r < r1; ++r) {
    const uint32_t phys = fabric_.physical_row(r);
    const auto& stuck = latent_.stuck();
    for (auto it = stuck.lower_bound(LatentFaults::PeKey(phys, c0));
         it != stuck.end() && (it->first >> 32) == phys; ++it) {
      const auto col = static_cast<uint32_t>(it->first & 0xFFFFFFFFu);
      if (col >= c1) break;
      // The stuck bit corrupts an operand; the PE's result comes out with one bit flipped.
      if (!fabric_.IsDead(r, col)) answer = answer - kPerPe + (kPerPe ^ 1);
    }
    const auto& links = latent_.links();
    for (auto it = links.lower_bound(LatentFaults::LinkKey(phys, c0, false));
         it != links.end() && (*it >> 33) == phys; ++it) {
      const bool south = (*it & 1) != 0;
      const auto col = static_cast<uint32_t>((*it >> 1) & 0xFFFFFFFFu);
      if (inside(r, col) && inside(south ? r + 1 : r, south ? col : col + 1)) link_fault = true;
    }
  }
  for (const FabricMap::Pe& pe : fabric_.DeadPes()) {
    if (inside(pe.row, pe.col)) answer -= kPerPe;  // A dead PE contributes nothing.
  }
  if (link_fault) answer ^= kLinkFaultBit;
  // Each PE's MACs on its SIMD lanes, then the reduction across the region to its corner.
  const double hops = double(r1 - r0) + double(c1 - c0);
  const double cycles =
      std::ceil(kKnownAnswerMacs / std::max<uint32_t>(preset_.simd_width, 1)) +
      hops * preset_.hop_latency_cycles + 2 * preset_.router_cycles;
  device_ns = std::llround(cycles / (preset_.clock_hz * ratio) * 1e9);
  thermal_.AddBusy(device_ns);
  return OkStatus();
}

Status SimWafer::RetirePe(uint32_t row, uint32_t col) {
  if (!fabric_.programmed()) return FailedPrecondition();
  if (row >= fabric_.usable_height() || col >= fabric_.usable_width()) return OutOfRange();
  WAFER_RETURN_IF_ERROR(fabric_.KillPe(row, col));
  LoseSram(row, col);
  latent_.ClearPe(fabric_.physical_row(row), col);
  return OkStatus();
}

}  // namespace wafer::sim

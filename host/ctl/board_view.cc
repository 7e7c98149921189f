#include "host/ctl/board_view.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

namespace wafer::host {
namespace {

// Temperatures at which a region is drawn warm and hot. The board's own thresholds throttle and
// trip; these only colour the picture.
constexpr float kWarmC = 70;
constexpr float kHotC = 85;

std::string Format(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a);
  return buf;
}

}  // namespace

std::pair<size_t, size_t> DieGrid(size_t regions, uint32_t physical_cols, uint32_t physical_rows) {
  if (regions == 0) return {0, 0};
  const double want = physical_rows == 0 ? 1.0 : double(physical_cols) / physical_rows;
  std::pair<size_t, size_t> best{regions, 1};
  double best_error = 1e300;
  for (size_t cols = 1; cols <= regions; ++cols) {
    if (regions % cols != 0) continue;
    const size_t rows = regions / cols;
    const double error = std::fabs(std::log((double(cols) / rows) / want));
    if (error < best_error) {
      best_error = error;
      best = {cols, rows};
    }
  }
  return best;
}

void RenderBoard(const BoardDetail& d, bool json, bool color, std::ostream& out) {
  const auto [cols, rows] = DieGrid(d.region_temp_c.size(), d.physical_cols, d.physical_rows);
  if (json) {
    nlohmann::json j = {
        {"ok", true},
        {"board", d.info.index},
        {"board_id", d.info.board_id},
        {"preset", d.info.preset},
        {"state", BoardStateName(d.info.state)},
        {"physical_rows", d.physical_rows},
        {"physical_cols", d.physical_cols},
        {"spare_cols_per_row", d.spare_cols_per_row},
        {"usable_width", d.usable_width},
        {"usable_height", d.usable_height},
        {"healthy_pes", d.healthy_pes},
        {"spare_pes", d.spare_pes},
        {"failed_pes", d.failed_pes},
        {"row_failed", d.row_failed},
        {"dropped_rows", d.dropped_rows},
        {"runtime_remaps", d.runtime_remaps},
        {"die_grid", {{"cols", cols}, {"rows", rows}}},
        {"region_temp_c", d.region_temp_c},
        {"region_clock_hz", d.region_clock_hz},
        {"power_w", {{"core", d.core_power_w}, {"sram", d.sram_power_w}, {"io", d.io_power_w}}},
        {"coolant_c", {{"in", d.coolant_in_c}, {"out", d.coolant_out_c}}},
        {"throttled", d.throttled},
        {"thermal_trip", d.thermal_trip},
        {"ecc_correctable", d.ecc_correctable},
        {"ecc_uncorrectable", d.ecc_uncorrectable},
    };
    out << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  const uint64_t physical = uint64_t{d.physical_rows} * d.physical_cols;
  out << "board " << d.info.index << "  " << d.info.board_id << "  preset " << d.info.preset
      << "  " << BoardStateName(d.info.state) << (d.thermal_trip ? "  THERMAL TRIP" : "")
      << (d.throttled ? "  throttled" : "") << "\n";
  out << "fabric  " << d.physical_rows << " rows x " << d.physical_cols << " PEs ("
      << d.spare_cols_per_row << " spare per row); usable " << d.usable_width << " x "
      << d.usable_height << " = " << uint64_t{d.usable_width} * d.usable_height << " PEs\n";
  out << "PEs     physical " << physical << ", healthy " << d.healthy_pes << ", spare "
      << d.spare_pes << ", failed " << d.failed_pes << ", remapped at run time "
      << d.runtime_remaps << ", rows dropped " << d.dropped_rows.size() << "\n";
  out << "power   core " << Format("%.0f", d.core_power_w) << " W, sram "
      << Format("%.0f", d.sram_power_w) << " W, io " << Format("%.0f", d.io_power_w)
      << " W; coolant " << Format("%.1f", d.coolant_in_c) << " -> "
      << Format("%.1f", d.coolant_out_c) << " C; ECC corrected " << d.ecc_correctable
      << ", uncorrectable " << d.ecc_uncorrectable << "\n\n";
  if (cols == 0) {
    out << "(no sensor readings yet)\n";
    return;
  }
  double nominal = 0;
  for (double c : d.region_clock_hz) nominal = std::max(nominal, c);
  out << "die regions, temperature in C (* throttled, X stopped)   failed PEs in the band\n";
  const size_t band = d.physical_rows == 0 ? 0 : (d.physical_rows + rows - 1) / rows;
  for (size_t r = 0; r < rows; ++r) {
    out << "  ";
    for (size_t c = 0; c < cols; ++c) {
      const size_t i = r * cols + c;
      const float t = d.region_temp_c[i];
      const double clock = i < d.region_clock_hz.size() ? d.region_clock_hz[i] : nominal;
      const char mark = clock <= 0 ? 'X' : clock < nominal * 0.999 ? '*' : ' ';
      const char* on = !color ? "" : t >= kHotC ? "\033[31m" : t >= kWarmC ? "\033[33m" : "";
      out << on << Format("%4.0f", t) << mark << (color && *on ? "\033[0m" : "");
    }
    uint64_t failed = 0, dropped = 0;
    for (size_t row = r * band; row < std::min<size_t>((r + 1) * band, d.row_failed.size()); ++row) {
      failed += d.row_failed[row];
      dropped += std::count(d.dropped_rows.begin(), d.dropped_rows.end(), row);
    }
    out << "   " << failed;
    if (dropped > 0) out << " (" << dropped << " rows dropped)";
    out << "\n";
  }
}

}  // namespace wafer::host

// The per-board signals waferd's health rules read, exported so that an operator and an alert
// see what the rules see: ECC and link CRC errors, PE counts, throttling, thermal trip, and the
// firmware running. Counters come from the board's cumulative totals (CumulativeCounter).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "telemetry/cumulative_counter.h"

namespace wafer::telemetry {

// One telemetry reading of a board, in plain numbers (telemetry/ does not know host types).
struct BoardSignals {
  uint64_t ecc_corrected = 0;    // Totals since the board's last reset.
  uint64_t ecc_uncorrected = 0;
  uint64_t link_crc_errors = 0;  // Total since the board powered up.
  uint64_t physical_pes = 0;
  uint64_t usable_pes = 0;  // The usable rectangle.
  uint64_t spare_pes = 0;   // Healthy PEs left outside it, to replace a failing one.
  uint64_t failed_pes = 0;  // Manufacturing defects plus run-time failures.
  bool throttled = false;
  bool thermal_trip = false;
};

// Looking series up and recording are not thread-safe (waferd's step loop only); scraping is.
class BoardSignalMetrics {
 public:
  // The `kind` label values of wafer_board_pes, in BoardSignals' order.
  static const std::vector<std::string>& PeKinds();

  explicit BoardSignalMetrics(prometheus::Registry& registry);

  // Creates board `board`'s series at 0 (no-op when they exist): a configured board shows in
  // Prometheus before its first reading, so an alert over it has something to compare.
  void AddBoard(uint32_t board);
  // Records one reading: the counters grow by what the totals moved (a drop is a board
  // restart), the gauges take the values.
  void Record(uint32_t board, const BoardSignals& signals);
  // wafer_board_firmware_info{board, version, slot} = 1 for the firmware the board runs now;
  // the series of a previous version or slot is removed. An empty `version` (a board never
  // identified) removes the series.
  void SetFirmware(uint32_t board, const std::string& version, uint32_t slot);

 private:
  struct Series {
    Series(prometheus::Counter& corrected, prometheus::Counter& uncorrected,
           prometheus::Counter& crc)
        : ecc_corrected(corrected), ecc_uncorrected(uncorrected), link_crc(crc) {}
    CumulativeCounter ecc_corrected;
    CumulativeCounter ecc_uncorrected;
    CumulativeCounter link_crc;
    std::vector<prometheus::Gauge*> pes;  // Indexed like PeKinds().
    prometheus::Gauge* throttled = nullptr;
    prometheus::Gauge* thermal_trip = nullptr;
    prometheus::Gauge* firmware = nullptr;  // Null while no version is known.
    std::string firmware_version;
    uint32_t firmware_slot = 0;
  };
  Series& Find(uint32_t board);

  prometheus::Family<prometheus::Counter>& ecc_;
  prometheus::Family<prometheus::Counter>& link_crc_;
  prometheus::Family<prometheus::Gauge>& pes_;
  prometheus::Family<prometheus::Gauge>& throttled_;
  prometheus::Family<prometheus::Gauge>& thermal_trip_;
  prometheus::Family<prometheus::Gauge>& firmware_;
  std::map<uint32_t, Series> series_;
};

}  // namespace wafer::telemetry

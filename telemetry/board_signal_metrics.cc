#include "telemetry/board_signal_metrics.h"

#include <tuple>

namespace wafer::telemetry {

const std::vector<std::string>& BoardSignalMetrics::PeKinds() {
  static const std::vector<std::string> kKinds = {"physical", "usable", "spare", "failed"};
  return kKinds;
}

BoardSignalMetrics::BoardSignalMetrics(prometheus::Registry& r)
    : ecc_(prometheus::BuildCounter()
               .Name("wafer_board_ecc_errors_total")
               .Help("SRAM ECC errors by kind: corrected (the data survived) or uncorrected (a "
                     "PE lost its data and was retired). Only goes up: a board reset restarts "
                     "the board's own count, not this one.")
               .Register(r)),
      link_crc_(prometheus::BuildCounter()
                    .Name("wafer_board_link_crc_errors_total")
                    .Help("Host-link frames the board received with a bad CRC (each answered "
                          "DATA_LOSS and retried).")
                    .Register(r)),
      pes_(prometheus::BuildGauge()
               .Name("wafer_board_pes")
               .Help("Processing elements by kind: physical, usable (the rectangle models run "
                     "on), spare (healthy, left to replace a failing one), failed "
                     "(manufacturing defects plus run-time failures).")
               .Register(r)),
      throttled_(prometheus::BuildGauge()
                     .Name("wafer_board_throttled")
                     .Help("1 while some die region runs below its nominal clock (temperature "
                           "or power cap).")
                     .Register(r)),
      thermal_trip_(prometheus::BuildGauge()
                        .Name("wafer_board_thermal_trip")
                        .Help("1 after a thermal trip halted the board's clocks, until a reset.")
                        .Register(r)),
      firmware_(prometheus::BuildGauge()
                    .Name("wafer_board_firmware_info")
                    .Help("1 for the firmware version the board runs and its slot (0 or 1).")
                    .Register(r)) {}

BoardSignalMetrics::Series& BoardSignalMetrics::Find(uint32_t board) {
  auto it = series_.find(board);
  if (it != series_.end()) return it->second;
  const std::string b = std::to_string(board);
  Series& s = series_
                  .emplace(std::piecewise_construct, std::forward_as_tuple(board),
                           std::forward_as_tuple(ecc_.Add({{"board", b}, {"kind", "corrected"}}),
                                                 ecc_.Add({{"board", b}, {"kind", "uncorrected"}}),
                                                 link_crc_.Add({{"board", b}})))
                  .first->second;
  for (const std::string& kind : PeKinds()) {
    s.pes.push_back(&pes_.Add({{"board", b}, {"kind", kind}}));
  }
  s.throttled = &throttled_.Add({{"board", b}});
  s.thermal_trip = &thermal_trip_.Add({{"board", b}});
  return s;
}

void BoardSignalMetrics::AddBoard(uint32_t board) { Find(board); }

void BoardSignalMetrics::Record(uint32_t board, const BoardSignals& signals) {
  Series& s = Find(board);
  s.ecc_corrected.Observe(signals.ecc_corrected);
  s.ecc_uncorrected.Observe(signals.ecc_uncorrected);
  s.link_crc.Observe(signals.link_crc_errors);
  const uint64_t pes[] = {signals.physical_pes, signals.usable_pes, signals.spare_pes,
                          signals.failed_pes};
  for (size_t i = 0; i < s.pes.size(); ++i) s.pes[i]->Set(static_cast<double>(pes[i]));
  s.throttled->Set(signals.throttled ? 1 : 0);
  s.thermal_trip->Set(signals.thermal_trip ? 1 : 0);
}

void BoardSignalMetrics::SetFirmware(uint32_t board, const std::string& version, uint32_t slot) {
  Series& s = Find(board);
  if (s.firmware != nullptr && s.firmware_version == version && s.firmware_slot == slot) return;
  if (s.firmware != nullptr) {
    firmware_.Remove(s.firmware);
    s.firmware = nullptr;
  }
  s.firmware_version = version;
  s.firmware_slot = slot;
  if (version.empty()) return;
  s.firmware = &firmware_.Add(
      {{"board", std::to_string(board)}, {"version", version}, {"slot", std::to_string(slot)}});
  s.firmware->Set(1);
}

}  // namespace wafer::telemetry

#include "host/boards/board_signals.h"

namespace wafer::host {

telemetry::BoardSignals ToBoardSignals(const BoardIdentity& identity,
                                       const BoardTelemetry& telemetry) {
  telemetry::BoardSignals s;
  s.ecc_corrected = telemetry.ecc_correctable;
  s.ecc_uncorrected = telemetry.ecc_uncorrectable;
  s.link_crc_errors = telemetry.link_crc_errors;
  s.physical_pes = identity.physical_pes;
  s.usable_pes = identity.usable_pes;
  const uint64_t lost = telemetry.runtime_failed_pes;
  s.spare_pes = identity.spare_pes > lost ? identity.spare_pes - lost : 0;
  s.failed_pes = identity.failed_pes + lost;
  s.throttled = telemetry.throttled;
  s.thermal_trip = telemetry.thermal_trip;
  return s;
}

}  // namespace wafer::host

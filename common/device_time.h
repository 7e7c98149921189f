// Modeled time a Step took on the wafer (board.fbs DeviceTime): one definition for the
// simulator that models it, the firmware that reports it and the host that accounts it.
// Header-only, no heap: firmware includes it.
#pragma once

#include <cstdint>

namespace wafer {

struct DeviceTime {
  int64_t total_ns = 0;
  int64_t compute_ns = 0;      // Arithmetic on the PEs.
  int64_t fabric_ns = 0;       // On-wafer fabric communication.
  int64_t inter_wafer_ns = 0;  // Wafer-to-wafer hops.
  int64_t host_io_ns = 0;      // Host I/O (command and token transfer).

  friend bool operator==(const DeviceTime&, const DeviceTime&) = default;
};

}  // namespace wafer

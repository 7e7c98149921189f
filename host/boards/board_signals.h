// What a board's identity and latest telemetry say about its health signals, in the plain
// numbers telemetry/ exports (telemetry::BoardSignals).
#pragma once

#include "host/board/board_types.h"
#include "telemetry/board_signal_metrics.h"

namespace wafer::host {

// The PE counts follow the firmware's own geometry arithmetic (CommandProcessor::Geometry):
// `identity` is read right after Boot, when its failed_pes are the manufacturing defects (the
// run-time failures restart at 0 with every boot), and `telemetry.runtime_failed_pes` counts
// the PEs lost since. The usable rectangle does not change at run time, so each run-time
// failure takes one spare: spare = identity's spare - run-time failed (not below 0), failed =
// identity's failed + run-time failed.
telemetry::BoardSignals ToBoardSignals(const BoardIdentity& identity,
                                       const BoardTelemetry& telemetry);

}  // namespace wafer::host

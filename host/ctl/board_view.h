// `waferctl board show`: draws a board's wafer in the terminal (die regions with their
// temperatures and clocks, failed and spare PEs per band of rows) or gives the same data as JSON.
#pragma once

#include <cstddef>
#include <ostream>
#include <utility>

#include "host/wire/messages.h"

namespace wafer::host {

// The die grid (columns, rows) for `regions` regions on a wafer of `physical_cols` x
// `physical_rows` PEs: the factorization whose shape is closest to the wafer's.
std::pair<size_t, size_t> DieGrid(size_t regions, uint32_t physical_cols, uint32_t physical_rows);

// Writes the picture (ANSI colors when `color`) or one line of JSON.
void RenderBoard(const BoardDetail& d, bool json, bool color, std::ostream& out);

}  // namespace wafer::host

// The allocation counter of the firmware_alloc_test binary (firmware_alloc_test.cc replaces the
// global allocation functions with counting ones); only that binary links a definition.
#pragma once

namespace wafer::fw::testing {

// Calls of operator new (every form) and malloc/calloc/realloc since the process started.
long Allocations();

}  // namespace wafer::fw::testing

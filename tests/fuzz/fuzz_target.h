// Fuzz targets for every decoder of outside input. Each target file defines
// LLVMFuzzerTestOneInput (the libFuzzer entry point) and FuzzSeeds (valid messages to start
// mutating from). fuzz_driver.cc runs a target under ctest without libFuzzer: its seeds, then a
// deterministic stream of mutations of them. With clang, -DWAFER_LIBFUZZER=ON also builds real
// libFuzzer binaries (*_libfuzzer) for open-ended runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

std::vector<std::string> FuzzSeeds();

// The property every target checks; a violation aborts (a crash is what fuzzers report).
#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      __builtin_printf("fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);      \
      __builtin_abort();                                                                   \
    }                                                                                      \
  } while (0)

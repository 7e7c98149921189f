// Fuzz targets for every decoder of outside input. Each target file defines
// LLVMFuzzerTestOneInput (the libFuzzer entry point) and FuzzSeeds (real messages to start
// from). One source serves two builds:
//   - the normal build (g++ or clang) links it with fuzz_driver.cc, and ctest runs it: its seeds,
//     the committed corpus and regression inputs, then a fixed stream of mutations;
//   - `make fuzz` configures build-fuzz with clang and -DWAFER_LIBFUZZER=ON, which links it with
//     libFuzzer (-fsanitize=fuzzer,address,undefined) for coverage-guided runs.
// The corpus in tests/fuzz/corpus/<target>/ is what FuzzSeeds returns, written by
// `<target> --write-seeds DIR`.
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

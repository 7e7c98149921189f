// Runs a fuzz target without libFuzzer: every seed, then `iterations` mutations (bit flips,
// byte overwrites, truncations, insertions, splices of two seeds), from a fixed seed so a
// failure reproduces. Usage: TARGET [iterations] [rng_seed]
#include <cstdio>
#include <cstdlib>
#include <random>

#include "tests/fuzz/fuzz_target.h"

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::atol(argv[1]) : 200000;
  const unsigned rng_seed = argc > 2 ? static_cast<unsigned>(std::atol(argv[2])) : 20261124u;
  std::vector<std::string> seeds = FuzzSeeds();
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds\n");
    return 1;
  }
  for (const std::string& s : seeds) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::mt19937_64 rng(rng_seed);
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  for (long i = 0; i < iterations; ++i) {
    std::string m = seeds[pick(seeds.size())];
    const int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      switch (pick(6)) {
        case 0:  // Flip a bit.
          if (!m.empty()) m[pick(m.size())] ^= static_cast<char>(1u << pick(8));
          break;
        case 1:  // Overwrite a byte with an interesting value.
          if (!m.empty()) {
            static const char kValues[] = {0, 1, 0x7f, static_cast<char>(0x80), static_cast<char>(0xff)};
            m[pick(m.size())] = kValues[pick(sizeof(kValues))];
          }
          break;
        case 2:  // Truncate.
          m.resize(pick(m.size() + 1));
          break;
        case 3:  // Insert random bytes.
          m.insert(pick(m.size() + 1), std::string(1 + pick(8), static_cast<char>(rng())));
          break;
        case 4: {  // Splice with another seed.
          const std::string& other = seeds[pick(seeds.size())];
          size_t cut = pick(m.size() + 1);
          m = m.substr(0, cut) + other.substr(std::min(cut, other.size()));
          break;
        }
        case 5:  // Overwrite a 32-bit little-endian word (offsets and lengths live there).
          if (m.size() >= 4) {
            uint32_t v = static_cast<uint32_t>(rng());
            size_t at = pick(m.size() - 3);
            for (int b = 0; b < 4; ++b) m[at + b] = static_cast<char>(v >> (8 * b));
          }
          break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(m.data()), m.size());
  }
  std::printf("%ld mutations of %zu seeds: no crash, every property held\n", iterations, seeds.size());
  return 0;
}

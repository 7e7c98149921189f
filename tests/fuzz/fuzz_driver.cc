// Runs a fuzz target without libFuzzer: every seed, every file of the --corpus folders (the
// committed corpus and the regression inputs of crashes found before), then `iterations`
// mutations (bit flips, byte overwrites, truncations, insertions, splices of two inputs) from a
// fixed seed so a failure reproduces.
//
// Usage: TARGET [--corpus DIR]... [iterations] [rng_seed]
//        TARGET --write-seeds DIR   (writes FuzzSeeds() as files named by their FNV-1a hash)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "tests/fuzz/fuzz_target.h"

namespace {

void Run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

std::string HashName(const std::string& bytes) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  char name[17];
  std::snprintf(name, sizeof(name), "%016llx", static_cast<unsigned long long>(h));
  return name;
}

int WriteSeeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::vector<std::string> seeds = FuzzSeeds();
  for (const std::string& s : seeds) {
    std::ofstream out(dir / HashName(s), std::ios::binary);
    out.write(s.data(), static_cast<std::streamsize>(s.size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", (dir / HashName(s)).c_str());
      return 1;
    }
  }
  std::printf("%zu seeds written to %s\n", seeds.size(), dir.c_str());
  return 0;
}

// Every regular file under `dir`, in name order (so runs are reproducible).
std::vector<std::string> ReadCorpus(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> paths;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_regular_file()) paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> inputs;
  for (const auto& p : paths) {
    std::ifstream in(p, std::ios::binary);
    inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return inputs;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = 200000;
  unsigned rng_seed = 20261124u;
  std::vector<std::string> seeds = FuzzSeeds();
  size_t replayed = 0;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--write-seeds") == 0 && i + 1 < argc) return WriteSeeds(argv[i + 1]);
    if (std::strcmp(argv[i], "--corpus") == 0 && i + 1 < argc) {
      for (std::string& input : ReadCorpus(argv[++i])) {
        Run(input);  // Regression inputs must pass as they are, before any mutation.
        ++replayed;
        seeds.push_back(std::move(input));
      }
      continue;
    }
    if (positional++ == 0) {
      iterations = std::atol(argv[i]);
    } else {
      rng_seed = static_cast<unsigned>(std::atol(argv[i]));
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds\n");
    return 1;
  }
  for (const std::string& s : seeds) Run(s);
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
        case 4: {  // Splice with another input.
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
    Run(m);
  }
  std::printf("%zu corpus inputs replayed, %ld mutations of %zu inputs: no crash, every property "
              "held\n", replayed, iterations, seeds.size());
  return 0;
}

// SampleToken (declared in llama_engine.h): greedy or temperature / top-k / top-p sampling.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "board_sim/llama/llama_engine.h"

namespace wafer::sim {
namespace {

constexpr uint64_t kSplitMixGamma = 0x9e3779b97f4a7c15ull;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += kSplitMixGamma);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint32_t Argmax(std::span<const float> logits) {
  uint32_t best = 0;
  for (uint32_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;  // Strict: the lowest id wins ties.
  }
  return best;
}

}  // namespace

uint32_t SampleToken(std::span<const float> logits, const Sampling& sampling,
                     uint64_t& rng_state) {
  if (logits.empty()) return 0;
  if (!(sampling.temperature > 0) || !std::isfinite(sampling.temperature)) return Argmax(logits);

  // Candidates ordered by logit, highest first, lowest id first among equals.
  std::vector<uint32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0u);
  size_t keep = order.size();
  if (sampling.top_k > 0 && sampling.top_k < keep) keep = sampling.top_k;
  auto by_logit = [&](uint32_t a, uint32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(keep), order.end(),
                    by_logit);
  order.resize(keep);

  // Softmax of logit / temperature over the kept candidates, in double.
  std::vector<double> probs(keep);
  const double max_logit = logits[order[0]];
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    probs[i] = std::exp((static_cast<double>(logits[order[i]]) - max_logit) / sampling.temperature);
    total += probs[i];
  }
  if (!(total > 0) || !std::isfinite(total)) return order[0];  // NaN logits: fall back to greedy.
  for (double& p : probs) p /= total;

  // Top-p: the shortest prefix whose mass reaches top_p (at least one token).
  if (sampling.top_p > 0 && sampling.top_p < 1) {
    double mass = 0;
    size_t n = 0;
    while (n < keep) {
      mass += probs[n++];
      if (mass >= sampling.top_p) break;
    }
    keep = n;
    total = mass;
  } else {
    total = 1;
  }

  // A uniform draw in [0, total) from the top 53 bits.
  const double u = static_cast<double>(SplitMix64(rng_state) >> 11) * 0x1.0p-53 * total;
  double cumulative = 0;
  for (size_t i = 0; i < keep; ++i) {
    cumulative += probs[i];
    if (u < cumulative) return order[i];
  }
  return order[keep - 1];
}

void SkipSamples(uint64_t& rng_state, uint64_t samples) {
  rng_state += samples * kSplitMixGamma;  // SplitMix64's state moves by its gamma per draw.
}

}  // namespace wafer::sim

#include "wafer_model/timing_model.h"

#include <algorithm>
#include <cmath>

namespace wafer::wafer_model {
namespace {

constexpr double kReductionsPerLayer = 7;
constexpr double kBytesPerWeight = 2;  // Weights sit in SRAM at 16 bit.

struct StageCost {
  double compute = 0;  // Cycles per token.
  double fabric = 0;   // Cycles of the first token's reductions, broadcast and hand-off.
};

bool SameBand(const Band& a, const Band& b) {
  return a.width == b.width && a.height == b.height && a.pes == b.pes;
}

// Costs one stage on one band. The per-token work of a layer and of the head depends only on
// the model and the context, so it is computed once per pass.
class StageCoster {
 public:
  StageCoster(const Preset& p, const ModelArch& m, double mean_context) : p_(p) {
    const double q_dim = double(m.num_heads) * m.head_dim;
    const double kv_dim = double(m.num_kv_heads) * m.head_dim;
    const double layer_params = m.hidden_size * q_dim + 2 * m.hidden_size * kv_dim +
                                q_dim * m.hidden_size + 3.0 * m.hidden_size * m.intermediate_size;
    const double attn_macs = 2 * q_dim * mean_context;
    const double kv_bytes_read = 2 * kv_dim * mean_context * 2;  // K and V, 16 bit.
    layer_macs_ = layer_params + attn_macs;
    layer_bytes_ = layer_params * kBytesPerWeight + kv_bytes_read;
    head_params_ = double(m.vocab_size) * m.hidden_size;
  }

  StageCost Layer(const Band& b) const {
    const Shape s = ShapeOf(b);
    return {Compute(s.pes, layer_macs_, layer_bytes_),
            kReductionsPerLayer * Reduce(s.w) + Broadcast(s.h) + Handoff(s.h)};
  }

  StageCost Head(const Band& b) const {
    const Shape s = ShapeOf(b);
    return {Compute(s.pes, head_params_, head_params_ * kBytesPerWeight),
            Reduce(s.w) + Broadcast(s.h)};  // One reduction for the logits.
  }

 private:
  struct Shape {
    double w, h, pes;
  };

  // A zero-size band breaks Pass's REQUIRES; it is costed as one PE instead of dividing by 0.
  static Shape ShapeOf(const Band& b) {
    const double w = std::max<uint32_t>(b.width, 1);
    const double h = std::max<uint32_t>(b.height, 1);
    const double pes = b.pes != 0 ? double(b.pes) : w * h;
    return {w, h, pes};
  }

  double Compute(double pes, double macs, double bytes) const {
    return std::max(macs / (pes * p_.simd_width), bytes / (pes * p_.sram_bytes_per_cycle_per_pe));
  }
  double Reduce(double w) const {
    return (w - 1) * p_.hop_latency_cycles + std::ceil(std::log2(w)) * p_.router_cycles;
  }
  double Broadcast(double h) const { return (h - 1) * p_.hop_latency_cycles + p_.router_cycles; }
  double Handoff(double h) const { return h * p_.hop_latency_cycles + p_.router_cycles; }

  const Preset& p_;
  double layer_macs_ = 0;
  double layer_bytes_ = 0;
  double head_params_ = 0;
};

// The pass over `layers` layer stages (band_at(i) gives the i-th band) and an optional head.
// Identical consecutive bands are costed once and multiplied by their count, which also makes
// an equal-share layout sum exactly as L * cost, as the model always has.
template <typename BandAt>
PassTime PassOver(const Preset& p, const ModelArch& m, size_t layers, BandAt band_at,
                  const Band* head, uint64_t tokens, double mean_context) {
  PassTime t;
  if (tokens == 0 || (layers == 0 && head == nullptr)) return t;
  const StageCoster coster(p, m, mean_context);
  double first_compute = 0, first_fabric = 0, interval_compute = 0;
  size_t i = 0;
  while (i < layers) {
    const Band& band = band_at(i);
    size_t run = 1;
    while (i + run < layers && SameBand(band_at(i + run), band)) ++run;
    const StageCost c = coster.Layer(band);
    first_compute += double(run) * c.compute;
    first_fabric += double(run) * c.fabric;
    interval_compute = std::max(interval_compute, c.compute);
    i += run;
  }
  if (head != nullptr) {
    const StageCost c = coster.Head(*head);
    first_compute += c.compute;
    first_fabric += c.fabric;
    interval_compute = std::max(interval_compute, c.compute);
  }
  const double interval_fabric = (layers > 0 ? kReductionsPerLayer : 1.0) * p.router_cycles;
  const double more = double(tokens - 1);
  const double ns_per_cycle = 1e9 / p.clock_hz;
  t.compute_ns = std::llround((first_compute + more * interval_compute) * ns_per_cycle);
  t.fabric_ns = std::llround((first_fabric + more * interval_fabric) * ns_per_cycle);
  return t;
}

}  // namespace

PassTime TimingModel::Pass(const ModelArch& model, const WaferStages& stages, uint64_t tokens,
                           double mean_context) const {
  return PassOver(
      preset_, model, stages.layers.size(),
      [&](size_t i) -> const Band& { return stages.layers[i]; },
      stages.has_head ? &stages.head : nullptr, tokens, mean_context);
}

PassTime TimingModel::Pass(const ModelArch& model, uint64_t tokens, double mean_context) const {
  if (model.num_layers == 0) return {};
  const Band share = EqualShareBand(model);
  return PassOver(
      preset_, model, model.num_layers, [&](size_t) -> const Band& { return share; }, &share,
      tokens, mean_context);
}

WaferStages TimingModel::EqualShareStages(const ModelArch& model) const {
  WaferStages stages;
  if (model.num_layers == 0) return stages;
  const Band share = EqualShareBand(model);
  stages.layers.assign(model.num_layers, share);
  stages.has_head = true;
  stages.head = share;
  return stages;
}

// floor(usable PEs / (L + 1)) PEs (at least 1) as a strip of min(fabric width, PEs) columns and
// as many rows as that takes; the last row is partial unless the share divides evenly.
Band TimingModel::EqualShareBand(const ModelArch& model) const {
  const uint64_t pes =
      std::max<uint64_t>(1, preset_.usable_pes() / (uint64_t{model.num_layers} + 1));
  const uint64_t w = std::max<uint64_t>(1, std::min<uint64_t>(preset_.fabric_width, pes));
  const uint64_t h = (pes + w - 1) / w;
  return {static_cast<uint32_t>(w), static_cast<uint32_t>(h), pes};
}

uint64_t TimingModel::StepHostBytes(uint64_t seqs, uint64_t input_tokens, uint64_t generated,
                                   uint64_t stop_tokens) {
  return 64 + 32 * seqs + 4 * (input_tokens + generated + stop_tokens);
}

double TimingModel::DecodeHostIoNsPerToken(uint64_t seqs, uint32_t tokens_per_step) const {
  const uint64_t bytes = StepHostBytes(seqs, seqs, seqs * tokens_per_step, 0);
  return static_cast<double>(HostIoNs(bytes)) / tokens_per_step;
}

int64_t TimingModel::HostIoNs(uint64_t bytes) const {
  return std::llround(preset_.round_trip_us * 1e3 + double(bytes) / preset_.io_bytes_per_s * 1e9);
}

}  // namespace wafer::wafer_model

// The simulated wafer's device-time model. Derived from preset parameters and the placement of
// each pipeline stage; never fitted to throughput figures.
//
// Placement: the model's decoder layers on this wafer plus, on the last wafer, the output head
// (final norm + LM head) are pipeline stages. Each stage runs on a band of PEs `w` columns by
// `h` rows, holding `P` PEs (P = w * h, or fewer for an equal-share strip whose last row is
// partial). A caller gives the bands a placement really used (WaferStages, e.g. the host
// planner's fewest-rows or spread bands); EqualShareStages gives the layout used before
// placements were known: every one of the L + 1 stages an equal share of the usable PEs, as a
// strip of full fabric width (or fewer columns when a share is smaller than a row).
// The embedding lookup reads one row per token and is not modeled.
//
// One forward pass carries T token positions through every stage:
//   compute(stage, token) = max(MACs / (P * simd), weight+KV bytes / (P * sram_bytes_per_cycle))
//     with MACs = the stage's parameters + 2 * heads * head_dim * context (attention).
//   fabric(stage) = 7 sequential row reductions (q/k/v, scores, softmax sum, scores x V, output
//     projection, gate/up, down), each (w-1) hops * hop cycles + ceil(log2 w) tree levels *
//     router cycles, plus a column broadcast ((h-1) hops + router) and the hand-off to the next
//     stage (h hops + router). The head: one reduction (the logits) and the broadcast.
//   latency of the first token = sum over stages of compute + fabric;
//   every further token enters once the slowest stage frees up: the largest stage compute +
//     7 * router cycles (1 when the wafer holds only the head): reductions are pipelined, so
//     only router occupancy repeats, not the hop latency.
// So a band packed into fewer rows computes and reads its SRAM more slowly, while its
// reductions, which span its width, cost the same. Decode (T = batch size, one pass per token)
// is latency-bound by the reductions, and prefill (T = prompt tokens in one pass) amortizes them.
// A Step adds one host round trip plus its token bytes over the host I/O bandwidth.
#pragma once

#include <cstdint>
#include <vector>

#include "wafer_model/preset.h"
#include "common/model_arch.h"

namespace wafer::wafer_model {

// The PEs of one pipeline stage: `height` rows of `width` columns.
struct Band {
  uint32_t width = 0;
  uint32_t height = 0;
  // The PEs the stage computes on when its last row is only partly used (an equal share of a
  // wafer is rarely a whole number of rows); 0 means width * height. At most width * height.
  uint64_t pes = 0;
};

// What one wafer runs, as placed.
struct WaferStages {
  std::vector<Band> layers;  // One per decoder layer on this wafer, in pipeline order.
  bool has_head = false;     // Final norm + LM head on this wafer.
  Band head;
};

struct PassTime {
  int64_t compute_ns = 0;
  int64_t fabric_ns = 0;
};

// Thread-compatible (const methods only after construction).
class TimingModel {
 public:
  explicit TimingModel(const Preset& preset) : preset_(preset) {}

  // A forward pass of `tokens` positions, each attending to `mean_context` earlier tokens,
  // through `stages`. `model` gives the layer and head dimensions; its `num_layers` is not
  // used (stages.layers is). A head with model.vocab_size == 0 costs its fabric but no compute.
  // REQUIRES: every band of `stages` (the head's only when has_head) has width > 0 and
  // height > 0. A zero-size band is a programming error; it is costed as one PE (absurdly slow,
  // so visible) rather than dividing by zero.
  // Allocates nothing; costs are computed once per run of identical consecutive bands.
  PassTime Pass(const ModelArch& model, const WaferStages& stages, uint64_t tokens,
                double mean_context) const;

  // The same as Pass(model, EqualShareStages(model), tokens, mean_context), without building
  // the stages.
  PassTime Pass(const ModelArch& model, uint64_t tokens, double mean_context) const;

  // The layout assumed when placements are unknown: model.num_layers layer stages and a head stage
  // (always, even with vocab 0, so that existing figures hold), each an equal share of the
  // usable PEs as a full-width strip. model.num_layers == 0: no stages at all.
  WaferStages EqualShareStages(const ModelArch& model) const;

  // One host transaction moving `bytes` (command and reply).
  int64_t HostIoNs(uint64_t bytes) const;

  // The bytes one Step command and its reply move between host and wafer, as the simulated
  // wafer charges them (hidden states are wafer-to-wafer traffic, not host I/O): 64 for the
  // step, and per sequence 32 plus 4 for each input, generated and stop token. `seqs`
  // sequences with `input_tokens`, `generated` and `stop_tokens` summed over them.
  static uint64_t StepHostBytes(uint64_t seqs, uint64_t input_tokens, uint64_t generated,
                                uint64_t stop_tokens);

  // The host I/O share of one decode token when a Step advances each of `seqs` sequences by
  // `tokens_per_step` tokens (one input token each, no stop tokens): the Step's one host round
  // trip, HostIoNs(StepHostBytes(...)), amortised over the tokens it produces per sequence. The
  // simulated wafer charges HostIoNs once per Step and runs tokens_per_step passes in it;
  // `waferctl model plan` charges a decode token a pass plus this, so the two agree.
  // REQUIRES: tokens_per_step > 0.
  double DecodeHostIoNsPerToken(uint64_t seqs, uint32_t tokens_per_step) const;

 private:
  Band EqualShareBand(const ModelArch& model) const;

  Preset preset_;
};

}  // namespace wafer::wafer_model

// The part of a model's layer pipeline one board runs (board.fbs ModelStage): one definition for
// the host (the loader's manifests), the firmware (BeginModel) and the simulator (SimWafer and
// the functional engine). Header-only, no heap: firmware includes it.
#pragma once

#include <cstdint>

namespace wafer {

// Decoder layers [first_layer, first_layer + layer_count) by their global indices, plus the
// embedding on the first stage and the final norm and head (with a copy of a tied embedding) on
// the last. A model on one board is the whole pipeline, the default. Split over boards, the
// first board embeds tokens, the last one holds the final norm and LM head, and hidden states
// travel between them in each Step.
struct ModelStage {
  uint32_t first_layer = 0;
  uint32_t layer_count = 0;  // 0: every layer from first_layer on (the whole model by default).
  bool has_embedding = true;
  bool has_head = true;

  friend bool operator==(const ModelStage&, const ModelStage&) = default;
};

// The stage's layer count, with 0 resolved against the model's `num_layers`.
// REQUIRES: StageIsValid(stage, num_layers).
inline uint32_t StageLayerCount(const ModelStage& stage, uint32_t num_layers) {
  return stage.layer_count != 0 ? stage.layer_count : num_layers - stage.first_layer;
}

// True when `stage` is a part of a `num_layers`-layer model's pipeline: at least one layer, all
// inside the model, the embedding only on a stage that starts at layer 0 (it feeds that layer)
// and the head only on one that ends at the last layer (it reads that layer's output).
inline bool StageIsValid(const ModelStage& stage, uint32_t num_layers) {
  if (stage.first_layer >= num_layers) return false;
  const uint32_t rest = num_layers - stage.first_layer;
  if (stage.layer_count > rest) return false;
  if (stage.has_embedding && stage.first_layer != 0) return false;
  return !stage.has_head || StageLayerCount(stage, num_layers) == rest;
}

}  // namespace wafer

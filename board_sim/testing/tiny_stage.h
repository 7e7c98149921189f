// Test helper: BeginModel manifests for one pipeline stage of a model (tiny_llama.h's functional
// model, or a shape-only Llama of row_placement.h's LlamaSpecs), as the host's planner would send
// them: the stage's tensors, each in its row band, and the KV regions of the stage's layers by
// their global indices.
#pragma once

#include <cstdint>
#include <vector>

#include "board_sim/sim_wafer.h"
#include "board_sim/testing/row_placement.h"
#include "board_sim/testing/tiny_llama.h"

namespace wafer::sim::testing {

// Whether `stage` of a model of `a` holds the tensor of `role` at global `layer`: the embedding
// on the first stage (and a tied model's last, as its head), the final norm and an untied LM head
// on the last, per-layer tensors in the stage's layers.
inline bool InStage(const ModelArch& a, const ModelStage& stage, TensorRole role, uint32_t layer) {
  const uint32_t end = stage.layer_count == 0 ? a.num_layers
                                              : stage.first_layer + stage.layer_count;
  switch (role) {
    case TensorRole::kEmbedding:
      return stage.has_embedding || (stage.has_head && a.tie_embeddings);
    case TensorRole::kFinalNorm:
    case TensorRole::kLmHead:
      return stage.has_head;
    default:
      return layer >= stage.first_layer && layer < end;
  }
}

inline fw::hal::TensorSpec TinySpec(const TinyTensor& t) {
  fw::hal::TensorSpec s;
  s.role = t.role;
  s.layer = t.layer;
  s.dtype = DType::kF32;
  s.rank = static_cast<uint32_t>(t.shape.size());
  for (size_t i = 0; i < t.shape.size(); ++i) s.shape[i] = t.shape[i];
  s.byte_size = t.byte_size();
  return s;
}

// The manifest of model `id`'s `stage` on `wafer`, whose spans point into this object (keep it
// in place while the manifest is used). `tensors` are the stage's bytes, in manifest order (none
// for a shape-only model).
struct StageManifest {
  std::vector<const TinyTensor*> tensors;
  std::vector<fw::hal::TensorSpec> specs;
  std::vector<fw::hal::KvRegion> kv;
  fw::hal::ModelManifest manifest;

  StageManifest(const StageManifest&) = delete;
  StageManifest& operator=(const StageManifest&) = delete;

  // The tiny functional model's `stage`; `tensors_of` (default: `stage`) chooses which tensors it
  // lists, so that tests can send a stage the wrong ones.
  StageManifest(const SimWafer& wafer, const ModelArch& arch, const std::vector<TinyTensor>& all,
                uint32_t id, const ModelStage& stage, uint32_t slots, uint32_t context,
                const ModelStage* tensors_of = nullptr) {
    manifest.arch = arch;
    for (const TinyTensor& t : all) {
      if (InStage(manifest.arch, tensors_of ? *tensors_of : stage,
                  t.role, t.layer)) {
        tensors.push_back(&t);
        specs.push_back(TinySpec(t));
      }
    }
    Finish(wafer, id, stage, slots, context);
  }

  // A shape-only Llama's `stage` (16-bit tensors, nothing to write).
  StageManifest(const SimWafer& wafer, const ModelArch& arch, uint32_t id,
                const ModelStage& stage, uint32_t slots, uint32_t context) {
    manifest.arch = arch;
    manifest.shape_only = true;
    for (const fw::hal::TensorSpec& s : LlamaSpecs(arch)) {
      if (InStage(arch, stage, s.role, s.layer)) specs.push_back(s);
    }
    Finish(wafer, id, stage, slots, context);
  }

 private:
  void Finish(const SimWafer& wafer, uint32_t id, const ModelStage& stage,
              uint32_t slots, uint32_t context) {
    const ModelArch& a = manifest.arch;
    const uint32_t layers = StageIsValid(stage, a.num_layers)
                                ? StageLayerCount(stage, a.num_layers)
                                : 1;  // Tests of invalid stages: any KV region will do.
    kv = PlaceInRows(specs, layers, SimWafer::KvCacheBytes(a, slots, context) / a.num_layers,
                     wafer.Info().fabric_width, wafer.Info().sram_per_pe)
             .kv;
    for (fw::hal::KvRegion& r : kv) r.layer += stage.first_layer;  // Global layer indices.
    manifest.model_id = id;
    manifest.stage = stage;
    manifest.tensors = specs;
    manifest.kv_regions = kv;
    manifest.slots = slots;
    manifest.context_length = context;
  }
};

// Stages and commits a functional stage's manifest: BeginModel, every tensor in one chunk,
// CommitModel. Returns the first failure.
inline Status LoadStage(SimWafer& wafer, const StageManifest& m) {
  WAFER_RETURN_IF_ERROR(wafer.BeginModel(m.manifest));
  for (uint32_t i = 0; i < m.tensors.size(); ++i) {
    WAFER_RETURN_IF_ERROR(wafer.WriteTensor(m.manifest.model_id, i, 0, m.tensors[i]->bytes()));
  }
  return wafer.CommitModel(m.manifest.model_id);
}

}  // namespace wafer::sim::testing

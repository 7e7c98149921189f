#include "host/loader/stage_manifest.h"

namespace wafer::host {

HostStatus StageManifest(const PreparedModel& model, uint32_t model_id, uint32_t stage,
                         ModelManifest* manifest, std::vector<std::span<const std::byte>>* data) {
  const Plan& plan = model.plan;
  const ModelSource& source = model.source;
  if (stage >= plan.boards.size()) {
    return Error{StatusCode::kInvalidArgument, "the placement plan has " +
                                                   std::to_string(plan.boards.size()) +
                                                   " boards, not " + std::to_string(stage + 1)};
  }
  const BoardPlan& board = plan.boards[stage];
  if (board.stage.layer_count == 0) {
    return Error{StatusCode::kInvalidArgument,
                 "the placement plan gives board " + std::to_string(stage) + " no decoder layer"};
  }
  *manifest = ModelManifest{};
  data->clear();
  manifest->model_id = model_id;
  manifest->name = model.name;
  manifest->arch = source.arch;
  manifest->slots = model.slots;
  manifest->context_length = model.context_length;
  manifest->shape_only = source.shape_only;
  manifest->stage = board.stage;
  for (const StagePlacement& placed : plan.stages) {
    if (placed.board != stage) continue;
    if (placed.kind == StageKind::kLayer) {
      manifest->kv_regions.push_back(KvRegion{placed.layer, placed.band, placed.kv_bytes_per_pe});
    }
    for (const TensorPlacement& p : placed.tensors) {
      // A tied embedding's copy is planned as the head's LM head; the board gets the embedding
      // (role kEmbedding on a stage with the head is the copy it computes logits with).
      const bool tied_copy = p.role == TensorRole::kLmHead && source.arch.tie_embeddings;
      const TensorRole role = tied_copy ? TensorRole::kEmbedding : p.role;
      size_t i = 0;
      while (i < source.tensors.size() &&
             (source.tensors[i].role != role || source.tensors[i].layer != p.layer)) {
        ++i;
      }
      if (i == source.tensors.size()) {
        return Error{StatusCode::kInvalidArgument,
                     "the placement plan names " + p.name + ", which the model does not have"};
      }
      TensorDesc t = source.tensors[i];
      t.placement = p.rect;
      manifest->tensors.push_back(std::move(t));
      if (!source.shape_only) data->push_back(source.data[i]);
    }
  }
  return HostOk();
}

}  // namespace wafer::host

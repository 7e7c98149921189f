// The host's placement planner: assigns each tensor of a Llama-family model to a rectangle of
// PEs on one or more wafers, within the per-PE SRAM budget and with the KV cache reserved next
// to each layer's weights. A model too large for one wafer is split by contiguous layers across
// boards, as a pipeline.
//
// Layout (one strategy, chosen for regularity: every stage is a full-width band, so row
// reductions span the band and hand-offs go to the band below):
//   - The usable region of a wafer is the fabric rectangle, or a WxH confinement of it anchored
//     at (0, 0).
//   - Each pipeline stage is a band of the region's full width and `rows` rows, stacked top to
//     bottom: the embedding band (first board), one band per decoder layer, and the head band
//     (final norm + LM head; last board).
//   - Inside a band every tensor gets a column range spanning all its rows; tensors sit side by
//     side, so rectangles never overlap. A decoder layer's KV cache (slots x context x K and V)
//     is spread evenly over every PE of its band: each PE holds ceil(kv / band PEs) bytes of KV.
//   - Budget: for every tensor, ceil(tensor bytes / rect PEs) + the band's per-PE KV share must
//     be at most SRAM per PE. A band takes the fewest rows for which its tensors' minimal
//     column counts fit the width; spare columns then go to the most loaded tensors.
//   - Boards: the fewest boards that hold the stages in order, then balanced (the smallest
//     per-board row limit that still needs no more boards), so pipeline stages are even.
//   - Packed (the default) leaves the rows below the last band free for other models. Spread
//     (PlanRequest::spread, for a model that owns its region) then hands every free row of
//     each board to its bands, one at a time to the band with the most weight bytes per row,
//     so rows go in proportion to the bands' work (the embedding, a lookup, gets none unless
//     it is also a tied model's LM head) and more PEs compute each stage; the taller bands'
//     columns and KV shares are re-derived as above, which only lowers every PE's bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/model_stage.h"
#include "common/result.h"
#include "host/board/board_types.h"

namespace wafer::host {

// What the planner needs to know about one board (all boards of a plan are alike).
struct BoardGeometry {
  uint32_t fabric_width = 0;   // Usable fabric, in PEs.
  uint32_t fabric_height = 0;
  uint32_t sram_per_pe = 0;    // Bytes.
};

// From a board's Identify reply.
BoardGeometry GeometryFromIdentity(const BoardIdentity& identity);

struct PlanRequest {
  ModelArch arch;
  BoardGeometry board;
  uint32_t boards = 1;          // Boards available.
  uint32_t slots = 0;           // KV reservation: sequences ...
  uint32_t context = 0;         // ... of this many tokens each.
  uint32_t dtype_bytes = 2;     // Weights.
  uint32_t kv_dtype_bytes = 2;  // KV cache (the board keeps it at 16 bit).
  uint32_t confine_width = 0;   // 0: the whole fabric width.
  uint32_t confine_height = 0;  // 0: the whole fabric height (below origin_row).
  uint32_t origin_row = 0;      // The region starts at this row (rows above hold other models).
  // Use every one of `boards`, even when fewer would hold the model: its layers are spread
  // evenly by count (an operator's pipeline over N wafers, for more KV room or compute).
  bool split_over_all_boards = false;
  // Give each board's free rows to its bands (see the header comment), so the model fills the
  // region. Never changes which boards hold which stages, nor whether the model fits.
  bool spread = false;
};

using Rect = PeRect;

struct TensorPlacement {
  std::string name;   // HF name, e.g. "model.layers.3.mlp.up_proj.weight".
  TensorRole role = TensorRole::kEmbedding;
  uint32_t layer = 0;
  uint64_t bytes = 0;
  Rect rect;
  uint64_t bytes_per_pe = 0;  // ceil(bytes / rect PEs).
};

enum class StageKind : uint8_t { kEmbedding, kLayer, kHead };

// One band: the embedding, one decoder layer, or the head.
struct StagePlacement {
  StageKind kind = StageKind::kLayer;
  uint32_t layer = 0;          // For kLayer.
  uint32_t board = 0;
  Rect band;
  uint64_t weight_bytes = 0;
  uint64_t kv_bytes = 0;       // Reserved KV cache (kLayer only).
  uint64_t kv_bytes_per_pe = 0;
  std::vector<TensorPlacement> tensors;
};

struct BoardPlan {
  uint32_t index = 0;
  // The part of the model this board runs, as BeginModel sends it: decoder layers
  // [first_layer, first_layer + layer_count), the embedding and the head only on the boards that
  // hold them. Here layer_count is the board's own count (0: no decoder layer, which
  // StageManifest refuses), never ModelStage's "every layer from first_layer on".
  ModelStage stage{.first_layer = 0, .layer_count = 0, .has_embedding = false, .has_head = false};
  uint32_t rows_used = 0;
  uint64_t pes_used = 0;       // PEs inside this board's bands.
  uint64_t pes_total = 0;      // PEs of the usable region.
  uint64_t weight_bytes = 0;
  uint64_t kv_bytes = 0;
  uint64_t sram_total = 0;     // pes_total * SRAM per PE.
  uint64_t free_bytes() const { return sram_total - weight_bytes - kv_bytes; }
};

struct Plan {
  PlanRequest request;
  uint32_t region_width = 0;   // The usable region after confinement.
  uint32_t region_height = 0;
  uint32_t boards_needed = 0;
  uint64_t weight_bytes = 0;   // Including a tied embedding's copy on a later board.
  uint64_t kv_bytes = 0;
  std::vector<BoardPlan> boards;
  std::vector<StagePlacement> stages;  // In pipeline order.
};

// Plans `request`. On failure the Error's message says why, e.g. how many boards the model
// would need, or which band is taller than a wafer.
//
// Returns:
//   INVALID_ARGUMENT   - an empty or inconsistent arch, zero geometry, zero boards or
//                        dtype_bytes, a confinement larger than the fabric.
//   RESOURCE_EXHAUSTED - more boards needed than given (the message names how many), or one
//                        stage (a layer with its KV share, the embedding, the head) does not
//                        fit one wafer's region at all.
//   INTERNAL           - never expected: spreading made a band's column split fail.
HostResult<Plan> PlanPlacement(const PlanRequest& request);

// The minimum number of boards for `request` regardless of request.boards. Same errors as
// PlanPlacement except the "more boards needed" case.
HostResult<uint32_t> BoardsNeeded(const PlanRequest& request);

// A few lines for humans: region, per-board layer ranges, PEs and SRAM (weights, KV, free).
std::string PlanSummary(const Plan& plan);

// The plan as JSON text (boards, stages with band and tensor rectangles).
std::string PlanJson(const Plan& plan, bool include_tensors);

const char* StageKindName(StageKind kind);

// Copies board `board`'s part of `plan` into `manifest`: each tensor's placement (matched by
// role and layer) and one KV region per decoder layer. Returns OK, or INVALID_ARGUMENT (the
// message names the tensor) when a manifest tensor has no place in the plan (the plan was made
// for another architecture).
HostStatus ApplyPlan(const Plan& plan, uint32_t board, ModelManifest* manifest);

}  // namespace wafer::host

// What one board of a placed model is told: the BeginModel manifest of its pipeline stage.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/status.h"
#include "host/loader/prepared_model.h"

namespace wafer::host {

// The manifest of the plan's board `stage`: the tensors the plan puts on that board, each with
// its rectangle (a tied embedding appears twice over a split model: on the first board as the
// embedding, on the last as the head's copy), the KV region of each of its decoder layers, and
// its layer range. `data` gets each listed tensor's bytes (none for a shape-only model).
// Returns OK, or INVALID_ARGUMENT (the message says which) when the plan has no such board,
// gives a board no decoder layer, or names a tensor the model does not have.
HostStatus StageManifest(const PreparedModel& model, uint32_t model_id, uint32_t stage,
                         ModelManifest* manifest, std::vector<std::span<const std::byte>>* data);

}  // namespace wafer::host

// Opening, planning and staging a model: what a board worker does for a load and a repair, as
// plain functions over a BoardLink (the worker adds its thread, board state and progress events).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "common/error.h"
#include "common/status.h"
#include "host/board/board_link.h"
#include "host/loader/prepare_messages.h"

namespace wafer::host {

// Opens and verifies `work.path`, then plans the model over `work.boards.size()` boards of
// `work.geometry` in the first of `work.gaps` that holds it. On success sets `*model` and
// `*rows` (the band the plan takes on each board). Returns OpenModelSource's errors, or
// RESOURCE_EXHAUSTED when no gap holds the model (the message says why). Needs no board.
HostStatus PrepareModel(const PrepareWork& work, std::shared_ptr<const PreparedModel>* model,
                        RowBand* rows);

// Writes tensor `index` (`name`, for messages) of `model_id` in chunks of at most `max_chunk`
// bytes; `on_chunk(bytes)` runs after each. Returns OK, or the link's code with a message
// saying what was being done (`doing`: "writing" or "rewriting"), the tensor and the offset.
HostStatus WriteTensorChunks(BoardLink& link, uint32_t model_id, uint32_t index, const char* doing,
                             const std::string& name, std::span<const std::byte> bytes,
                             uint64_t max_chunk, const std::function<void(uint64_t)>& on_chunk);

// Stages the plan's board `stage` of `model` as `model_id`: BeginModel with that stage's
// manifest, every tensor in chunks, CommitModel. `on_written(total)` runs after each chunk with
// the bytes written so far; `cancelled()` is asked between chunks (CANCELLED then). All in one
// call: a board worker stages through StageSession instead, a chunk between other commands.
// On failure nothing stays on the board and the message says what failed.
//
// Returns:
//   OK               - the stage is committed.
//   CANCELLED        - `cancelled()` said so.
//   INVALID_ARGUMENT - the plan has no such stage (see StageManifest).
//   (another code)   - the link's: the board refused or did not answer.
HostStatus StageModel(BoardLink& link, const PreparedModel& model, uint32_t model_id,
                      uint32_t stage, uint64_t max_chunk,
                      const std::function<void(uint64_t)>& on_written,
                      const std::function<bool()>& cancelled);

}  // namespace wafer::host

// Staging one pipeline stage of a model onto a board a chunk at a time, so that the board's
// worker can run other models' Steps between two chunks: Begin sends BeginModel, each Next one
// WriteWeights (the last one is followed by CommitModel), and Abort frees what was staged.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/status.h"
#include "host/board/board_link.h"
#include "host/loader/prepared_model.h"

namespace wafer::host {

// Not thread-safe; used by the one thread that owns `link`.
class StageSession {
 public:
  // Stage `stage` of `model` as `model_id`, in chunks of at most `max_chunk` bytes.
  // `next_stage` goes into its BeginModel (see board.fbs NextStage).
  StageSession(std::shared_ptr<const PreparedModel> model, uint32_t model_id, uint32_t stage,
               uint64_t max_chunk, NextStage next_stage = {});

  // Builds the stage's manifest and sends BeginModel. Returns OK, the manifest's error
  // (INVALID_ARGUMENT, see StageManifest) or the board's code, the message saying what failed.
  [[nodiscard]] HostStatus Begin(BoardLink& link);
  // Writes the next chunk; after the last one, commits. done() is true once committed. On an
  // error (the link's code) the model is unloaded from the board (nothing half-loaded stays)
  // and the message names the tensor and offset. REQUIRES: Begin returned OK and !done().
  [[nodiscard]] HostStatus Next(BoardLink& link);
  // Unloads what was staged (after Begin, before done()).
  void Abort(BoardLink& link);

  bool done() const { return committed_; }
  uint64_t written() const { return written_; }
  uint32_t model_id() const { return model_id_; }
  uint32_t stage() const { return stage_; }

 private:
  std::shared_ptr<const PreparedModel> model_;
  const uint32_t model_id_;
  const uint32_t stage_;
  const uint64_t max_chunk_;
  const NextStage next_stage_;
  ModelManifest manifest_;
  std::vector<std::span<const std::byte>> data_;
  size_t tensor_ = 0;   // The tensor the next chunk comes from.
  uint64_t offset_ = 0;  // Its offset in that tensor.
  uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace wafer::host

// Repairs a model in place after a runtime PE fault: rewrites only the tensors the board's fault
// reports list, instead of reloading the whole model.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/status.h"
#include "host/board/board_link.h"
#include "host/loader/prepared_model.h"

namespace wafer::host {

// What RestageFaultedTensors did.
struct RestageReport {
  uint32_t fault_reports = 0;  // Reports read that named the model.
  uint32_t tensors = 0;        // Tensors rewritten (each once, however many reports named it).
  uint64_t bytes = 0;          // Weight bytes sent.
  // Some report said the model's KV cache was on the failed PE: every sequence of the model on
  // this board must be prefilled again (SeqStep.reset) before it decodes further.
  bool kv_cache_lost = false;
};

// Repairs stage `stage` of `model`, loaded on the board behind `link` as `model_id`, after a PE
// fault made its steps fail with DATA_LOSS. Reads the board's fault reports from
// `*next_fault_sequence` on (advancing it past every report read, whichever model it names),
// collects the tensors those of `model_id` list (indices into the stage's manifest, which
// StageManifest rebuilds from `model`), writes each again in chunks of at most `max_chunk_bytes`,
// then sends CommitModel, which the board accepts only when every tensor it lost has been
// rewritten since. A shape-only model has no bytes to send: its repair is the commit alone.
// `report` (optional) gets what was done, also on failure (what was done until then).
//
// REQUIRES: `*next_fault_sequence` is past every report from before the model was loaded on
// this board (the board refuses a write to a tensor it did not lose); 0 reads every report held.
//
// On failure the model stays on the board as it was, still failing its steps; the caller may
// unload and reload it instead. The Error's message says why.
// Returns:
//   OK                  - the board took the repair; the model steps again.
//   INVALID_ARGUMENT    - max_chunk_bytes is 0, or the plan has no such stage.
//   DATA_LOSS           - a report names a tensor index outside the stage's manifest (the board
//                         and `model` disagree), or the board found a chunk's CRC wrong.
//   FAILED_PRECONDITION - the board refused the repair: a lost tensor this helper was not told
//                         of (reports overwritten before they were read), a PE lost with no
//                         spare left, or a model that lost nothing.
//   NOT_FOUND           - the model is not on the board.
//   UNAVAILABLE         - the board did not answer (or another code of the link's).
HostStatus RestageFaultedTensors(BoardLink& link, const PreparedModel& model, uint32_t model_id,
                                 uint32_t stage, uint64_t* next_fault_sequence,
                                 uint64_t max_chunk_bytes, RestageReport* report);

}  // namespace wafer::host

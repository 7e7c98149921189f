// A model as waferd knows it: where it runs, its state, what it was staged from, and the load or
// unload under way. Owned by ModelManager.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/board/board_types.h"
#include "host/loader/prepared_model.h"
#include "host/placement/row_gaps.h"
#include "host/wire/messages.h"

namespace prometheus {
class Counter;
}

namespace wafer::host {

// A model to load, from the admin socket, the config file or a reload.
struct LoadRequest {
  uint64_t admin_tag = 0;
  std::string admin_peer;  // Empty: no client waits for the outcome.
  std::string name;
  std::string path;
  std::vector<uint32_t> boards;  // Pipeline order.
  uint32_t slots = 0;
  uint32_t context_length = 0;
};

// One replica of a model: a model loaded as several replicas has one record per replica, each on
// boards of its own, with its own slots (see Scheduler for how jobs are routed between them).
struct ModelRecord {
  std::string name;
  // Which replica of `name` this is: unique among the daemon's records, and stable while the
  // record lives (a reload changes model_id, not this). The scheduler's slot pools use it.
  uint32_t replica = 0;
  std::string path;
  // The boards it runs on, in pipeline order: boards[0] embeds tokens and plans the steps, the
  // last one samples. One board for a model that fits a wafer.
  std::vector<uint32_t> boards;
  RowBand rows;  // The band of rows it holds on each of its boards (rows == 0: none yet).
  // What it was staged from, kept while it is loaded so that a PE fault can be repaired by
  // re-staging only the tensors lost (the checkpoint stays mapped, not read).
  std::shared_ptr<const PreparedModel> prepared;
  bool repairing = false;  // A RepairWork is out (state kLoading meanwhile).
  uint32_t model_id = 0;
  ModelState state = ModelState::kLoading;
  ModelArch arch;
  std::shared_ptr<const TextCodec> text;
  uint64_t parameters = 0;
  uint64_t weight_bytes = 0;
  uint32_t slots = 0;
  uint32_t context_length = 0;
  bool shape_only = false;
  // wafer_replica_tokens_total of this replica, looked up at its first tokens.
  prometheus::Counter* tokens_series = nullptr;

  // The unload under way (state kUnloading).
  std::string unload_peer;  // Who asked for it.
  uint64_t unload_tag = 0;
  bool unload_sent = false;       // UnloadWork went to the workers once running jobs ended.
  uint32_t unloads_pending = 0;   // Boards that have not answered the unload yet.
  Status unload_status;           // The first board's failure, if any.
  std::string unload_detail;

  // The load under way (state kLoading).
  struct Loading {
    LoadRequest request;
    bool reload = false;             // After a loss: waits for its boards rather than failing.
    uint32_t replaces_model_id = 0;  // The lost instance, freed before staging.
    bool started = false;            // PrepareWork sent.
    int64_t start_ns = 0;
    std::shared_ptr<const PreparedModel> prepared;
    std::vector<uint64_t> stage_bytes_done;
    uint32_t stages_pending = 0;
    Status status;  // The first stage's failure.
    std::string detail;
  };
  Loading loading;

  // A pipelined model whose boards hand hidden states to each other (BeginModel.next_stage): a
  // Step goes to boards[0] only and runs every token through the pipeline. False: the step loop
  // relays each stage's hidden states (one token per pass).
  bool direct_handoff = false;

  bool pipelined() const { return boards.size() > 1; }
  // Steps may run: ready, or unloading while its last jobs finish.
  bool serving() const { return state == ModelState::kReady || state == ModelState::kUnloading; }
  bool Spans(uint32_t board) const;
};

inline bool ModelRecord::Spans(uint32_t board) const {
  for (uint32_t b : boards) {
    if (b == board) return true;
  }
  return false;
}

}  // namespace wafer::host

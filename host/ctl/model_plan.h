// `waferctl model plan`: plans a model's placement on simulated boards and estimates its speed,
// without a daemon. Uses the host placement planner and board_sim's presets and TimingModel
// (waferctl is a main-level tool, so it may link the simulator's models).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "board_sim/timing_model.h"
#include "host/placement/placement_planner.h"

namespace wafer::host {

// Runs `waferctl model plan`. `args` are the words after `waferctl model` (a leading "model" is
// also accepted):
//   plan --config CONFIG.json --preset wse3|wse2|mini|PATH.yaml [--boards N] [--slots S]
//        [--context C] [--prompt-tokens P] [--fabric WxH] [--tokens-per-step T] [--pack]
//        [--json]
// Defaults: boards 1, slots 1, context min(8192, max_position), prompt-tokens min(1024,
// context), tokens-per-step waferd's default decode_tokens_per_step. The decode rate is the
// runtime's: a token costs one pass, plus its Step's host round trip divided by the tokens the
// Step produces per sequence (T on one board, 1 through a pipeline of several), as the
// simulated wafer charges it. Plans with PlanRequest::spread (the model fills its region: the figures for a model
// that owns its boards); --pack plans the fewest rows per band instead, as when the model
// shares its boards. Prints the placement summary, whether it fits, and the modeled decode
// tokens/s per user (all S slots decoding), prefill tokens/s and time to first token for a
// P-token prompt, each with its time breakdown (compute, fabric, inter-wafer, host I/O; the
// inter-wafer term uses the preset's `interwafer:` link, whose parameters --json reports),
// timed on the bands the plan gave each stage (BoardStages). The output goes to `out` (JSON
// with --json, which also says "spread": true|false), diagnostics to `err`.
//
// Returns the waferctl exit code: 0 the model fits; 1 it does not fit or the config/preset
// could not be loaded; 2 usage error.
int RunModelPlanCommand(const std::vector<std::string>& args, std::ostream& out,
                        std::ostream& err);

// What board `board` of `plan` runs, for the timing model: one band per decoder layer it holds,
// in pipeline order, and the head when it holds it. The head's band is the head stage's, or,
// for a tied model whose head band keeps no copy of the embedding, the embedding's band (where
// the LM head product then runs). The embedding lookup is not timed.
sim::WaferStages BoardStages(const Plan& plan, uint32_t board);

}  // namespace wafer::host

// `waferctl model plan`: plans a model's placement on simulated boards and estimates its speed,
// without a daemon. Uses the host placement planner and board_sim's presets and TimingModel
// (waferctl is a main-level tool, so it may link the simulator's models).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "wafer_model/timing_model.h"
#include "host/ctl/model_plan_options.h"
#include "host/placement/placement_planner.h"

namespace wafer::host {

// Runs `waferctl model plan` with `options` (the parser, ctl_cli.h, checked their ranges).
// Defaults: boards 1, slots 1, context min(8192, max_position), prompt-tokens min(1024,
// context). Plans with PlanRequest::spread (the model fills its region: the figures for a model
// that owns its boards); `pack` plans the fewest rows per band instead, as when the model
// shares its boards. Prints the placement summary, whether it fits, and the modeled decode
// tokens/s per user (all S slots decoding), prefill tokens/s and time to first token for a
// P-token prompt, each with its time breakdown (compute, fabric, inter-wafer, host I/O; the
// inter-wafer term uses the preset's `interwafer:` link, whose parameters --json reports),
// timed on the bands the plan gave each stage (BoardStages). The output goes to `out` (JSON
// with `json`, which also says "spread": true|false), diagnostics to `err`.
//
// Returns the waferctl exit code: 0 the model fits; 1 it does not fit or the config/preset
// could not be loaded; 2 the prompt is longer than the context, or more slots than the preset
// allows.
int RunModelPlan(const ModelPlanOptions& options, std::ostream& out, std::ostream& err);

// What board `board` of `plan` runs, for the timing model: one band per decoder layer it holds,
// in pipeline order, and the head when it holds it. The head's band is the head stage's, or,
// for a tied model whose head band keeps no copy of the embedding, the embedding's band (where
// the LM head product then runs). The embedding lookup is not timed.
wafer_model::WaferStages BoardStages(const Plan& plan, uint32_t board);

}  // namespace wafer::host

#include "host/ctl/model_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "wafer_model/preset.h"
#include "host/ctl/exit_codes.h"
#include "wafer_model/timing_model.h"
#include "host/config/daemon_config.h"
#include "host/models/model_config.h"
#include "host/placement/placement_planner.h"

namespace wafer::host {
namespace {

using Json = nlohmann::ordered_json;

// The inter-wafer term of one pass of `tokens` positions of `seqs` sequences over `boards`
// pipelined boards (see PipelineTime): (boards - 1) hops, each the link's latency plus the
// 16-bit activations, and one hop back to the first board with each sequence's sampled token
// (4 bytes), as the simulated boards charge it.
double InterWaferNs(const wafer_model::Preset& preset, size_t boards, uint64_t tokens,
                    uint64_t seqs, uint32_t hidden) {
  if (boards < 2) return 0;
  const double activation_bytes = double(tokens) * hidden * 2;
  const double hop_ns = preset.interwafer_hop_latency_us * 1e3 +
                        activation_bytes / preset.interwafer_bytes_per_s * 1e9;
  const double back_ns = preset.interwafer_hop_latency_us * 1e3 +
                         4.0 * double(seqs) / preset.interwafer_bytes_per_s * 1e9;
  return double(boards - 1) * hop_ns + back_ns;
}

// The modeled time of one pass of `tokens` positions (attending to `mean_context` earlier ones)
// through the whole pipeline of `plan`.
//
// Per board b, board_sim's TimingModel models the b-th wafer running its own layers (plus the
// head on the last board) on the bands the plan gave them (BoardStages). Boards form a
// pipeline, so the first token pays every board's latency and each further token pays the
// slowest board's interval:
//   compute, fabric = sum_b Pass_b(1) + (Pass_s(T) - Pass_s(1)),  s = the slowest board.
// Between consecutive boards the pass's activations cross the preset's wafer-to-wafer link
// (`interwafer:`: the systems' 100 GbE ports through one switch; see the preset files for the
// assumption behind its numbers):
//   inter_wafer = (boards - 1) * (interwafer.hop_latency_us                 NICs, switch, edges
//                                 + T * hidden * 2 B / interwafer.bytes_per_s)  16-bit activations
//                 + interwafer.hop_latency_us + S * 4 B / interwafer.bytes_per_s  tokens back
// (S sequences: the last board's sampled tokens go back to the first, which embeds them).
// The hop latency already covers the walk between the layers' PEs and the wafer's edge I/O, so
// nothing here depends on the plan's region. Each hop is charged its latency plus the whole
// pass's activations, in series with the boards' compute: apt for a decode step (T = the
// batch, a few hundred KB at most), conservative for a long prefill, whose transfer a
// runtime could stream under the next board's compute. The Step itself costs one host
// transaction moving `host_bytes` (TimingModel::HostIoNs).
DeviceTime PipelineTime(const Plan& plan, const wafer_model::Preset& preset, uint64_t tokens,
                        uint64_t seqs, double mean_context, uint64_t host_bytes) {
  const wafer_model::TimingModel timing(preset);
  const ModelArch& a = plan.request.arch;
  int64_t first_compute = 0, first_fabric = 0;
  int64_t slow_interval = -1, slow_compute = 0, slow_fabric = 0;
  for (const BoardPlan& b : plan.boards) {
    const wafer_model::WaferStages stages = BoardStages(plan, b.index);
    // Pass costs the layers of `stages`, not a.num_layers.
    const wafer_model::PassTime one = timing.Pass(a, stages, 1, mean_context);
    const wafer_model::PassTime all = timing.Pass(a, stages, tokens, mean_context);
    first_compute += one.compute_ns;
    first_fabric += one.fabric_ns;
    const int64_t interval = (all.compute_ns - one.compute_ns) + (all.fabric_ns - one.fabric_ns);
    if (interval > slow_interval) {
      slow_interval = interval;
      slow_compute = all.compute_ns - one.compute_ns;
      slow_fabric = all.fabric_ns - one.fabric_ns;
    }
  }
  DeviceTime t;
  t.compute_ns = first_compute + slow_compute;
  t.fabric_ns = first_fabric + slow_fabric;
  t.inter_wafer_ns = std::llround(InterWaferNs(preset, plan.boards.size(), tokens, seqs,
                                                a.hidden_size));
  t.host_io_ns = timing.HostIoNs(host_bytes);
  t.total_ns = t.compute_ns + t.fabric_ns + t.inter_wafer_ns + t.host_io_ns;
  return t;
}

Json TimeJson(const DeviceTime& t) {
  return Json{{"total_ns", t.total_ns},
              {"compute_ns", t.compute_ns},
              {"fabric_ns", t.fabric_ns},
              {"inter_wafer_ns", t.inter_wafer_ns},
              {"host_io_ns", t.host_io_ns}};
}

std::string TimeText(const DeviceTime& t) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "%.3f ms = compute %.3f + fabric %.3f + inter-wafer %.3f + host I/O %.3f ms",
                t.total_ns / 1e6, t.compute_ns / 1e6, t.fabric_ns / 1e6, t.inter_wafer_ns / 1e6,
                t.host_io_ns / 1e6);
  return buf;
}

}  // namespace

wafer_model::WaferStages BoardStages(const Plan& plan, uint32_t board) {
  wafer_model::WaferStages stages;
  const StagePlacement* embedding = nullptr;
  const StagePlacement* head = nullptr;
  for (const StagePlacement& s : plan.stages) {
    if (s.board != board) continue;
    switch (s.kind) {
      case StageKind::kEmbedding: embedding = &s; break;
      case StageKind::kLayer: stages.layers.push_back({s.band.w, s.band.h}); break;
      case StageKind::kHead: head = &s; break;
    }
  }
  if (head == nullptr) return stages;
  // A tied model on one board keeps no copy of the embedding in the head band: the LM head
  // product runs where the embedding matrix lives.
  const bool has_lm_head = std::any_of(head->tensors.begin(), head->tensors.end(),
                                       [](const TensorPlacement& t) {
                                         return t.role == TensorRole::kLmHead;
                                       });
  const StagePlacement& lm = !has_lm_head && embedding != nullptr ? *embedding : *head;
  stages.has_head = true;
  stages.head = {lm.band.w, lm.band.h};
  return stages;
}

int RunModelPlan(const ModelPlanOptions& options, std::ostream& out, std::ostream& err) {
  const bool as_json = options.json;
  const bool pack = options.pack;
  uint32_t boards = options.boards, slots = options.slots, context = options.context,
           prompt = options.prompt_tokens;
  const uint32_t fw = options.fabric_width, fh = options.fabric_height;
  static const uint32_t kDaemonTokensPerStep = DaemonConfig{}.decode_tokens_per_step;
  const uint32_t tokens_per_step =
      options.tokens_per_step != 0 ? options.tokens_per_step : kDaemonTokensPerStep;
  if (boards == 0 || slots == 0) {
    err << "waferctl model plan: --boards and --slots must be positive\n";
    return kExitUsage;
  }

  auto fail = [&](const std::string& code, const std::string& detail) {
    if (as_json) {
      out << Json{{"fits", false}, {"error", code}, {"detail", detail}}.dump(2) << "\n";
    }
    err << "waferctl model plan: " << code << ": " << detail << "\n";
    return kExitFailed;
  };
  auto config = LoadModelConfig(options.config);
  if (!config.ok()) return fail(config.error().code_name(), config.error().message);
  std::string detail;
  auto preset = wafer_model::LoadPreset(options.preset);
  if (!preset.ok()) return fail(preset.status().name(), preset.error().message);
  const ModelArch& arch = config->arch;
  if (context == 0) context = std::min<uint32_t>(8192, arch.max_position);
  if (prompt == 0) prompt = std::min<uint32_t>(1024, context);
  if (prompt > context) {
    err << "waferctl model plan: --prompt-tokens exceeds --context\n";
    return kExitUsage;
  }
  if (slots > preset->max_slots) {
    err << "waferctl model plan: --slots exceeds the preset's max_slots (" << preset->max_slots
        << ")\n";
    return kExitUsage;
  }

  PlanRequest request;
  request.arch = arch;
  request.board = {preset->fabric_width, preset->fabric_height, preset->sram_per_pe_bytes};
  request.boards = boards;
  request.slots = slots;
  request.context = context;
  request.dtype_bytes = config->torch_dtype == "float32" ? 4 : 2;
  request.confine_width = fw;
  request.confine_height = fh;
  // The published figures are for a model that owns its boards and fills them; --pack shows
  // the fewest-rows layout that leaves room for other models, and what that costs.
  request.spread = !pack;
  auto plan = PlanPlacement(request);
  if (!plan.ok()) {
    detail = plan.error().message;
    if (plan.status().code() == StatusCode::kResourceExhausted && as_json) {
      Json j{{"fits", false}, {"error", plan.status().name()}, {"detail", detail}};
      if (auto needed = BoardsNeeded(request); needed.ok()) j["boards_needed"] = *needed;
      out << j.dump(2) << "\n";
      err << "waferctl model plan: does not fit: " << detail << "\n";
      return kExitFailed;
    }
    if (plan.status().code() == StatusCode::kResourceExhausted) {
      out << "does not fit: " << detail << "\n";
      return kExitFailed;
    }
    return fail(plan.status().name(), detail);
  }

  // Decode: every slot advances one token per pass, each attending to the prompt. A Step runs
  // `step_tokens` such passes for one host round trip, as waferd's Steps do (its scheduler's
  // decode_tokens_per_step, on one board and through a pipeline whose boards hand hidden
  // states to each other, waferd's default): one decode token costs a pass plus the Step's
  // host I/O divided by the tokens it produces (TimingModel::DecodeHostIoNsPerToken, what the
  // simulated wafer charges). Prefill: the whole prompt in one pass, attending on average to
  // half of it.
  const uint32_t step_tokens = tokens_per_step;
  DeviceTime decode = PipelineTime(*plan, *preset, slots, slots, prompt, 0);
  const wafer_model::TimingModel timing(*preset);
  const int64_t step_host_io_ns = timing.HostIoNs(
      wafer_model::TimingModel::StepHostBytes(slots, slots, uint64_t{slots} * step_tokens, 0));
  decode.total_ns -= decode.host_io_ns;
  decode.host_io_ns = std::llround(timing.DecodeHostIoNsPerToken(slots, step_tokens));
  decode.total_ns += decode.host_io_ns;
  const DeviceTime prefill =
      PipelineTime(*plan, *preset, prompt, 1, prompt / 2.0, uint64_t{prompt} * 4 + 4);
  const double per_user = 1e9 / double(decode.total_ns);
  const double prefill_rate = prompt * 1e9 / double(prefill.total_ns);
  const double ttft_ms = prefill.total_ns / 1e6;

  if (as_json) {
    Json j;
    j["fits"] = true;
    j["model"] = {{"config", options.config},
                  {"parameters", config->param_count},
                  {"layers", arch.num_layers},
                  {"hidden", arch.hidden_size}};
    j["preset"] = preset->name;
    j["spread"] = !pack;
    j["plan"] = Json::parse(PlanJson(*plan, /*include_tensors=*/false));
    j["interwafer"] = {{"hops", plan->boards.size() - 1},
                       {"hop_latency_us", preset->interwafer_hop_latency_us},
                       {"bytes_per_s", preset->interwafer_bytes_per_s}};
    j["decode"] = {{"batch", slots},
                   {"context", prompt},
                   {"tokens_per_step", step_tokens},
                   {"step_host_io_ns", step_host_io_ns},
                   {"tokens_per_s_per_user", per_user},
                   {"tokens_per_s_total", per_user * slots},
                   {"step", TimeJson(decode)}};
    j["prefill"] = {{"prompt_tokens", prompt},
                    {"tokens_per_s", prefill_rate},
                    {"ttft_ms", ttft_ms},
                    {"time", TimeJson(prefill)}};
    out << j.dump(2) << "\n";
    return kExitOk;
  }
  char line[256];
  std::snprintf(line, sizeof line, "model: %s, %.2f B parameters, %u layers; preset %s\n",
                options.config.c_str(), config->param_count / 1e9, arch.num_layers,
                preset->name.c_str());
  out << line << PlanSummary(*plan);
  out << (pack ? "layout: packed (each band the fewest rows; the rest of the region is left to "
                 "other models)\n"
               : "layout: spread (every row of the region goes to the bands, by weight)\n");
  std::snprintf(line, sizeof line, "fits: yes, on %zu of %u board(s)\n", plan->boards.size(),
                boards);
  out << line;
  std::snprintf(line, sizeof line,
                "decode: %.1f tokens/s per user (%u users, %.0f tokens/s total) at context %u, "
                "%u tokens per Step\n",
                per_user, slots, per_user * slots, prompt, step_tokens);
  out << line << "  token " << TimeText(decode) << "\n";
  std::snprintf(line, sizeof line,
                "  (host I/O: one %.3f ms round trip per Step, over its %u tokens)\n",
                step_host_io_ns / 1e6, step_tokens);
  out << line;
  std::snprintf(line, sizeof line, "prefill: %u tokens at %.0f tokens/s, TTFT %.3f ms\n", prompt,
                prefill_rate, ttft_ms);
  out << line << "  pass " << TimeText(prefill) << "\n";
  return kExitOk;
}

}  // namespace wafer::host

// One modeled decode rate: what the runtime charges a decode token (the firmware and the
// simulated wafer behind the board link, running the Steps waferd sends) and what `waferctl
// model plan` predicts for the same model, board, placement, batch, context and tokens per Step
// agree. Both amortise the Step's one host round trip over the tokens it produces.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "board_sim/board_runner.h"
#include "wafer_model/preset.h"
#include "common/clock.h"
#include "host/board/zmq_board_link.h"
#include "host/ctl/ctl_commands.h"
#include "host/loader/model_source.h"
#include "host/models/model_config.h"
#include "host/placement/placement_planner.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;

// Passes when `result` is OK; otherwise fails with the Error ("CODE: message").
template <typename T>
::testing::AssertionResult Ok(const HostResult<T>& result) {
  if (result.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << result.error().ToString();
}

// A small Llama shape (config.json alone: a shape-only model) that fits the mini preset.
constexpr const char* kConfig = R"({"architectures": ["LlamaForCausalLM"],
  "vocab_size": 4096, "hidden_size": 512, "intermediate_size": 1536,
  "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 4,
  "head_dim": 64, "max_position_embeddings": 2048, "rope_theta": 10000.0,
  "rms_norm_eps": 1e-05, "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";

struct Case {
  const char* preset;
  uint32_t slots;
  uint32_t context;
  uint32_t prompt;
  uint32_t tokens_per_step;
};

class ModeledRateTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("modeled-rate-" + std::to_string(::getpid()) + "-" +
            std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "config.json") << kConfig;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_;
};

TEST_P(ModeledRateTest, TheRuntimeAndModelPlanChargeADecodeTokenTheSame) {
  const Case c = GetParam();
  const std::string preset_path = std::string(WAFER_PRESET_DIR) + "/" + c.preset + ".yaml";
  HostResult<wafer_model::Preset> preset = wafer_model::LoadPreset(preset_path);
  ASSERT_TRUE(preset.ok()) << preset.error().ToString();

  // waferctl model plan, packed (waferd's default placement), one board.
  const std::string mean_context = std::to_string(c.prompt + c.tokens_per_step / 2);
  std::ostringstream out, err;
  ASSERT_EQ(RunWaferctl({"model", "plan", "--config", (dir_ / "config.json").string(), "--preset",
                                 preset_path, "--slots", std::to_string(c.slots), "--context",
                                 std::to_string(c.context), "--prompt-tokens", mean_context,
                                 "--tokens-per-step", std::to_string(c.tokens_per_step),
                                 "--pack", "--json"},
                                CtlIo{out, err}),
            0)
      << err.str();
  const Json plan_json = Json::parse(out.str());
  const Json& token = plan_json["decode"]["step"];
  EXPECT_EQ(plan_json["decode"]["tokens_per_step"].get<uint32_t>(), c.tokens_per_step);

  // The runtime: the same model placed the same way, on an embedded board of the same preset,
  // driven over the board link as waferd's worker drives it.
  ModelSource source;
  HostStatus opened = OpenModelSource(dir_.string(), &source);
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  PlanRequest request;
  request.arch = source.arch;
  request.board = {preset->fabric_width, preset->fabric_height, preset->sram_per_pe_bytes};
  request.slots = c.slots;
  request.context = c.context;
  request.dtype_bytes = 2;
  request.spread = false;
  HostResult<Plan> plan = PlanPlacement(request);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ModelManifest manifest;
  manifest.model_id = 7;
  manifest.name = "shape";
  manifest.arch = source.arch;
  manifest.tensors = source.tensors;
  manifest.slots = c.slots;
  manifest.context_length = c.context;
  manifest.shape_only = true;
  HostStatus applied = ApplyPlan(*plan, 0, &manifest);
  ASSERT_TRUE(applied.ok()) << applied.error().ToString();

  zmq::context_t context(1);
  sim::BoardOptions options;
  options.preset = c.preset;
  options.preset_dir = WAFER_PRESET_DIR;
  auto board =
      sim::StartEmbeddedBoard(context, std::string("inproc://modeled-rate-") + c.preset, options);
  ASSERT_TRUE(board.ok()) << board.error().ToString();
  auto link = ConnectBoardLink(context, (*board)->endpoint(), 10000, SystemClock::Get());
  ASSERT_TRUE(link.ok());
  BoardLink& l = **link;
  ASSERT_TRUE(Ok(l.Identify()));
  ASSERT_TRUE(Ok(l.Boot()));
  ASSERT_TRUE(Ok(l.BeginModel(manifest)));
  ASSERT_TRUE(Ok(l.CommitModel(7)));

  // Every slot prefills its prompt and samples one token; then one decode Step, as waferd sends
  // it: each sequence's last token in, tokens_per_step out.
  std::vector<SeqStep> prefill, decode;
  for (uint32_t s = 0; s < c.slots; ++s) {
    std::vector<uint32_t> prompt(c.prompt);
    for (uint32_t i = 0; i < c.prompt; ++i) prompt[i] = (s * 31 + i * 7) % 4096;
    SeqStep seq;
    seq.slot = s;
    seq.reset = true;
    seq.input_tokens = prompt;
    seq.generate = 1;
    prefill.push_back(std::move(seq));
  }
  HostResult<StepOutcome> first = l.Step(7, prefill);
  ASSERT_TRUE(first.ok()) << first.error().message;
  for (uint32_t s = 0; s < c.slots; ++s) {
    ASSERT_TRUE(first->results[s].status.ok());
    ASSERT_EQ(first->results[s].tokens.size(), 1u);
    SeqStep seq;
    seq.slot = s;
    seq.input_tokens = first->results[s].tokens;
    seq.generate = c.tokens_per_step;
    decode.push_back(std::move(seq));
  }
  HostResult<StepOutcome> step = l.Step(7, decode);
  ASSERT_TRUE(step.ok()) << step.error().message;
  for (const SeqResult& r : step->results) ASSERT_EQ(r.tokens.size(), c.tokens_per_step);
  const DeviceTime& t = step->device_time;
  const double n = c.tokens_per_step;

  // The host round trip: the runtime charges it once per Step; model plan's token carries the
  // same Step's share of it, to the nanosecond (rounding).
  EXPECT_NEAR(t.host_io_ns / n, token["host_io_ns"].get<double>(), 1.0);
  // A whole token: the runtime's Step ran its passes at contexts prompt+1 .. prompt+n, model
  // plan's one pass at their middle; the passes grow slowly with the context, so they agree
  // to well within 1%. (Before model plan amortised the round trip they differed by its
  // (n - 1) / n, several times the pass on these shapes.)
  const double runtime_ns = t.total_ns / n;
  const double plan_ns = token["total_ns"].get<double>();
  EXPECT_NEAR(runtime_ns, plan_ns, 0.01 * plan_ns)
      << "runtime " << runtime_ns << " ns per token, model plan " << plan_ns;
  const double runtime_rate = 1e9 / runtime_ns;
  EXPECT_NEAR(runtime_rate, plan_json["decode"]["tokens_per_s_per_user"].get<double>(),
              0.01 * runtime_rate);
}

INSTANTIATE_TEST_SUITE_P(Presets, ModeledRateTest,
                         ::testing::Values(Case{"mini", 16, 256, 12, 8},
                                           Case{"mini", 4, 512, 100, 32},
                                           Case{"wse3", 64, 1024, 40, 8}));

}  // namespace
}  // namespace wafer::host

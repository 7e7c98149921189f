#include "host/ctl/model_plan.h"

#include "host/ctl/ctl_commands.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "wafer_model/preset.h"
#include "host/models/model_config.h"
#include "host/placement/testing/llama_archs.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;

using testing::Llama70B;
using testing::Llama8B;

// A file of this process and test alone: ctest runs the tests of this binary in parallel
// processes (and other build trees may run them too), all sharing TempDir().
std::string WriteConfig(const std::string& name, const ModelArch& arch) {
  const std::string path = ::testing::TempDir() + "/" + name + "." + std::to_string(getpid()) +
                           "." + ::testing::UnitTest::GetInstance()->current_test_info()->name() +
                           ".config.json";
  std::ofstream(path) << ModelConfigJson(arch, "bfloat16", 128000, 128001);
  return path;
}

struct CmdRun {
  int code;
  std::string out, err;
};

// Runs `waferctl model ARGS` through waferctl's parser (a leading "model" may be left out).
CmdRun Plan(std::vector<std::string> args) {
  std::ostringstream out, err;
  if (args.empty() || args[0] != "model") args.insert(args.begin(), "model");
  const int code = RunWaferctl(args, CtlIo{out, err});
  return {code, out.str(), err.str()};
}

class ModelPlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    c8b_ = WriteConfig("llama8b", Llama8B());
    c70b_ = WriteConfig("llama70b", Llama70B());
  }
  void TearDown() override {
    std::remove(c8b_.c_str());
    std::remove(c70b_.c_str());
  }
  std::string c8b_, c70b_;
};

int64_t SumParts(const Json& t) {
  return t["compute_ns"].get<int64_t>() + t["fabric_ns"].get<int64_t>() +
         t["inter_wafer_ns"].get<int64_t>() + t["host_io_ns"].get<int64_t>();
}

TEST_F(ModelPlanTest, Llama8BFitsOneWse3) {
  CmdRun r = Plan({"plan", "--config", c8b_, "--preset", "wse3", "--boards", "1", "--slots", "4",
                "--context", "8192", "--prompt-tokens", "2048", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_TRUE(j["fits"].get<bool>());
  EXPECT_EQ(j["plan"]["boards"].size(), 1u);
  const Json& step = j["decode"]["step"];
  EXPECT_EQ(step["total_ns"].get<int64_t>(), SumParts(step));
  EXPECT_EQ(step["inter_wafer_ns"].get<int64_t>(), 0) << "one board: no hop";
  EXPECT_GT(step["compute_ns"].get<int64_t>(), 0);
  EXPECT_GT(step["fabric_ns"].get<int64_t>(), 0);
  EXPECT_GT(step["host_io_ns"].get<int64_t>(), 0);
  const double per_user = j["decode"]["tokens_per_s_per_user"];
  EXPECT_GT(per_user, 0);
  EXPECT_DOUBLE_EQ(j["decode"]["tokens_per_s_total"].get<double>(), 4 * per_user);
  // Prefill amortizes the reductions: faster per token than decode for one user.
  EXPECT_GT(j["prefill"]["tokens_per_s"].get<double>(), per_user);
  EXPECT_EQ(j["prefill"]["time"]["total_ns"].get<int64_t>(), SumParts(j["prefill"]["time"]));
  EXPECT_DOUBLE_EQ(j["prefill"]["ttft_ms"].get<double>(),
                   j["prefill"]["time"]["total_ns"].get<int64_t>() / 1e6);
}

TEST_F(ModelPlanTest, TextOutputSaysItFits) {
  CmdRun r = Plan({"model", "plan", "--config", c8b_, "--preset", "wse3"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("fits: yes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layout: spread"), std::string::npos) << r.out;
  EXPECT_NE(Plan({"model", "plan", "--config", c8b_, "--preset", "wse3", "--pack"})
                .out.find("layout: packed"),
            std::string::npos);
  EXPECT_NE(r.out.find("board 0: embedding + layers 0-31 + head"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokens/s per user"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("TTFT"), std::string::npos) << r.out;
}

TEST_F(ModelPlanTest, Llama70BDoesNotFitOneBoard) {
  CmdRun r = Plan({"plan", "--config", c70b_, "--preset", "wse3", "--json"});
  EXPECT_EQ(r.code, 1);
  const Json j = Json::parse(r.out);
  EXPECT_FALSE(j["fits"].get<bool>());
  EXPECT_EQ(j["error"], "RESOURCE_EXHAUSTED");
  EXPECT_EQ(j["boards_needed"], 4);
  CmdRun text = Plan({"plan", "--config", c70b_, "--preset", "wse3"});
  EXPECT_EQ(text.code, 1);
  EXPECT_NE(text.out.find("does not fit: the model needs 4 boards"), std::string::npos)
      << text.out;
}

TEST_F(ModelPlanTest, Llama70BOnFourBoardsPaysInterWaferHops) {
  CmdRun r = Plan({"plan", "--config", c70b_, "--preset", "wse3", "--boards", "4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["plan"]["boards"].size(), 4u);
  EXPECT_GT(j["decode"]["step"]["inter_wafer_ns"].get<int64_t>(), 0);
  CmdRun small = Plan({"plan", "--config", c8b_, "--preset", "wse3", "--json"});
  ASSERT_EQ(small.code, 0);
  EXPECT_LT(j["decode"]["tokens_per_s_per_user"].get<double>(),
            Json::parse(small.out)["decode"]["tokens_per_s_per_user"].get<double>());
}

// The inter-wafer term is (boards - 1) hops x (hop latency + pass tokens x hidden x 2 B /
// bandwidth) plus one hop back with the sampled tokens, with the link parameters read from the
// preset file itself.
TEST_F(ModelPlanTest, InterWaferTermFollowsThePresetLink) {
  HostResult<wafer_model::Preset> preset = wafer_model::LoadPreset("wse3", WAFER_PRESET_DIR);
  ASSERT_TRUE(preset.ok()) << preset.error().ToString();
  ASSERT_GT(preset->interwafer_hop_latency_us, 0);
  ASSERT_GT(preset->interwafer_bytes_per_s, 0);
  const uint32_t slots = 8, prompt = 1000;
  CmdRun r = Plan({"plan", "--config", c70b_, "--preset", "wse3", "--boards", "4", "--slots",
                   std::to_string(slots), "--context", "8192", "--prompt-tokens",
                   std::to_string(prompt), "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json j = Json::parse(r.out);
  const size_t boards = j["plan"]["boards"].size();
  ASSERT_EQ(boards, 4u);
  EXPECT_EQ(j["interwafer"]["hops"].get<size_t>(), boards - 1);
  EXPECT_DOUBLE_EQ(j["interwafer"]["hop_latency_us"].get<double>(),
                   preset->interwafer_hop_latency_us);
  EXPECT_DOUBLE_EQ(j["interwafer"]["bytes_per_s"].get<double>(), preset->interwafer_bytes_per_s);
  auto expected_ns = [&](double tokens, double seqs) {
    const double hop_s = preset->interwafer_hop_latency_us * 1e-6 +
                         tokens * 8192 * 2 / preset->interwafer_bytes_per_s;
    const double back_s = preset->interwafer_hop_latency_us * 1e-6 +
                          seqs * 4 / preset->interwafer_bytes_per_s;
    return (double(boards - 1) * hop_s + back_s) * 1e9;
  };
  // Decode: one token for each of the 8 slots per pass, 8 tokens back. Prefill: the whole
  // prompt, one token back.
  EXPECT_NEAR(j["decode"]["step"]["inter_wafer_ns"].get<double>(), expected_ns(slots, slots), 1.0);
  EXPECT_NEAR(j["prefill"]["time"]["inter_wafer_ns"].get<double>(), expected_ns(prompt, 1), 1.0);
  // A decode hop is dominated by the link latency, a prefill hop by the bytes.
  EXPECT_GT(preset->interwafer_hop_latency_us * 1e-6,
            slots * 8192 * 2 / preset->interwafer_bytes_per_s);
  EXPECT_LT(preset->interwafer_hop_latency_us * 1e-6,
            prompt * 8192 * 2 / preset->interwafer_bytes_per_s);
}

TEST_F(ModelPlanTest, FabricConfinementAndPresetPath) {
  const std::string preset = std::string(WAFER_PRESET_DIR) + "/wse2.yaml";
  CmdRun whole = Plan({"plan", "--config", c8b_, "--preset", preset, "--json"});
  ASSERT_EQ(whole.code, 0) << whole.err;
  EXPECT_EQ(Json::parse(whole.out)["preset"], "wse2");
  CmdRun confined = Plan({"plan", "--config", c8b_, "--preset", preset, "--fabric", "300x400",
                       "--json"});
  EXPECT_EQ(confined.code, 1);
  EXPECT_GT(Json::parse(confined.out)["boards_needed"].get<int>(), 1);
}

// By default the model fills its board (spread); --pack leaves the rows below its bands free,
// so its layers compute on fewer PEs: same fabric hops per reduction, more compute time.
TEST_F(ModelPlanTest, SpreadByDefaultPackOnRequest) {
  const std::vector<std::string> args = {"plan", "--config", c8b_, "--preset", "wse3",
                                         "--slots", "8", "--context", "8192", "--prompt-tokens",
                                         "1000", "--json"};
  CmdRun spread = Plan(args);
  std::vector<std::string> pack_args = args;
  pack_args.push_back("--pack");
  CmdRun pack = Plan(pack_args);
  ASSERT_EQ(spread.code, 0) << spread.err;
  ASSERT_EQ(pack.code, 0) << pack.err;
  const Json s = Json::parse(spread.out), p = Json::parse(pack.out);
  EXPECT_TRUE(s["spread"].get<bool>());
  EXPECT_FALSE(p["spread"].get<bool>());
  const uint32_t height = s["plan"]["region"]["height"];
  EXPECT_EQ(s["plan"]["boards"][0]["rows_used"].get<uint32_t>(), height);
  EXPECT_LT(p["plan"]["boards"][0]["rows_used"].get<uint32_t>(), height);
  EXPECT_GT(p["prefill"]["time"]["compute_ns"].get<int64_t>(),
            s["prefill"]["time"]["compute_ns"].get<int64_t>());
  EXPECT_GT(s["decode"]["tokens_per_s_per_user"].get<double>(),
            p["decode"]["tokens_per_s_per_user"].get<double>());
  EXPECT_GT(s["prefill"]["tokens_per_s"].get<double>(), p["prefill"]["tokens_per_s"].get<double>());
}

// One board: the decode step's device time is exactly the timing model's pass over the bands
// BoardStages reads from the plan (one band per layer, the head's band), not an equal share.
TEST_F(ModelPlanTest, TimingUsesThePlansBands) {
  HostResult<wafer_model::Preset> preset = wafer_model::LoadPreset("wse3", WAFER_PRESET_DIR);
  ASSERT_TRUE(preset.ok()) << preset.error().ToString();
  PlanRequest request;
  request.arch = Llama8B();
  request.board = {preset->fabric_width, preset->fabric_height, preset->sram_per_pe_bytes};
  request.slots = 8;
  request.context = 8192;
  request.spread = true;
  HostResult<host::Plan> plan = PlanPlacement(request);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  const wafer_model::WaferStages stages = BoardStages(*plan, 0);
  ASSERT_EQ(stages.layers.size(), 32u);
  EXPECT_EQ(stages.layers[5].width, plan->stages[6].band.w);
  EXPECT_EQ(stages.layers[5].height, plan->stages[6].band.h);
  ASSERT_TRUE(stages.has_head);
  EXPECT_EQ(stages.head.height, plan->stages.back().band.h);

  const ModelArch a = Llama8B();
  const wafer_model::PassTime pass = wafer_model::TimingModel(*preset).Pass(a, stages, 8, 1000);
  CmdRun r = Plan({"plan", "--config", c8b_, "--preset", "wse3", "--slots", "8", "--context",
                   "8192", "--prompt-tokens", "1000", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json step = Json::parse(r.out)["decode"]["step"];
  EXPECT_EQ(step["compute_ns"].get<int64_t>(), pass.compute_ns);
  EXPECT_EQ(step["fabric_ns"].get<int64_t>(), pass.fabric_ns);
}

// Several boards: each board's layers in order, the head only on the last. A tied model on one
// board has no LM head copy: its head product runs on the embedding's band.
TEST(BoardStagesTest, LayersPerBoardAndWhereTheHeadRuns) {
  PlanRequest request;
  request.arch = testing::Llama70B();
  request.board = {762, 1172, 49152};
  request.boards = 4;
  request.slots = 8;
  request.context = 8192;
  HostResult<host::Plan> plan = PlanPlacement(request);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  for (const BoardPlan& b : plan->boards) {
    const wafer_model::WaferStages stages = BoardStages(*plan, b.index);
    EXPECT_EQ(stages.layers.size(), b.stage.layer_count);
    EXPECT_EQ(stages.has_head, b.stage.has_head);
  }

  request.arch = testing::Llama8B();
  request.arch.tie_embeddings = true;
  request.boards = 1;
  plan = PlanPlacement(request);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ASSERT_EQ(plan->stages.front().kind, StageKind::kEmbedding);
  const wafer_model::WaferStages tied = BoardStages(*plan, 0);
  ASSERT_TRUE(tied.has_head);
  EXPECT_EQ(tied.head.height, plan->stages.front().band.h);
  EXPECT_NE(tied.head.height, plan->stages.back().band.h) << "the head band holds the norm only";
}

TEST_F(ModelPlanTest, UsageErrors) {
  EXPECT_EQ(Plan({}).code, 2);
  EXPECT_EQ(Plan({"show"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--preset", "wse3"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "wse3", "--boards", "0"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "wse3", "--boards", "x"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "wse3", "--fabric", "12"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "wse3", "--bogus", "1"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "wse3", "--slots"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "wse3", "--pack", "1"}).code, 2);
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "wse3", "--context", "100",
                  "--prompt-tokens", "200"}).code, 2);
}

TEST_F(ModelPlanTest, MissingFilesFail) {
  CmdRun r = Plan({"plan", "--config", "/nonexistent/config.json", "--preset", "wse3", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_FALSE(Json::parse(r.out)["fits"].get<bool>());
  EXPECT_EQ(Plan({"plan", "--config", c8b_, "--preset", "nosuchpreset"}).code, 1);
}

}  // namespace
}  // namespace wafer::host

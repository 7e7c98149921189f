// Loads go through the placement planner: each model is placed in its own band of free rows
// on the board, the board enforces the per-PE budget, and a model that does not fit is refused
// with a reason (how many boards it needs, or that the board has no room left).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;

// A shape-only Llama config.json (no weights: placement and SRAM reservation are real).
void WriteShapeOnlyConfig(const std::string& dir, uint32_t hidden, uint32_t intermediate,
                          uint32_t layers) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config.json")
      << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,)"
      << R"( "hidden_size": )" << hidden << R"(, "intermediate_size": )" << intermediate
      << R"(, "num_hidden_layers": )" << layers
      << R"(, "num_attention_heads": 16, "num_key_value_heads": 4, "rms_norm_eps": 1e-05,)"
      << R"( "rope_theta": 10000.0, "max_position_embeddings": 1024, "tie_word_embeddings": false,)"
      << R"( "torch_dtype": "bfloat16"})";
}

OperationResult LoadAs(AdminClient& admin, const std::string& path, const std::string& name) {
  LoadModel load;
  load.path = path;
  load.name = name;
  load.slots = 2;
  load.context_length = 256;
  OperationResult r;
  EXPECT_TRUE(IsOk(admin.Operate(load, nullptr, &r, kTimeoutMs)));
  return r;
}

OperationResult Unload(AdminClient& admin, const std::string& name) {
  OperationResult r;
  EXPECT_TRUE(admin.Operate(UnloadModel{0, name, -1}, nullptr, &r, kTimeoutMs).ok());
  return r;
}

uint64_t SramUsed(AdminClient& admin) {
  StatusReply status;
  EXPECT_TRUE(admin.QueryStatus(&status, kTimeoutMs).ok());
  return status.boards.empty() ? 0 : status.boards[0].sram_used_bytes;
}

TEST(PlacementLoadTest, ModelsTakeBandsOfRowsAndFreedRowsAreReused) {
  DaemonHarness h;
  auto admin = h.NewAdminClient();
  TempDir dir;
  // ~200 M parameters at 16 bit: more than half of the mini wafer's ~128 rows of 6 MB.
  WriteShapeOnlyConfig(dir.path() + "/half", 1024, 2816, 12);
  // ~5 M parameters: a few rows.
  WriteShapeOnlyConfig(dir.path() + "/small", 256, 704, 4);

  ASSERT_EQ(LoadAs(*admin, dir.path() + "/small", "small").code, ErrorCode::kNone);
  const OperationResult first = LoadAs(*admin, dir.path() + "/half", "half-a");
  ASSERT_EQ(first.code, ErrorCode::kNone) << first.detail;
  // A second copy finds too few free rows below the first.
  const OperationResult second = LoadAs(*admin, dir.path() + "/half", "half-b");
  EXPECT_EQ(second.code, ErrorCode::kResourceExhausted);
  EXPECT_NE(second.detail.find("no room for half-b on board 0"), std::string::npos) << second.detail;

  // Freed rows are placed again; the small model keeps its band throughout.
  ASSERT_EQ(Unload(*admin, "half-a").code, ErrorCode::kNone);
  const OperationResult again = LoadAs(*admin, dir.path() + "/half", "half-b");
  EXPECT_EQ(again.code, ErrorCode::kNone) << again.detail;
  ASSERT_EQ(Unload(*admin, "half-b").code, ErrorCode::kNone);
  ASSERT_EQ(Unload(*admin, "small").code, ErrorCode::kNone);
}

// Modeled device time of one 64-token prefill + 8 decode tokens on `model`.
int64_t DeviceNs(DaemonHarness& h, const std::string& model) {
  auto client = h.NewJobClient();
  SubmitJob job;
  job.model = model;
  job.prompt_tokens.assign(64, 7);
  job.max_tokens = 8;
  SubmitOutcome outcome;
  JobFinished finished;
  EXPECT_TRUE(client->Run(job, [](const TokenChunk&) {}, &outcome, &finished, kTimeoutMs).ok());
  EXPECT_EQ(finished.reason, FinishReason::kLength) << finished.detail;
  return finished.timings.device_ns;
}

TEST(PlacementLoadTest, SpreadPlacementTakesTheFreeRowsAndComputesFaster) {
  TempDir dir;
  WriteShapeOnlyConfig(dir.path() + "/small", 256, 704, 4);
  DaemonHarness packed;
  DaemonHarness spread([](DaemonConfig& c) {
    c.placement = "spread";
    c.boards[0].endpoint = "inproc://spread-board0";
  });
  auto packed_admin = packed.NewAdminClient();
  auto spread_admin = spread.NewAdminClient();
  ASSERT_EQ(LoadAs(*packed_admin, dir.path() + "/small", "m").code, ErrorCode::kNone);
  ASSERT_EQ(LoadAs(*spread_admin, dir.path() + "/small", "m").code, ErrorCode::kNone);
  // Spread over the whole board, the same model has many more PEs per layer: the modeled
  // prefill is faster (the simulator times each layer on the band it was placed on).
  EXPECT_LT(DeviceNs(spread, "m"), DeviceNs(packed, "m"));
  // ... and no row is left for a second model, which a packed board still has.
  EXPECT_EQ(LoadAs(*packed_admin, dir.path() + "/small", "m2").code, ErrorCode::kNone);
  const OperationResult second = LoadAs(*spread_admin, dir.path() + "/small", "m2");
  EXPECT_EQ(second.code, ErrorCode::kResourceExhausted);
  EXPECT_NE(second.detail.find("no rows are free"), std::string::npos) << second.detail;
}

TEST(PlacementLoadTest, AModelLargerThanTheWaferSaysHowManyBoardsItNeeds) {
  DaemonHarness h;
  auto admin = h.NewAdminClient();
  TempDir dir;
  WriteShapeOnlyConfig(dir.path() + "/big", 2048, 5632, 16);  // ~0.9 B parameters: 1.8 GB.
  const OperationResult r = LoadAs(*admin, dir.path() + "/big", "big");
  EXPECT_EQ(r.code, ErrorCode::kResourceExhausted);
  EXPECT_NE(r.detail.find("boards"), std::string::npos) << r.detail;
  EXPECT_EQ(SramUsed(*admin), 0u) << "nothing half-placed stays";
}

}  // namespace
}  // namespace wafer::testing

// A model split over several boards runs as a layer pipeline: the first board embeds the tokens,
// hidden states travel board to board, the last board samples. Through the real daemon and
// embedded boards, a split model streams exactly the tokens the same model streams from one
// board (greedy and seeded sampling, prefill chunks, concurrent jobs, tied embeddings), reports
// its boards, survives losing a stage, and frees every board when unloaded: with the boards
// handing hidden states to each other (pipeline_handoff: direct, several tokens per Step) and
// with waferd relaying them (host, one token per Step).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 60000;

// Three embedded mini boards; small prefill chunks so that prompts take several steps.
std::unique_ptr<DaemonHarness> ThreeBoards(const std::string& handoff = "direct") {
  return std::make_unique<DaemonHarness>([handoff](DaemonConfig& c) {
    c.boards.resize(3);
    for (size_t i = 0; i < c.boards.size(); ++i) {
      c.boards[i].endpoint = "inproc://pipeline-board" + std::to_string(i);
    }
    c.prefill_chunk_tokens = 7;
    c.pipeline_handoff = handoff;
  });
}

// Each test runs with both hand-offs (the parameter is DaemonConfig::pipeline_handoff).
class PipelineTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<DaemonHarness> Boards() const { return ThreeBoards(GetParam()); }
  bool direct() const { return GetParam() == "direct"; }
};

OperationResult LoadOn(AdminClient& admin, const std::string& path, const std::string& name,
                       std::vector<uint32_t> boards) {
  LoadModel load;
  load.path = path;
  load.name = name;
  load.board = boards[0];
  load.boards = std::move(boards);
  load.slots = 4;
  load.context_length = 512;
  OperationResult r;
  EXPECT_TRUE(IsOk(admin.Operate(load, nullptr, &r, kTimeoutMs)));
  return r;
}

std::vector<uint32_t> Tokens(JobClient& client, const std::string& model,
                             const std::string& prompt, float temperature, uint64_t seed) {
  SubmitJob job;
  job.model = model;
  job.prompt_text = prompt;
  job.max_tokens = 24;
  job.sampling.temperature = temperature;
  job.sampling.top_k = temperature > 0 ? 20 : 0;
  job.sampling.seed = seed;
  std::vector<uint32_t> tokens;
  SubmitOutcome outcome;
  JobFinished finished;
  EXPECT_TRUE(IsOk(client
                  .Run(job,
                       [&](const TokenChunk& c) {
                         tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
                       },
                       &outcome, &finished, kTimeoutMs)
                  ));
  EXPECT_TRUE(outcome.accepted) << outcome.rejection.detail;
  EXPECT_EQ(finished.reason, FinishReason::kLength) << finished.detail;
  EXPECT_GT(finished.timings.device_ns, 0);
  return tokens;
}

StatusReply Status(AdminClient& admin) {
  StatusReply status;
  EXPECT_TRUE(admin.QueryStatus(&status, kTimeoutMs).ok());
  return status;
}

// SRAM use reaches the daemon with each board's next telemetry report (at once after a load or
// unload, but asynchronously): polls until board `board` shows SRAM in use, or none.
bool WaitForSram(AdminClient& admin, uint32_t board, bool in_use) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const StatusReply status = Status(admin);
    if (board < status.boards.size() && (status.boards[board].sram_used_bytes > 0) == in_use) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

const ModelInfo* Find(const StatusReply& status, const std::string& name) {
  for (const ModelInfo& m : status.models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

TEST_P(PipelineTest, SplitModelStreamsTheTokensOfTheWholeModel) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/small", "small", 21));
  auto h = Boards();
  auto admin = h->NewAdminClient();
  ASSERT_EQ(LoadOn(*admin, dir.path() + "/small", "whole", {0}).code, ErrorCode::kNone);
  const OperationResult split = LoadOn(*admin, dir.path() + "/small", "split", {1, 2});
  ASSERT_EQ(split.code, ErrorCode::kNone) << split.detail;

  const StatusReply status = Status(*admin);
  const ModelInfo* info = Find(status, "split");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->boards, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(info->board, 1u);
  EXPECT_TRUE(WaitForSram(*admin, 1, true));
  EXPECT_TRUE(WaitForSram(*admin, 2, true));

  auto client = h->NewJobClient();
  const std::string prompt = "def pipeline(stages): return [stage for stage in stages]";
  EXPECT_EQ(Tokens(*client, "split", prompt, 0, 0), Tokens(*client, "whole", prompt, 0, 0));
  EXPECT_EQ(Tokens(*client, "split", prompt, 0.9f, 42), Tokens(*client, "whole", prompt, 0.9f, 42));

  // Several jobs at once share the pipeline's steps; each still gets its own tokens.
  std::vector<std::vector<uint32_t>> expected;
  for (int i = 0; i < 4; ++i) {
    expected.push_back(Tokens(*client, "whole", "job " + std::to_string(i), 0, 0));
  }
  std::vector<std::unique_ptr<JobClient>> clients;
  std::vector<std::thread> threads;
  std::vector<std::vector<uint32_t>> got(4);
  for (int i = 0; i < 4; ++i) clients.push_back(h->NewJobClient());
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(
        [&, i] { got[i] = Tokens(*clients[i], "split", "job " + std::to_string(i), 0, 0); });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(got, expected);

  // Unloading frees both boards.
  OperationResult unload;
  ASSERT_TRUE(admin->Operate(UnloadModel{0, "split", -1}, nullptr, &unload, kTimeoutMs).ok());
  EXPECT_EQ(unload.code, ErrorCode::kNone) << unload.detail;
  EXPECT_EQ(Find(Status(*admin), "split"), nullptr);
  EXPECT_TRUE(WaitForSram(*admin, 1, false));
  EXPECT_TRUE(WaitForSram(*admin, 2, false));
  EXPECT_TRUE(WaitForSram(*admin, 0, true));  // "whole" stays.
}

// Counted in Steps the first board answered (one job alone, so each Step carries it once):
// after ceil(prompt / 7) prefill chunks, the last of which samples the first token, a Step
// yields decode_tokens_per_step (8) tokens when the boards hand hidden states to each other, and
// one token when waferd relays every stage.
TEST_P(PipelineTest, AStepOfASplitModelYieldsTheTokensOfAStepOnOneBoard) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/small", "small", 21));
  auto h = Boards();
  auto admin = h->NewAdminClient();
  ASSERT_EQ(LoadOn(*admin, dir.path() + "/small", "split", {1, 2}).code, ErrorCode::kNone);
  const uint64_t before = Status(*admin).boards[1].steps;
  auto client = h->NewJobClient();
  SubmitJob job;
  job.model = "split";
  job.prompt_text = "def pipeline(stages):";
  job.max_tokens = 24;
  SubmitOutcome outcome;
  JobFinished finished;
  size_t tokens = 0;
  ASSERT_TRUE(IsOk(client
                  ->Run(job, [&](const TokenChunk& c) { tokens += c.tokens.size(); }, &outcome,
                        &finished, kTimeoutMs)
                  ));
  ASSERT_EQ(finished.reason, FinishReason::kLength) << finished.detail;
  ASSERT_EQ(tokens, 24u);
  const uint64_t prefill_steps = (finished.prompt_tokens + 6) / 7;
  ASSERT_GT(prefill_steps, 0u);
  const uint64_t decode_steps = direct() ? 3 : 23;  // 23 tokens after the prefill's first.
  EXPECT_EQ(Status(*admin).boards[1].steps - before, prefill_steps + decode_steps)
      << "prompt of " << finished.prompt_tokens << " tokens";
}

TEST_P(PipelineTest, TiedEmbeddingsOverThreeBoardsInAnyOrder) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tied", "small", 5, "--tied"));
  auto h = Boards();
  auto admin = h->NewAdminClient();
  ASSERT_EQ(LoadOn(*admin, dir.path() + "/tied", "whole", {1}).code, ErrorCode::kNone);
  const OperationResult split = LoadOn(*admin, dir.path() + "/tied", "split", {2, 0, 1});
  ASSERT_EQ(split.code, ErrorCode::kNone) << split.detail;
  auto client = h->NewJobClient();
  const std::string prompt = "The last board holds a copy of the embedding as its head.";
  EXPECT_EQ(Tokens(*client, "split", prompt, 0, 0), Tokens(*client, "whole", prompt, 0, 0));
}

TEST_P(PipelineTest, ShapeOnlyModelTooBigForOneBoardRunsOverThree) {
  TempDir dir;
  // ~0.9 B parameters at 16 bit, 1.8 GB: three mini wafers' worth with its KV reservation.
  std::filesystem::create_directories(dir.path() + "/big");
  std::ofstream(dir.path() + "/big/config.json")
      << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 32000,)"
      << R"( "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 16,)"
      << R"( "num_attention_heads": 16, "num_key_value_heads": 4, "rms_norm_eps": 1e-05,)"
      << R"( "rope_theta": 10000.0, "max_position_embeddings": 1024, "tie_word_embeddings": false,)"
      << R"( "torch_dtype": "bfloat16"})";
  auto h = Boards();
  auto admin = h->NewAdminClient();
  const OperationResult one = LoadOn(*admin, dir.path() + "/big", "big", {0});
  EXPECT_EQ(one.code, ErrorCode::kResourceExhausted);
  EXPECT_NE(one.detail.find("boards"), std::string::npos) << one.detail;
  const OperationResult three = LoadOn(*admin, dir.path() + "/big", "big", {0, 1, 2});
  ASSERT_EQ(three.code, ErrorCode::kNone) << three.detail;
  auto client = h->NewJobClient();
  SubmitJob job;
  job.model = "big";
  job.prompt_tokens = {1, 2, 3, 4, 5};
  job.max_tokens = 10;
  SubmitOutcome outcome;
  JobFinished finished;
  size_t tokens = 0;
  ASSERT_TRUE(client
                  ->Run(job, [&](const TokenChunk& c) { tokens += c.tokens.size(); }, &outcome,
                        &finished, kTimeoutMs)
                  .ok());
  EXPECT_EQ(tokens, 10u);
  EXPECT_EQ(finished.reason, FinishReason::kLength);
  EXPECT_GT(finished.timings.device_ns, 0);
}

// Loads tiny's bigger sibling over boards 0 and 1, streams `prompt` undisturbed, then again with
// `interrupt` called once the first chunk has arrived; expects the interrupted stream to finish
// by length with exactly the undisturbed tokens.
void ExpectSplitStreamSurvives(const std::string& handoff,
                               const std::function<void(AdminClient&)>& interrupt) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/small", "small", 21));
  auto h = ThreeBoards(handoff);
  auto admin = h->NewAdminClient();
  const OperationResult split = LoadOn(*admin, dir.path() + "/small", "split", {0, 1});
  ASSERT_EQ(split.code, ErrorCode::kNone) << split.detail;
  auto client = h->NewJobClient();
  const std::string prompt = "for stage in pipeline:";
  const std::vector<uint32_t> reference = Tokens(*client, "split", prompt, 0, 0);

  SubmitJob job;
  job.model = "split";
  job.prompt_text = prompt;
  job.max_tokens = 24;
  SubmitOutcome outcome;
  ASSERT_TRUE(client->Submit(job, &outcome, kTimeoutMs).ok());
  ASSERT_TRUE(outcome.accepted);
  std::vector<uint32_t> tokens;
  bool interrupted = false;
  JobFinished finished;
  for (;;) {
    JobMessage m;
    ASSERT_TRUE(IsOk(client->Receive(&m, kTimeoutMs)));
    if (auto* c = std::get_if<TokenChunk>(&m)) {
      tokens.insert(tokens.end(), c->tokens.begin(), c->tokens.end());
      if (!interrupted) {
        interrupt(*admin);
        interrupted = true;
      }
    } else if (auto* f = std::get_if<JobFinished>(&m)) {
      finished = *f;
      break;
    }
  }
  EXPECT_EQ(finished.reason, FinishReason::kLength) << finished.detail;
  EXPECT_EQ(tokens, reference);
}

TEST_P(PipelineTest, LosingTheLastBoardMidStreamReloadsAndTheStreamContinuesIdentically) {
  ExpectSplitStreamSurvives(GetParam(), [](AdminClient& admin) {
    // The last board power-cycles: both stages are lost, the job re-queued, the model reloaded
    // over both boards and the job recomputed from prompt + output so far.
    OperationResult r;
    ASSERT_TRUE(admin.Operate(ResetBoard{0, 1}, nullptr, &r, kTimeoutMs).ok());
    EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
  });
}

TEST_P(PipelineTest, APeFaultOnTheLastBoardIsRepairedThereAndTheStreamContinuesIdentically) {
  ExpectSplitStreamSurvives(GetParam(), [](AdminClient& admin) {
    // The PE at the top-left of board 1 holds the first tensor of its first layer.
    OperationResult r;
    ASSERT_TRUE(
        admin.Operate(InjectFault{0, 1, "pe_stop", 0, 0, 0, 0}, nullptr, &r, kTimeoutMs).ok());
    EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
    // Board 1 repairs its stage in place (its log says so once the repair is done).
    bool repaired = false;
    for (int i = 0; i < 200 && !repaired; ++i) {
      BoardLogReply log;
      ASSERT_TRUE(admin.ReadBoardLog(1, 0, &log, kTimeoutMs).ok());
      for (const BoardLogEntry& e : log.records) repaired |= e.code == "kModelRepaired";
      if (!repaired) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(repaired) << "board 1 repaired its stage in place";
  });
}

TEST_P(PipelineTest, LongPromptsAtOnceStayWithinTheHiddenStateLimitOfAStep) {
  // Hidden 640: a Step carries at most 2^18 / 640 = 409 tokens' hidden states between boards.
  // A 500-token prompt in 512-token prefill chunks would need 500 in one step: the step loop
  // must cut its chunks to the limit (the board refuses a step over it), here for three
  // prompts at once.
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/demo", "demo", 3));
  auto h = std::make_unique<DaemonHarness>([this](DaemonConfig& c) {
    c.boards.resize(3);
    for (size_t i = 0; i < c.boards.size(); ++i) {
      c.boards[i].endpoint = "inproc://hidden-board" + std::to_string(i);
    }
    c.prefill_chunk_tokens = 512;
    c.pipeline_handoff = GetParam();
  });
  auto admin = h->NewAdminClient();
  ASSERT_EQ(LoadOn(*admin, dir.path() + "/demo", "whole", {0}).code, ErrorCode::kNone);
  ASSERT_EQ(LoadOn(*admin, dir.path() + "/demo", "split", {1, 2}).code, ErrorCode::kNone);
  auto run = [&](JobClient& client, const std::string& model, uint32_t seed) {
    SubmitJob job;
    job.model = model;
    for (uint32_t i = 0; i < 500; ++i) job.prompt_tokens.push_back((i * 7 + seed) % 200 + 1);
    job.max_tokens = 8;
    std::vector<uint32_t> tokens;
    SubmitOutcome outcome;
    JobFinished finished;
    EXPECT_TRUE(client
                    .Run(job,
                         [&](const TokenChunk& c) {
                           tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
                         },
                         &outcome, &finished, kTimeoutMs)
                    .ok());
    EXPECT_EQ(finished.reason, FinishReason::kLength) << finished.detail;
    return tokens;
  };
  auto client = h->NewJobClient();
  std::vector<std::vector<uint32_t>> expected;
  for (uint32_t seed = 0; seed < 3; ++seed) expected.push_back(run(*client, "whole", seed));
  std::vector<std::unique_ptr<JobClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(h->NewJobClient());
  std::vector<std::vector<uint32_t>> got(3);
  std::vector<std::thread> threads;
  for (uint32_t seed = 0; seed < 3; ++seed) {
    threads.emplace_back([&, seed] { got[seed] = run(*clients[seed], "split", seed); });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(got, expected);
}

TEST(PipelineLoadTest, BadBoardListsAreRefused) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/small", "small", 21));
  auto h = ThreeBoards();
  auto admin = h->NewAdminClient();
  const OperationResult missing = LoadOn(*admin, dir.path() + "/small", "m", {0, 5});
  EXPECT_EQ(missing.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(missing.detail.find("board 5 is not configured"), std::string::npos);
  const OperationResult twice = LoadOn(*admin, dir.path() + "/small", "m", {1, 1});
  EXPECT_EQ(twice.code, ErrorCode::kInvalidArgument);
  EXPECT_NE(twice.detail.find("listed twice"), std::string::npos);
  EXPECT_TRUE(Status(*admin).models.empty());
}

INSTANTIATE_TEST_SUITE_P(Handoff, PipelineTest, ::testing::Values("direct", "host"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param == "direct" ? "BoardToBoard" : "RelayedByWaferd";
                         });

}  // namespace
}  // namespace wafer::testing

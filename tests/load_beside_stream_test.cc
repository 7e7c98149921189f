// A load does not stall the board's other work: while a stream runs on model A, a model several
// times larger loads onto the same board; A keeps stepping throughout, at most one WriteWeights
// of the new model goes to the board between two of A's Steps, and both succeed. The board's
// commands are counted on the way to the board (a recording link from the injected factory),
// never timed.
#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"
#include "tests/forwarding_board_link.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

enum class Call { kBegin, kWrite, kCommit, kStep };

struct CallLog {
  std::mutex mu;
  std::vector<std::pair<Call, uint32_t>> calls;  // (call, model id), in the order sent.
  void Add(Call call, uint32_t model_id) {
    std::lock_guard<std::mutex> lock(mu);
    calls.emplace_back(call, model_id);
  }
};

// Forwards every call to the real link and records the data-path ones.
class RecordingLink final : public ForwardingBoardLink {
 public:
  RecordingLink(std::unique_ptr<BoardLink> inner, CallLog& log)
      : ForwardingBoardLink(std::move(inner)), log_(log) {}
  HostStatus BeginModel(const ModelManifest& manifest) override {
    log_.Add(Call::kBegin, manifest.model_id);
    return ForwardingBoardLink::BeginModel(manifest);
  }
  HostStatus WriteWeights(uint32_t model_id, uint32_t tensor, uint64_t offset,
                          std::span<const std::byte> data) override {
    log_.Add(Call::kWrite, model_id);
    return ForwardingBoardLink::WriteWeights(model_id, tensor, offset, data);
  }
  HostStatus CommitModel(uint32_t model_id) override {
    log_.Add(Call::kCommit, model_id);
    return ForwardingBoardLink::CommitModel(model_id);
  }
  HostResult<StepOutcome> Step(uint32_t model_id, const std::vector<SeqStep>& seqs) override {
    log_.Add(Call::kStep, model_id);
    return ForwardingBoardLink::Step(model_id, seqs);
  }

 private:
  CallLog& log_;
};

TEST(LoadBesideStreamTest, AStreamKeepsSteppingWhileALargerModelLoadsOntoItsBoard) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/a", "tiny", 3));
  ASSERT_TRUE(WriteModel(dir.path() + "/b", "small", 4));  // About 20x the bytes of tiny.
  CallLog log;
  DaemonHarness h(nullptr, [&log](BoardLinkFactory real) -> BoardLinkFactory {
    return [&log, real](const BoardConfig& config) -> HostResult<std::unique_ptr<BoardLink>> {
      HostResult<std::unique_ptr<BoardLink>> link = real(config);
      if (!link.ok()) return std::move(link).error();
      return std::unique_ptr<BoardLink>(new RecordingLink(std::move(link).value(), log));
    };
  });
  ASSERT_EQ(h.Load(dir.path() + "/a", "a", 4), ErrorCode::kNone);

  // A's stream runs on its own client thread.
  std::atomic<uint32_t> streamed{0};
  SubmitOutcome outcome;
  JobFinished finished;
  auto client = h.NewJobClient();
  std::thread stream([&] {
    SubmitJob job;
    job.model = "a";
    job.prompt_tokens = {1, 2, 3};
    job.max_tokens = 1000;
    EXPECT_TRUE(IsOk(client
                    ->Run(job, [&](const TokenChunk& c) { streamed += c.tokens.size(); },
                          &outcome, &finished, 60000)
                    ));
  });
  for (int i = 0; i < 3000 && streamed.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GT(streamed.load(), 0u) << "A's stream did not start";
  const uint32_t before_load = streamed.load();
  EXPECT_EQ(h.Load(dir.path() + "/b", "b", 4), ErrorCode::kNone);
  const uint32_t after_load = streamed.load();
  stream.join();
  ASSERT_TRUE(outcome.accepted);
  EXPECT_EQ(finished.reason, FinishReason::kLength);
  EXPECT_EQ(finished.completion_tokens, 1000u);

  std::lock_guard<std::mutex> lock(log.mu);
  uint32_t b_id = 0, a_id = 0;
  size_t begin = 0, commit = 0;
  for (size_t i = 0; i < log.calls.size(); ++i) {
    const auto [call, id] = log.calls[i];
    if (call == Call::kStep && a_id == 0) a_id = id;
    if (call == Call::kBegin && a_id != 0 && b_id == 0) {
      b_id = id;
      begin = i;
    }
    if (call == Call::kCommit && b_id != 0 && id == b_id) commit = i;
  }
  ASSERT_NE(b_id, 0u);
  ASSERT_GT(commit, begin);
  // While A steps (up to its last Step before B's commit), B's chunks alternate with A's Steps.
  size_t last_a_step = begin;
  for (size_t i = begin; i < commit; ++i) {
    if (log.calls[i].first == Call::kStep && log.calls[i].second == a_id) last_a_step = i;
  }
  size_t a_steps = 0, b_writes = 0, writes_since_step = 0, most_writes_between_steps = 0;
  for (size_t i = begin; i <= last_a_step; ++i) {
    const auto [call, id] = log.calls[i];
    if (call == Call::kStep && id == a_id) {
      ++a_steps;
      writes_since_step = 0;
    } else if (call == Call::kWrite && id == b_id) {
      ++b_writes;
      most_writes_between_steps = std::max(most_writes_between_steps, ++writes_since_step);
    }
  }
  size_t total_b_writes = 0;
  for (size_t i = begin; i < commit; ++i) total_b_writes += log.calls[i].first == Call::kWrite;
  std::printf("B: %zu chunks; %zu of A's Steps and %zu of B's chunks interleaved while A ran; "
              "A streamed %u tokens during the load\n",
              total_b_writes, a_steps, b_writes, after_load - before_load);
  EXPECT_GT(total_b_writes, 4u) << "B should take several chunks";
  EXPECT_GT(a_steps, 0u) << "A did not step while B was staged";
  EXPECT_LE(most_writes_between_steps, 1u);
  EXPECT_GT(after_load, before_load) << "A's stream stalled for the whole load";
}

}  // namespace
}  // namespace wafer::testing

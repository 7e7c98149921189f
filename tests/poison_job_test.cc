// A job that takes its board down is found and failed, and nobody else pays for it: the board
// here "hangs" (it is reset under the daemon and the Step gets no answer) whenever a Step
// carries the poison token. The first time, every job of that Step becomes a suspect and runs
// alone; the poison job then takes the board down alone and fails as kPoison, while its
// neighbours, suspects or not, finish with exactly the tokens of an undisturbed run.
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "host/client/wafer_client.h"
#include "tests/daemon_harness.h"
#include "tests/forwarding_board_link.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr uint32_t kPoisonToken = 77;

// A board whose firmware dies on a Step that carries the poison token: the board resets (its
// models are gone) and the Step is never answered.
class PoisonableLink final : public ForwardingBoardLink {
 public:
  PoisonableLink(std::unique_ptr<BoardLink> inner, std::atomic<int>& crashes)
      : ForwardingBoardLink(std::move(inner)), crashes_(crashes) {}
  HostResult<StepOutcome> Step(uint32_t model_id, const std::vector<SeqStep>& seqs) override {
    for (const SeqStep& s : seqs) {
      for (uint32_t t : s.input_tokens) {
        if (t != kPoisonToken) continue;
        ++crashes_;
        (void)inner().Reset();
        return Error{StatusCode::kUnavailable,
                     "no answer to Step (the firmware died on its input)"};
      }
    }
    return ForwardingBoardLink::Step(model_id, seqs);
  }

 private:
  std::atomic<int>& crashes_;
};

SubmitJob Greedy(std::vector<uint32_t> prompt, uint32_t max_tokens) {
  SubmitJob s;
  s.model = "tiny";
  s.prompt_tokens = std::move(prompt);
  s.max_tokens = max_tokens;
  s.want_text = false;
  return s;
}

TEST(PoisonJobTest, AJobThatTakesItsBoardDownIsFailedAndItsNeighboursFinish) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 8));
  std::atomic<int> crashes{0};
  DaemonHarness h(nullptr, [&crashes](BoardLinkFactory real) -> BoardLinkFactory {
    return [&crashes, real](const BoardConfig& config) -> HostResult<std::unique_ptr<BoardLink>> {
      HostResult<std::unique_ptr<BoardLink>> link = real(config);
      if (!link.ok()) return std::move(link).error();
      return std::unique_ptr<BoardLink>(new PoisonableLink(std::move(link).value(), crashes));
    };
  });
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 8), ErrorCode::kNone);
  constexpr uint32_t kTokens = 120;
  const std::vector<std::vector<uint32_t>> prompts = {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}};

  // The neighbours' undisturbed outputs, first.
  std::vector<std::vector<uint32_t>> reference;
  auto client = h.NewJobClient();
  for (const auto& prompt : prompts) {
    std::vector<uint32_t> tokens;
    SubmitOutcome outcome;
    JobFinished finished;
    ASSERT_TRUE(client
                    ->Run(Greedy(prompt, kTokens),
                          [&](const TokenChunk& c) {
                            tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
                          },
                          &outcome, &finished, 30000)
                    .ok());
    reference.push_back(tokens);
  }
  ASSERT_EQ(crashes.load(), 0);

  // Now the neighbours again, and a poison prompt submitted together with them (its prefill
  // shares their first Steps).
  std::vector<uint64_t> ids;
  for (const auto& prompt : prompts) {
    SubmitOutcome outcome;
    ASSERT_TRUE(client->Submit(Greedy(prompt, kTokens), &outcome, 5000).ok());
    ASSERT_TRUE(outcome.accepted);
    ids.push_back(outcome.accepted_reply.job_id);
  }
  SubmitOutcome poison;
  ASSERT_TRUE(client->Submit(Greedy({1, kPoisonToken, 2}, kTokens), &poison, 5000).ok());
  ASSERT_TRUE(poison.accepted);
  std::map<uint64_t, std::vector<uint32_t>> outputs;
  std::map<uint64_t, JobFinished> endings;
  while (endings.size() < ids.size() + 1) {
    JobMessage m;
    ASSERT_TRUE(client->Receive(&m, 30000).ok()) << "stalled after " << crashes.load()
                                                 << " crashes";
    if (const auto* c = std::get_if<TokenChunk>(&m)) {
      outputs[c->job_id].insert(outputs[c->job_id].end(), c->tokens.begin(), c->tokens.end());
    } else if (const auto* f = std::get_if<JobFinished>(&m)) {
      endings[f->job_id] = *f;
    }
  }
  // It took the board down twice: once among the others, once alone; never again.
  EXPECT_EQ(crashes.load(), 2);
  const JobFinished& p = endings[poison.accepted_reply.job_id];
  EXPECT_EQ(p.reason, FinishReason::kPoison) << FinishReasonName(p.reason) << " " << p.detail;
  EXPECT_EQ(p.error_code, ErrorCode::kBoardUnavailable);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(endings[ids[i]].reason, FinishReason::kLength) << endings[ids[i]].detail;
    EXPECT_EQ(outputs[ids[i]], reference[i]) << "neighbour " << i << " was harmed";
  }
  // The model comes back in service: a new job runs. The reload after the second crash may
  // still be under way when the poison job ends, so MODEL_NOT_READY is retried (bounded).
  std::vector<uint32_t> after;
  SubmitOutcome outcome;
  JobFinished finished;
  for (int attempt = 0; attempt < 300 && !outcome.accepted; ++attempt) {
    after.clear();
    ASSERT_TRUE(client
                    ->Run(Greedy(prompts[0], kTokens),
                          [&](const TokenChunk& c) {
                            after.insert(after.end(), c.tokens.begin(), c.tokens.end());
                          },
                          &outcome, &finished, 30000)
                    .ok());
    if (!outcome.accepted) {
      ASSERT_EQ(outcome.rejection.code, ErrorCode::kModelNotReady) << outcome.rejection.detail;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ASSERT_TRUE(outcome.accepted);
  EXPECT_EQ(after, reference[0]);
}

}  // namespace
}  // namespace wafer::testing

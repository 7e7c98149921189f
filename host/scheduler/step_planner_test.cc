#include "host/scheduler/step_planner.h"

#include <gtest/gtest.h>

#include "host/jobs/in_memory_job_store.h"

namespace wafer::host {
namespace {

class StepPlannerTest : public ::testing::Test {
 protected:
  StepPlannerTest() : clock_(5'000), table_(store_, 100, UINT64_MAX) {}

  // A running job with `prompt_tokens` prompt tokens, `output` generated and slot `slot`.
  uint64_t AddRunning(uint32_t prompt_tokens, std::vector<uint32_t> output = {},
                      uint32_t max_tokens = 100) {
    auto job = std::make_unique<JobRecord>();
    job->model = "m";
    for (uint32_t i = 0; i < prompt_tokens; ++i) job->prompt.push_back(10 + i);
    job->prefill = job->prompt;
    job->max_tokens = max_tokens;
    job->stop_tokens = {2};
    job->accepted_ns = 1'000;
    JobRecord* record = table_.Add(std::move(job)).value();
    table_.MarkRunning(*record, static_cast<uint32_t>(record->accept_seq - 1));
    if (!output.empty()) {
      table_.AppendChunk(*record, output, "").IgnoreError();
      record->prefill_fed = static_cast<uint32_t>(record->prefill.size());
    }
    return record->id;
  }

  void StepReturned(const std::vector<uint64_t>& ids) {
    for (uint64_t id : ids) table_.Find(id)->in_flight = false;
  }

  FakeClock clock_;
  InMemoryJobStore store_;
  JobTable table_;
  std::vector<SeqStep> seqs_;
  std::vector<uint64_t> ids_;
  std::vector<uint64_t> unfit_;
};

TEST_F(StepPlannerTest, PrefillGoesInChunksAndTheLastChunkGenerates) {
  StepPlanner planner({.max_batch = 8, .steps_in_flight = 1, .prefill_chunk_tokens = 4,
                       .decode_tokens_per_step = 8},
                      table_, clock_);
  const uint64_t id = AddRunning(10);
  std::deque<uint64_t> running{id};
  ASSERT_EQ(planner.Plan({.serial = 1}, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_TRUE(seqs_[0].reset);
  EXPECT_EQ(seqs_[0].input_tokens, (std::vector<uint32_t>{10, 11, 12, 13}));
  EXPECT_EQ(seqs_[0].generate, 0u);
  EXPECT_EQ(seqs_[0].slot, 0u);
  EXPECT_EQ(seqs_[0].stop_tokens, std::vector<uint32_t>{2});
  EXPECT_TRUE(table_.Find(id)->in_flight);
  EXPECT_EQ(table_.Find(id)->step_serial, 1u);
  // In flight: nothing more to plan, and the order is left alone.
  EXPECT_EQ(planner.Plan({.serial = 2}, running, &seqs_, &ids_, &unfit_), 0u);
  EXPECT_TRUE(seqs_.empty());
  StepReturned({id});
  ASSERT_EQ(planner.Plan({.serial = 3}, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_FALSE(seqs_[0].reset);
  EXPECT_EQ(seqs_[0].input_tokens.size(), 4u);
  EXPECT_EQ(seqs_[0].generate, 0u);
  StepReturned({id});
  ASSERT_EQ(planner.Plan({.serial = 4}, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_EQ(seqs_[0].input_tokens, (std::vector<uint32_t>{18, 19}));
  EXPECT_EQ(seqs_[0].generate, 1u);  // Time to first token: the token comes at once.
}

TEST_F(StepPlannerTest, DecodeGeneratesUpToThePerStepLimitOrWhatIsLeft) {
  StepPlanner planner({.max_batch = 8, .steps_in_flight = 1, .prefill_chunk_tokens = 512,
                       .decode_tokens_per_step = 8},
                      table_, clock_);
  const uint64_t roomy = AddRunning(3, {40, 41});
  const uint64_t nearly_done = AddRunning(3, {50, 51}, /*max_tokens=*/5);
  std::deque<uint64_t> running{roomy, nearly_done};
  ASSERT_EQ(planner.Plan({.serial = 1}, running, &seqs_, &ids_, &unfit_), 2u);
  EXPECT_EQ(ids_, (std::vector<uint64_t>{roomy, nearly_done}));
  EXPECT_EQ(seqs_[0].input_tokens, std::vector<uint32_t>{41});
  EXPECT_EQ(seqs_[0].generate, 8u);
  EXPECT_EQ(seqs_[0].sampled_before, 2u);  // What a recomputed sampler skips.
  EXPECT_EQ(seqs_[1].input_tokens, std::vector<uint32_t>{51});
  EXPECT_EQ(seqs_[1].generate, 3u);
  // A pipelined model samples once per pass.
  StepReturned(ids_);
  ASSERT_EQ(planner.Plan({.serial = 2, .stages = 2}, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_EQ(seqs_[0].generate, 1u);
}

TEST_F(StepPlannerTest, RunningJobsSplitBetweenStepsInFlightAndRotate) {
  StepPlanner planner({.max_batch = 8, .steps_in_flight = 2, .prefill_chunk_tokens = 512,
                       .decode_tokens_per_step = 4},
                      table_, clock_);
  std::deque<uint64_t> running;
  for (int i = 0; i < 4; ++i) running.push_back(AddRunning(2, {7}));
  const uint64_t a = running[0], b = running[1], c = running[2], d = running[3];
  ASSERT_EQ(planner.Plan({.serial = 1}, running, &seqs_, &ids_, &unfit_), 2u);
  EXPECT_EQ(ids_, (std::vector<uint64_t>{a, b}));
  EXPECT_EQ(running, (std::deque<uint64_t>{c, d, a, b}));
  ASSERT_EQ(planner.Plan({.serial = 2}, running, &seqs_, &ids_, &unfit_), 2u);
  EXPECT_EQ(ids_, (std::vector<uint64_t>{c, d}));
  EXPECT_EQ(running, (std::deque<uint64_t>{a, b, c, d}));
  EXPECT_EQ(planner.Plan({.serial = 3}, running, &seqs_, &ids_, &unfit_), 0u);
}

TEST_F(StepPlannerTest, ASuspectOfABoardLossRunsWithNothingElseInFlight) {
  StepPlanner planner({.max_batch = 8, .steps_in_flight = 2, .prefill_chunk_tokens = 512,
                       .decode_tokens_per_step = 4},
                      table_, clock_);
  const uint64_t a = AddRunning(2, {7}), suspect = AddRunning(2, {7}), c = AddRunning(2, {7});
  table_.Find(suspect)->suspect_until_output = 5;  // Alone until its output passes 5 tokens.
  std::deque<uint64_t> running{a, suspect, c};
  // Others first: the suspect waits while anything of its model is in flight.
  ASSERT_EQ(planner.Plan({.serial = 1}, running, &seqs_, &ids_, &unfit_), 2u);
  EXPECT_EQ(ids_, (std::vector<uint64_t>{a, c}));
  EXPECT_EQ(planner.Plan({.serial = 2}, running, &seqs_, &ids_, &unfit_), 0u);
  StepReturned({a, c});
  // Then it goes alone, and nothing joins it or runs beside it.
  ASSERT_EQ(planner.Plan({.serial = 3}, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_EQ(ids_, std::vector<uint64_t>{suspect});
  EXPECT_EQ(planner.Plan({.serial = 4}, running, &seqs_, &ids_, &unfit_), 0u);
  // Past the point of the crash it is cleared, and batches with the others again.
  StepReturned({suspect});
  const std::vector<uint32_t> more = {1, 2, 3, 4, 5};
  ASSERT_TRUE(table_.AppendChunk(*table_.Find(suspect), more, "").ok());
  EXPECT_FALSE(table_.Find(suspect)->Suspect());
  EXPECT_EQ(planner.Plan({.serial = 5}, running, &seqs_, &ids_, &unfit_), 2u);
}

TEST_F(StepPlannerTest, APipelinesTokenBudgetBoundsPrefillAndDecode) {
  StepPlanner planner({.max_batch = 8, .steps_in_flight = 1, .prefill_chunk_tokens = 4,
                       .decode_tokens_per_step = 8},
                      table_, clock_);
  const uint64_t a = AddRunning(6), b = AddRunning(6), c = AddRunning(2, {9});
  std::deque<uint64_t> running{a, b, c};
  ASSERT_EQ(planner.Plan({.serial = 1, .stages = 1, .token_budget = 5}, running, &seqs_, &ids_, &unfit_),
            2u);
  EXPECT_EQ(ids_, (std::vector<uint64_t>{a, b}));
  EXPECT_EQ(seqs_[0].input_tokens.size(), 4u);
  EXPECT_EQ(seqs_[1].input_tokens.size(), 1u);  // The budget's last token.
  EXPECT_EQ(running, (std::deque<uint64_t>{c, a, b}));  // c waits for the next step.
}

TEST_F(StepPlannerTest, TheFirstStepStampsTheQueueWaitFromTheInjectedClock) {
  StepPlanner planner({}, table_, clock_);
  const uint64_t id = AddRunning(2);
  std::deque<uint64_t> running{id};
  clock_.Set(9'000);
  ASSERT_EQ(planner.Plan({.serial = 1}, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_EQ(table_.Find(id)->first_step_ns, 9'000);
  StepReturned({id});
  clock_.Set(20'000);
  planner.Plan({.serial = 2}, running, &seqs_, &ids_, &unfit_);
  EXPECT_EQ(table_.Find(id)->first_step_ns, 9'000);
}

TEST_F(StepPlannerTest, APrefillAnsweredWithNoTokenIsSentAgain) {
  StepPlanner planner({}, table_, clock_);
  const uint64_t id = AddRunning(2);
  std::deque<uint64_t> running{id};
  ASSERT_EQ(planner.Plan({.serial = 1}, running, &seqs_, &ids_, &unfit_), 1u);
  StepReturned({id});  // The board returned no token for it.
  ASSERT_EQ(planner.Plan({.serial = 2}, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_TRUE(seqs_[0].reset);
  EXPECT_EQ(seqs_[0].input_tokens, (std::vector<uint32_t>{10, 11}));
  EXPECT_EQ(seqs_[0].generate, 1u);
}

TEST_F(StepPlannerTest, AStepNeverOutgrowsTheBoardsFrameSequencesOrTokens) {
  StepPlanner planner({.max_batch = 64, .steps_in_flight = 1, .prefill_chunk_tokens = 512,
                       .decode_tokens_per_step = 8},
                      table_, clock_);
  std::deque<uint64_t> running;
  for (int i = 0; i < 6; ++i) running.push_back(AddRunning(100));  // 100 prompt tokens each.
  // Each prefill sequence takes 256 + 4 * (100 + 1 stop token) = 660 bytes: a frame with 1,800
  // bytes of room after its overhead holds two whole prompts and a 55-token piece of a third.
  StepTarget target{.serial = 1};
  target.max_frame_bytes = StepPlanner::kFrameOverheadBytes + 1800;
  ASSERT_EQ(planner.Plan(target, running, &seqs_, &ids_, &unfit_), 3u);
  EXPECT_EQ(seqs_[0].input_tokens.size(), 100u);
  EXPECT_EQ(seqs_[1].input_tokens.size(), 100u);
  EXPECT_EQ(seqs_[2].input_tokens.size(), 55u);
  EXPECT_EQ(seqs_[2].generate, 0u);  // Its prompt is not done.
  EXPECT_TRUE(unfit_.empty());
  StepReturned(ids_);

  // At most max_seqs sequences, and generated tokens within max_generate.
  target = StepTarget{.serial = 2};
  target.max_seqs = 2;
  ASSERT_EQ(planner.Plan(target, running, &seqs_, &ids_, &unfit_), 2u);
  StepReturned(ids_);
  std::deque<uint64_t> decoding;
  for (int i = 0; i < 3; ++i) decoding.push_back(AddRunning(2, {9}));
  target = StepTarget{.serial = 3};
  target.max_generate = 12;
  ASSERT_EQ(planner.Plan(target, decoding, &seqs_, &ids_, &unfit_), 2u);
  EXPECT_EQ(seqs_[0].generate, 8u);
  EXPECT_EQ(seqs_[1].generate, 4u);  // What is left of the step's 12.
}

TEST_F(StepPlannerTest, ASequenceNoStepCouldCarryIsReportedNotSent) {
  StepPlanner planner({}, table_, clock_);
  const uint64_t huge = AddRunning(2);
  table_.Find(huge)->stop_tokens.assign(1000, 7);  // 4,000 bytes of stop tokens.
  const uint64_t small = AddRunning(2);
  std::deque<uint64_t> running{huge, small};
  StepTarget target{.serial = 1};
  target.max_frame_bytes = StepPlanner::kFrameOverheadBytes + 2000;
  ASSERT_EQ(planner.Plan(target, running, &seqs_, &ids_, &unfit_), 1u);
  EXPECT_EQ(ids_, std::vector<uint64_t>{small});
  EXPECT_EQ(unfit_, std::vector<uint64_t>{huge});
  EXPECT_FALSE(table_.Find(huge)->in_flight);
}

TEST_F(StepPlannerTest, RecycledSequenceVectorsAreHandedOutAgain) {
  StepPlanner planner({}, table_, clock_);
  std::vector<SeqStep> seqs(3);
  const SeqStep* data = seqs.data();
  planner.Recycle(std::move(seqs));
  std::vector<SeqStep> again = planner.TakeSeqs();
  EXPECT_EQ(again.data(), data);
  EXPECT_TRUE(planner.TakeSeqs().empty());
}

}  // namespace
}  // namespace wafer::host

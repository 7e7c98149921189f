// PlanRequest::split_over_all_boards: an operator's pipeline over more boards than the model
// needs.
#include <gtest/gtest.h>

#include "host/placement/placement_planner.h"
#include "host/placement/testing/llama_archs.h"

namespace wafer::host {
namespace {

PlanRequest EightBOn(uint32_t boards) {
  PlanRequest r;
  r.arch = testing::Llama8B();
  r.board = BoardGeometry{750, 1200, 48 * 1024};  // wse3's usable fabric.
  r.boards = boards;
  r.slots = 8;
  r.context = 8192;
  r.split_over_all_boards = true;
  return r;
}

TEST(PlacementSplitTest, LayersSpreadEvenlyOverEveryBoard) {
  HostResult<Plan> plan = PlanPlacement(EightBOn(3));
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ASSERT_EQ(plan->boards.size(), 3u);
  EXPECT_EQ(plan->boards_needed, 3u);
  // 32 layers over 3 boards: 11, 11, 10 (layer l on board l * 3 / 32).
  EXPECT_EQ(plan->boards[0].stage.first_layer, 0u);
  EXPECT_EQ(plan->boards[0].stage.layer_count, 11u);
  EXPECT_EQ(plan->boards[1].stage.first_layer, 11u);
  EXPECT_EQ(plan->boards[1].stage.layer_count, 11u);
  EXPECT_EQ(plan->boards[2].stage.first_layer, 22u);
  EXPECT_EQ(plan->boards[2].stage.layer_count, 10u);
  EXPECT_TRUE(plan->boards[0].stage.has_embedding);
  EXPECT_FALSE(plan->boards[0].stage.has_head);
  EXPECT_TRUE(plan->boards[2].stage.has_head);
  EXPECT_FALSE(plan->boards[2].stage.has_embedding);
}

TEST(PlacementSplitTest, WithoutTheFlagTheFewestBoardsAreUsed) {
  PlanRequest r = EightBOn(3);
  r.split_over_all_boards = false;
  HostResult<Plan> plan = PlanPlacement(r);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  EXPECT_EQ(plan->boards.size(), 1u);
}

TEST(PlacementSplitTest, TiedEmbeddingGetsItsCopyOnTheLastBoard) {
  PlanRequest r = EightBOn(2);
  r.arch.tie_embeddings = true;
  HostResult<Plan> plan = PlanPlacement(r);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  // The plan places the copy as the head's LM head matrix, named after the embedding.
  int embeddings = 0, copies = 0;
  for (const StagePlacement& s : plan->stages) {
    for (const TensorPlacement& t : s.tensors) {
      if (t.role == TensorRole::kEmbedding) {
        ++embeddings;
        EXPECT_EQ(s.board, 0u);
      }
      if (t.role == TensorRole::kLmHead) {
        ++copies;
        EXPECT_EQ(s.board, 1u);
        EXPECT_NE(t.name.find("tied copy"), std::string::npos) << t.name;
      }
    }
  }
  EXPECT_EQ(embeddings, 1);
  EXPECT_EQ(copies, 1);
}

TEST(PlacementSplitTest, MoreBoardsThanLayersIsRefused) {
  PlanRequest r = EightBOn(33);
  auto plan = PlanPlacement(r);
  EXPECT_EQ(plan.status(), InvalidArgument());
  const std::string detail = plan.ok() ? std::string() : plan.error().message;
  EXPECT_NE(detail.find("33 boards for 32 layers"), std::string::npos) << detail;
}

TEST(PlacementSplitTest, AnEvenSplitThatOverflowsABoardIsRefused) {
  // 70B needs 4 wse3 boards; split evenly over 2 each would need twice the rows.
  PlanRequest r = EightBOn(2);
  r.arch = testing::Llama70B();
  EXPECT_EQ(PlanPlacement(r).status(), ResourceExhausted());
}

}  // namespace
}  // namespace wafer::host

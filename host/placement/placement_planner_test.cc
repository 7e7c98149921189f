#include "host/placement/placement_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "host/models/model_config.h"
#include "host/placement/testing/llama_archs.h"

namespace wafer::host {
namespace {

// The message of a failed HostResult/HostStatus; "" for a successful one.
template <typename R>
std::string MessageOf(const R& r) {
  return r.ok() ? std::string() : r.error().message;
}

using testing::Llama405B;
using testing::Llama70B;
using testing::Llama8B;

ModelArch Tiny(bool tied) {
  ModelArch a;
  a.vocab_size = 512;
  a.hidden_size = 64;
  a.intermediate_size = 172;
  a.num_layers = 4;
  a.num_heads = 4;
  a.num_kv_heads = 2;
  a.head_dim = 16;
  a.max_position = 1024;
  a.tie_embeddings = tied;
  return a;
}

constexpr BoardGeometry kWse3{762, 1172, 49152};
constexpr BoardGeometry kWse2{757, 996, 49152};
constexpr BoardGeometry kMini{128, 128, 49152};

PlanRequest Request(const ModelArch& arch, BoardGeometry board, uint32_t boards, uint32_t slots,
                    uint32_t context) {
  PlanRequest r;
  r.arch = arch;
  r.board = board;
  r.boards = boards;
  r.slots = slots;
  r.context = context;
  return r;
}

// Every invariant a plan must keep, checked cell by cell.
void CheckPlan(const Plan& plan) {
  const PlanRequest& r = plan.request;
  const uint64_t sram = r.board.sram_per_pe;
  const uint32_t w = plan.region_width, h = plan.region_height;
  ASSERT_EQ(plan.boards.size(), plan.boards_needed);
  ASSERT_LE(plan.boards_needed, r.boards);
  std::vector<std::vector<uint8_t>> used(plan.boards.size(), std::vector<uint8_t>(uint64_t{w} * h));
  std::map<std::string, int> seen;
  uint64_t weights = 0, kv = 0;
  int next_layer = 0;
  uint32_t last_board = 0;
  for (const StagePlacement& s : plan.stages) {
    ASSERT_LT(s.board, plan.boards.size());
    ASSERT_GE(s.board, last_board) << "stages go to boards in pipeline order";
    last_board = s.board;
    ASSERT_LE(uint64_t{s.band.x} + s.band.w, w);
    ASSERT_LE(uint64_t{s.band.y} + s.band.h, h);
    if (s.kind == StageKind::kLayer) {
      ASSERT_EQ(s.layer, static_cast<uint32_t>(next_layer++));
    }
    ASSERT_EQ(s.kv_bytes_per_pe, s.band.pes() == 0 ? 0 : (s.kv_bytes + s.band.pes() - 1) / s.band.pes());
    kv += s.kv_bytes;
    for (const TensorPlacement& t : s.tensors) {
      ++seen[t.name];
      weights += t.bytes;
      ASSERT_GT(t.rect.pes(), 0u) << t.name;
      // Inside its band.
      ASSERT_GE(t.rect.x, s.band.x);
      ASSERT_GE(t.rect.y, s.band.y);
      ASSERT_LE(t.rect.x + t.rect.w, s.band.x + s.band.w) << t.name;
      ASSERT_LE(t.rect.y + t.rect.h, s.band.y + s.band.h) << t.name;
      // Within the per-PE budget, beside the band's KV share.
      ASSERT_EQ(t.bytes_per_pe, (t.bytes + t.rect.pes() - 1) / t.rect.pes()) << t.name;
      ASSERT_LE(t.bytes_per_pe + s.kv_bytes_per_pe, sram) << t.name;
      // No PE in two rectangles.
      std::vector<uint8_t>& grid = used[s.board];
      for (uint32_t y = t.rect.y; y < t.rect.y + t.rect.h; ++y) {
        for (uint32_t x = t.rect.x; x < t.rect.x + t.rect.w; ++x) {
          ASSERT_EQ(grid[uint64_t{y} * w + x], 0) << t.name << " overlaps at " << x << "," << y;
          grid[uint64_t{y} * w + x] = 1;
        }
      }
    }
  }
  EXPECT_EQ(next_layer, static_cast<int>(r.arch.num_layers));
  for (const auto& [name, count] : seen) EXPECT_EQ(count, 1) << name;
  const size_t expected = 1 + 9 * size_t{r.arch.num_layers} + 1 +
                          (r.arch.tie_embeddings && plan.boards.size() == 1 ? 0 : 1);
  EXPECT_EQ(seen.size(), expected);
  EXPECT_EQ(plan.weight_bytes, weights);
  EXPECT_EQ(plan.kv_bytes, kv);
  if (!r.arch.tie_embeddings || plan.boards.size() == 1) {
    EXPECT_EQ(weights, CountParameters(r.arch) * r.dtype_bytes);
  }
  // Board summaries agree with the stages; layer ranges are contiguous and cover the model.
  uint32_t layer = 0;
  uint64_t board_weights = 0;
  for (const BoardPlan& b : plan.boards) {
    EXPECT_LE(b.rows_used, h);
    EXPECT_EQ(b.pes_used, uint64_t{b.rows_used} * w);
    EXPECT_EQ(b.sram_total, uint64_t{w} * h * sram);
    EXPECT_LE(b.weight_bytes + b.kv_bytes, b.sram_total);
    if (b.stage.layer_count > 0) {
      EXPECT_EQ(b.stage.first_layer, layer);
    }
    layer += b.stage.layer_count;
    board_weights += b.weight_bytes;
  }
  EXPECT_EQ(layer, r.arch.num_layers);
  EXPECT_EQ(board_weights, weights);
  EXPECT_TRUE(plan.boards.front().stage.has_embedding);
  EXPECT_TRUE(plan.boards.back().stage.has_head);
}

TEST(PlacementPlannerTest, Llama8BFitsOneWse3WithModestKv) {
  auto plan = PlanPlacement(Request(Llama8B(), kWse3, 1, 16, 8192));
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  EXPECT_EQ(plan->boards.size(), 1u);
  EXPECT_EQ(plan->boards[0].stage.layer_count, 32u);
  EXPECT_NEAR(double(plan->weight_bytes), 16.06e9, 0.1e9);
  // 16 x 8192 tokens x 32 layers x (K and V: 8 heads x 128 x 2 bytes).
  EXPECT_EQ(plan->kv_bytes, 16ull * 8192 * 32 * 2 * 8 * 128 * 2);
  CheckPlan(*plan);
  EXPECT_NE(PlanSummary(*plan).find("board 0: embedding + layers 0-31 + head"), std::string::npos)
      << PlanSummary(*plan);
}

TEST(PlacementPlannerTest, TinyModelFitsMini) {
  for (bool tied : {false, true}) {
    auto plan = PlanPlacement(Request(Tiny(tied), kMini, 1, 64, 1024));
    ASSERT_TRUE(plan.ok()) << plan.error().ToString();
    EXPECT_EQ(plan->boards.size(), 1u);
    CheckPlan(*plan);
  }
}

TEST(PlacementPlannerTest, Llama70BNeedsFourWse3) {
  auto needed = BoardsNeeded(Request(Llama70B(), kWse3, 1, 1, 8192));
  ASSERT_TRUE(needed.ok()) << needed.error().ToString();
  EXPECT_EQ(*needed, 4u);
  auto plan = PlanPlacement(Request(Llama70B(), kWse3, 8, 1, 8192));
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  EXPECT_EQ(plan->boards.size(), 4u) << "uses the fewest boards even when more are given";
  CheckPlan(*plan);
  // Balanced pipeline: every board carries a similar number of layers.
  for (const BoardPlan& b : plan->boards) {
    EXPECT_GE(b.stage.layer_count, 17u);
    EXPECT_LE(b.stage.layer_count, 23u);
  }
}

TEST(PlacementPlannerTest, Llama70BOnOneBoardIsResourceExhaustedWithBoardCount) {
  std::string detail;
  auto plan = PlanPlacement(Request(Llama70B(), kWse3, 1, 1, 8192));
  detail = MessageOf(plan);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(detail.find("needs 4 boards"), std::string::npos) << detail;
  EXPECT_NE(detail.find("1 board was given"), std::string::npos) << detail;
}

TEST(PlacementPlannerTest, Llama405BNeedsManyBoards) {
  auto needed3 = BoardsNeeded(Request(Llama405B(), kWse3, 1, 1, 8192));
  ASSERT_TRUE(needed3.ok()) << needed3.error().ToString();
  // 811 GB of weights over 43.9 GB wafers: at least 19.
  EXPECT_GE(*needed3, 19u);
  EXPECT_LE(*needed3, 24u);
  auto needed2 = BoardsNeeded(Request(Llama405B(), kWse2, 1, 1, 8192));
  ASSERT_TRUE(needed2.ok()) << needed2.error().ToString();
  EXPECT_GT(*needed2, *needed3) << "a wse2 wafer holds less";
  auto plan = PlanPlacement(Request(Llama405B(), kWse3, *needed3, 1, 8192));
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  CheckPlan(*plan);
}

TEST(PlacementPlannerTest, LayerLargerThanWaferCannotFitAtAll) {
  std::string detail;
  // A 405B layer (3.2 GB) on a 768 MiB wafer.
  auto plan = PlanPlacement(Request(Llama405B(), kMini, 1000, 1, 1024));
  detail = MessageOf(plan);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(detail.find("even one stage does not fit a wafer"), std::string::npos) << detail;
  // A KV reservation larger than a wafer per layer: 256 x 128K tokens of an 8B layer is 137 GB.
  detail.clear();
  auto kv = BoardsNeeded(Request(Llama8B(), kWse3, 100, 256, 131072));
  detail = MessageOf(kv);
  ASSERT_FALSE(kv.ok());
  EXPECT_EQ(kv.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(detail.find("of KV"), std::string::npos) << detail;
}

TEST(PlacementPlannerTest, KvReservationGrowsBandsAndBoards) {
  auto small = PlanPlacement(Request(Llama8B(), kWse3, 8, 1, 1024));
  auto large = PlanPlacement(Request(Llama8B(), kWse3, 8, 64, 32768));
  ASSERT_TRUE(small.ok() && large.ok()) << MessageOf(small) << MessageOf(large);
  EXPECT_GT(large->stages[1].band.h, small->stages[1].band.h);
  EXPECT_GT(large->boards.size(), small->boards.size());
  CheckPlan(*large);
}

TEST(PlacementPlannerTest, FabricConfinementShrinksCapacity) {
  PlanRequest full = Request(Llama8B(), kWse3, 16, 4, 4096);
  PlanRequest confined = full;
  confined.confine_width = 400;
  confined.confine_height = 500;
  auto a = PlanPlacement(full);
  auto b = PlanPlacement(confined);
  ASSERT_TRUE(a.ok() && b.ok()) << MessageOf(a) << MessageOf(b);
  EXPECT_EQ(a->boards.size(), 1u);
  EXPECT_GT(b->boards.size(), 1u);
  EXPECT_EQ(b->region_width, 400u);
  EXPECT_EQ(b->region_height, 500u);
  CheckPlan(*b);
  confined.boards = 1;
  EXPECT_EQ(PlanPlacement(confined).status().code(), StatusCode::kResourceExhausted);
  confined.confine_width = 763;  // Wider than the fabric.
  EXPECT_EQ(PlanPlacement(confined).status().code(), StatusCode::kInvalidArgument);
}

TEST(PlacementPlannerTest, PropertiesHoldOverManyShapes) {
  struct Case {
    ModelArch arch;
    BoardGeometry board;
    uint32_t slots, context, dtype, cw, ch;
  };
  const std::vector<Case> cases = {
      {Tiny(false), kMini, 1, 16, 2, 0, 0},     {Tiny(true), kMini, 256, 1024, 4, 0, 0},
      {Tiny(true), kMini, 8, 512, 2, 24, 16},   {Tiny(false), {13, 7, 4096}, 2, 64, 2, 0, 0},
      {Llama8B(), kWse2, 32, 8192, 2, 0, 0},    {Llama8B(), kWse3, 1, 1024, 4, 300, 300},
      {Llama70B(), kWse2, 4, 16384, 2, 0, 0},   {Tiny(false), {64, 64, 8192}, 3, 100, 2, 0, 0},
  };
  for (const Case& c : cases) {
    PlanRequest r = Request(c.arch, c.board, 1000, c.slots, c.context);
    r.dtype_bytes = c.dtype;
    r.confine_width = c.cw;
    r.confine_height = c.ch;
    auto plan = PlanPlacement(r);
    ASSERT_TRUE(plan.ok()) << plan.error().ToString();
    SCOPED_TRACE(PlanSummary(*plan));
    CheckPlan(*plan);
    // The fewest boards: one fewer is refused.
    if (plan->boards.size() > 1) {
      r.boards = static_cast<uint32_t>(plan->boards.size()) - 1;
      EXPECT_EQ(PlanPlacement(r).status().code(), StatusCode::kResourceExhausted);
    }
  }
}

TEST(PlacementPlannerTest, TiedEmbeddingIsCopiedOnlyAcrossBoards) {
  auto one = PlanPlacement(Request(Tiny(true), kMini, 1, 1, 16));
  ASSERT_TRUE(one.ok()) << one.error().ToString();
  EXPECT_EQ(one->stages.back().tensors.size(), 1u);  // Final norm only.
  // Tiny bands on a 9 x 3 region: one layer per board.
  PlanRequest r = Request(Tiny(true), {9, 3, 1u << 20}, 100, 1, 16);
  auto many = PlanPlacement(r);
  ASSERT_TRUE(many.ok()) << many.error().ToString();
  ASSERT_GT(many->boards.size(), 1u);
  ASSERT_EQ(many->stages.back().tensors.size(), 2u);
  EXPECT_NE(many->stages.back().tensors[1].name.find("tied copy"), std::string::npos);
  CheckPlan(*many);
}

TEST(PlacementPlannerTest, RejectsBadRequests) {
  PlanRequest r = Request(Tiny(false), kMini, 1, 1, 16);
  r.boards = 0;
  EXPECT_EQ(PlanPlacement(r).status().code(), StatusCode::kInvalidArgument);
  r = Request(Tiny(false), {0, 128, 49152}, 1, 1, 16);
  EXPECT_EQ(PlanPlacement(r).status().code(), StatusCode::kInvalidArgument);
  r = Request(ModelArch{}, kMini, 1, 1, 16);
  EXPECT_EQ(PlanPlacement(r).status().code(), StatusCode::kInvalidArgument);
  r = Request(Tiny(false), kMini, 1, 1, 16);
  r.dtype_bytes = 0;
  EXPECT_EQ(PlanPlacement(r).status().code(), StatusCode::kInvalidArgument);
}

TEST(PlacementPlannerTest, JsonDescribesThePlan) {
  auto plan = PlanPlacement(Request(Tiny(false), kMini, 1, 8, 256));
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  const auto j = nlohmann::json::parse(PlanJson(*plan, /*include_tensors=*/true));
  EXPECT_EQ(j["boards_needed"], 1);
  EXPECT_EQ(j["boards"].size(), 1u);
  EXPECT_EQ(j["stages"].size(), 6u);  // Embedding, 4 layers, head.
  EXPECT_EQ(j["stages"][1]["kind"], "layer");
  EXPECT_EQ(j["stages"][1]["tensors"].size(), 9u);
  EXPECT_EQ(j["weight_bytes"].get<uint64_t>(), plan->weight_bytes);
  EXPECT_EQ(j["boards"][0]["free_bytes"].get<uint64_t>(), plan->boards[0].free_bytes());
}

TEST(PlacementPlannerTest, GeometryFromIdentity) {
  BoardIdentity id;
  id.fabric_width = 128;
  id.fabric_height = 100;
  id.sram_per_pe = 49152;
  const BoardGeometry g = GeometryFromIdentity(id);
  EXPECT_EQ(g.fabric_width, 128u);
  EXPECT_EQ(g.fabric_height, 100u);
  EXPECT_EQ(g.sram_per_pe, 49152u);
}

}  // namespace
}  // namespace wafer::host

namespace wafer::host {
namespace {

TEST(PlacementPlannerTest, OriginRowPlacesBelowOtherModelsAndConfinesTheHeight) {
  PlanRequest at_top = Request(Tiny(false), kMini, 1, 8, 256);
  auto top = PlanPlacement(at_top);
  ASSERT_TRUE(top.ok()) << top.error().ToString();
  PlanRequest below = at_top;
  below.origin_row = 40;
  auto shifted = PlanPlacement(below);
  ASSERT_TRUE(shifted.ok()) << shifted.error().ToString();
  EXPECT_EQ(shifted->region_height, 128u - 40);
  ASSERT_EQ(shifted->stages.size(), top->stages.size());
  for (size_t s = 0; s < top->stages.size(); ++s) {
    EXPECT_EQ(shifted->stages[s].band.y, top->stages[s].band.y + 40);
    for (size_t t = 0; t < top->stages[s].tensors.size(); ++t) {
      PeRect moved = top->stages[s].tensors[t].rect;
      moved.y += 40;
      EXPECT_EQ(shifted->stages[s].tensors[t].rect, moved);
    }
  }
  // Too few rows below the origin: refused, not placed past the fabric's edge.
  below.origin_row = 128 - top->boards[0].rows_used + 1;
  EXPECT_EQ(PlanPlacement(below).status().code(), StatusCode::kResourceExhausted);
  below.origin_row = 128;
  EXPECT_EQ(PlanPlacement(below).status().code(), StatusCode::kInvalidArgument);
}

TEST(PlacementPlannerTest, ApplyPlanFillsEveryTensorAndOneKvRegionPerLayer) {
  auto plan = PlanPlacement(Request(Tiny(false), kMini, 1, 8, 256));
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  ModelManifest m;
  for (const StagePlacement& stage : plan->stages) {
    for (const TensorPlacement& t : stage.tensors) {
      m.tensors.push_back(TensorDesc{t.name, t.role, t.layer, DType::kBF16, {}, t.bytes, {}});
    }
  }
  std::reverse(m.tensors.begin(), m.tensors.end());  // Matched by role and layer, not order.
  HostStatus applied = ApplyPlan(*plan, 0, &m);
  ASSERT_TRUE(applied.ok()) << applied.error().ToString();
  for (const TensorDesc& t : m.tensors) {
    EXPECT_GT(t.placement.pes(), 0u) << t.name;
    EXPECT_LE(t.placement.y + t.placement.h, 128u);
  }
  ASSERT_EQ(m.kv_regions.size(), 4u);
  for (uint32_t l = 0; l < 4; ++l) {
    EXPECT_EQ(m.kv_regions[l].layer, l);
    EXPECT_GE(m.kv_regions[l].bytes_per_pe * m.kv_regions[l].rect.pes(),
              8ull * 256 * 2 * 2 * 16 * 2);  // slots x context x (K, V) x kv heads x dims x 2 B
  }
  // A tensor the plan does not know (another architecture) is refused by name.
  m.tensors.push_back(TensorDesc{"model.layers.9.mlp.up_proj.weight", TensorRole::kWUp, 9,
                                 DType::kBF16, {}, 64, {}});
  applied = ApplyPlan(*plan, 0, &m);
  EXPECT_EQ(applied.code(), StatusCode::kInvalidArgument);
  const std::string detail = MessageOf(applied);
  EXPECT_NE(detail.find("model.layers.9.mlp.up_proj.weight"), std::string::npos) << detail;
}

// PlanRequest::spread: the same boards and stages as the packed plan, every free row of each
// board handed to its bands, all of CheckPlan's invariants (budgets, no overlap) kept.
TEST(PlacementPlannerTest, SpreadFillsEveryBoardsRegion) {
  struct Case {
    ModelArch arch;
    BoardGeometry board;
    uint32_t boards, slots, context, cw, ch;
    bool split;
  };
  const std::vector<Case> cases = {
      {Llama8B(), kWse3, 1, 8, 8192, 0, 0, false},
      {Llama70B(), kWse3, 4, 8, 8192, 0, 0, false},
      {Llama405B(), kWse3, 22, 8, 8192, 0, 0, false},
      {Llama8B(), kWse2, 3, 8, 8192, 0, 0, true},  // Split over more boards than needed.
      {Tiny(false), kMini, 1, 64, 1024, 0, 0, false},
      {Tiny(true), kMini, 1, 8, 256, 0, 0, false},  // The embedding is also the LM head.
      {Tiny(false), kMini, 4, 8, 256, 40, 30, false},
      {Tiny(true), {9, 3, 1u << 20}, 100, 1, 16, 0, 0, false},  // One layer per board.
  };
  for (const Case& c : cases) {
    PlanRequest r = Request(c.arch, c.board, c.boards, c.slots, c.context);
    r.confine_width = c.cw;
    r.confine_height = c.ch;
    r.split_over_all_boards = c.split;
    auto packed = PlanPlacement(r);
    ASSERT_TRUE(packed.ok()) << packed.error().ToString();
    r.spread = true;
    auto spread = PlanPlacement(r);
    ASSERT_TRUE(spread.ok()) << spread.error().ToString();
    SCOPED_TRACE(PlanSummary(*spread));
    CheckPlan(*spread);
    ASSERT_EQ(spread->boards.size(), packed->boards.size());
    ASSERT_EQ(spread->stages.size(), packed->stages.size());
    for (const BoardPlan& b : spread->boards) {
      EXPECT_EQ(b.rows_used, spread->region_height) << "board " << b.index;
    }
    // Each board's layer bands are within a row of each other (the layers are alike).
    std::map<uint32_t, std::pair<uint32_t, uint32_t>> layer_rows;  // Board: min, max.
    for (size_t k = 0; k < spread->stages.size(); ++k) {
      const StagePlacement& s = spread->stages[k];
      const StagePlacement& p = packed->stages[k];
      EXPECT_EQ(s.board, p.board);
      EXPECT_GE(s.band.h, p.band.h) << "a band never shrinks";
      const bool lm_head_in_embedding = r.arch.tie_embeddings && spread->boards.size() == 1;
      if (s.kind == StageKind::kEmbedding && !lm_head_in_embedding) {
        EXPECT_EQ(s.band.h, p.band.h) << "a lookup gets no extra rows";
      }
      if (s.kind != StageKind::kLayer) continue;
      auto [it, fresh] = layer_rows.try_emplace(s.board, s.band.h, s.band.h);
      it->second.first = std::min(it->second.first, s.band.h);
      it->second.second = std::max(it->second.second, s.band.h);
    }
    for (const auto& [board, range] : layer_rows) EXPECT_LE(range.second - range.first, 1u);
  }
}

// 8B on one wse3: the head (an LM head of 1.05 GB) gets rows in proportion to its weights
// against a layer's 0.44 GB, and every layer band grows from its packed height.
TEST(PlacementPlannerTest, SpreadGivesRowsInProportionToWeights) {
  PlanRequest r = Request(Llama8B(), kWse3, 1, 8, 8192);
  r.spread = true;
  auto plan = PlanPlacement(r);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  const StagePlacement& layer = plan->stages[1];
  const StagePlacement& head = plan->stages.back();
  ASSERT_EQ(head.kind, StageKind::kHead);
  const double weights = double(head.weight_bytes) / double(layer.weight_bytes);
  const double rows = double(head.band.h) / double(layer.band.h);
  EXPECT_NEAR(rows, weights, 0.1 * weights);
  // The taller layer holds fewer KV bytes per PE and fewer weight bytes per PE.
  r.spread = false;
  auto packed = PlanPlacement(r);
  ASSERT_TRUE(packed.ok()) << packed.error().ToString();
  EXPECT_GT(layer.band.h, packed->stages[1].band.h);
  EXPECT_LT(layer.kv_bytes_per_pe, packed->stages[1].kv_bytes_per_pe);
  for (size_t t = 0; t < layer.tensors.size(); ++t) {
    EXPECT_LE(layer.tensors[t].bytes_per_pe, packed->stages[1].tensors[t].bytes_per_pe);
  }
}

// Spreading happens after the packed plan fits: what did not fit still does not, with the
// same reason, and the boards needed do not change.
TEST(PlacementPlannerTest, SpreadDoesNotMakeAPlanFit) {
  for (bool spread : {false, true}) {
    PlanRequest r = Request(Llama70B(), kWse3, 3, 8, 8192);
    r.spread = spread;
    std::string detail;
    auto plan = PlanPlacement(r);
    detail = MessageOf(plan);
    EXPECT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
    EXPECT_NE(detail.find("needs 4 boards"), std::string::npos) << detail;
    auto needed = BoardsNeeded(r);
    ASSERT_TRUE(needed.ok()) << needed.error().ToString();
    EXPECT_EQ(*needed, 4u);
    r = Request(Llama8B(), kWse3, 100, 256, 131072);  // A layer's KV alone exceeds a wafer.
    r.spread = spread;
    auto kv = PlanPlacement(r);
    EXPECT_EQ(kv.status().code(), StatusCode::kResourceExhausted);
    detail = MessageOf(kv);
    EXPECT_NE(detail.find("of KV"), std::string::npos) << detail;
  }
}

// Below another model's rows, spread stays inside [origin_row, origin_row + height), and
// ApplyPlan still gives every tensor its rectangle and every layer a KV region that holds it.
TEST(PlacementPlannerTest, SpreadStaysInsideAnOffsetRegionAndApplies) {
  PlanRequest r = Request(Tiny(false), kMini, 1, 8, 256);
  r.origin_row = 40;
  r.confine_height = 60;
  r.spread = true;
  auto plan = PlanPlacement(r);
  ASSERT_TRUE(plan.ok()) << plan.error().ToString();
  EXPECT_EQ(plan->boards[0].rows_used, 60u);
  uint32_t next_row = 40;
  for (const StagePlacement& s : plan->stages) {
    EXPECT_EQ(s.band.y, next_row) << "bands are stacked without gaps";
    next_row += s.band.h;
  }
  EXPECT_EQ(next_row, 100u);
  ModelManifest m;
  for (const StagePlacement& stage : plan->stages) {
    for (const TensorPlacement& t : stage.tensors) {
      m.tensors.push_back(TensorDesc{t.name, t.role, t.layer, DType::kBF16, {}, t.bytes, {}});
    }
  }
  HostStatus applied = ApplyPlan(*plan, 0, &m);
  ASSERT_TRUE(applied.ok()) << applied.error().ToString();
  for (const TensorDesc& t : m.tensors) {
    EXPECT_GE(t.placement.y, 40u) << t.name;
    EXPECT_LE(t.placement.y + t.placement.h, 100u) << t.name;
    EXPECT_LE((t.byte_size + t.placement.pes() - 1) / t.placement.pes(), 49152u) << t.name;
  }
  ASSERT_EQ(m.kv_regions.size(), 4u);
  for (const KvRegion& kv : m.kv_regions) {
    EXPECT_GE(kv.bytes_per_pe * kv.rect.pes(), 8ull * 256 * 2 * 2 * 16 * 2);
  }
}

}  // namespace
}  // namespace wafer::host

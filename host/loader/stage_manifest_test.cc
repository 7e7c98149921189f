#include "host/loader/stage_manifest.h"

#include <gtest/gtest.h>

#include "host/placement/testing/llama_archs.h"

namespace wafer::host {
namespace {

// Llama 3.1 8B (tied here, to exercise the head's copy) over two wse3-sized boards.
PreparedModel SplitEightB() {
  PreparedModel m;
  m.name = "llama-8b";
  m.source.arch = testing::Llama8B();
  m.source.arch.tie_embeddings = true;
  m.source.tensors = LlamaTensorLayout(m.source.arch, DType::kBF16);
  m.source.shape_only = true;
  m.slots = 8;
  m.context_length = 8192;
  PlanRequest r;
  r.arch = m.source.arch;
  r.board = BoardGeometry{750, 1200, 48 * 1024};
  r.boards = 2;
  r.split_over_all_boards = true;
  r.slots = m.slots;
  r.context = m.context_length;
  HostResult<Plan> plan = PlanPlacement(r);
  EXPECT_TRUE(plan.ok()) << plan.error().ToString();
  if (plan.ok()) m.plan = std::move(plan).value();
  return m;
}

TEST(StageManifestTest, StagesPartitionTheLayersWithEmbeddingFirstAndHeadLast) {
  const PreparedModel m = SplitEightB();
  ASSERT_EQ(m.plan.boards.size(), 2u);
  std::vector<uint32_t> layer_seen(m.source.arch.num_layers, 0);
  for (uint32_t stage = 0; stage < 2; ++stage) {
    ModelManifest manifest;
    std::vector<std::span<const std::byte>> data;
    HostStatus listed = StageManifest(m, 7, stage, &manifest, &data);
    ASSERT_TRUE(listed.ok()) << listed.error().ToString();
    EXPECT_EQ(manifest.model_id, 7u);
    EXPECT_TRUE(data.empty());  // Shape-only: no bytes.
    const ModelStage& st = manifest.stage;
    EXPECT_EQ(st.has_embedding, stage == 0);
    EXPECT_EQ(st.has_head, stage == 1);
    ASSERT_GT(st.layer_count, 0u);
    EXPECT_EQ(manifest.kv_regions.size(), st.layer_count);
    bool embedding = false, final_norm = false;
    for (const TensorDesc& t : manifest.tensors) {
      EXPECT_GT(t.placement.pes(), 0u) << t.name;
      if (t.role == TensorRole::kEmbedding) embedding = true;
      if (t.role == TensorRole::kFinalNorm) final_norm = true;
      if (t.role == TensorRole::kWq) {
        ASSERT_GE(t.layer, st.first_layer);
        ASSERT_LT(t.layer, st.first_layer + st.layer_count);
        ++layer_seen[t.layer];
      }
    }
    // Tied: the first board embeds, the last holds the embedding's copy as its head.
    EXPECT_TRUE(embedding) << "stage " << stage;
    EXPECT_EQ(final_norm, stage == 1);
  }
  for (uint32_t l = 0; l < layer_seen.size(); ++l) EXPECT_EQ(layer_seen[l], 1u) << "layer " << l;
}

TEST(StageManifestTest, FunctionalStagesCarryTheirTensorsBytes) {
  PreparedModel m = SplitEightB();
  std::vector<std::byte> fake(16);
  m.source.shape_only = false;
  for (size_t i = 0; i < m.source.tensors.size(); ++i) {
    m.source.data.push_back(std::span<const std::byte>(fake.data(), i % fake.size()));
  }
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  HostStatus listed = StageManifest(m, 1, 1, &manifest, &data);
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(data.size(), manifest.tensors.size());
  for (size_t i = 0; i < data.size(); ++i) {
    size_t source = 0;
    while (m.source.tensors[source].role != manifest.tensors[i].role ||
           m.source.tensors[source].layer != manifest.tensors[i].layer) {
      ++source;
    }
    EXPECT_EQ(data[i].size(), m.source.data[source].size()) << manifest.tensors[i].name;
  }
}

TEST(StageManifestTest, RefusesAStageThePlanDoesNotHave) {
  const PreparedModel m = SplitEightB();
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  HostStatus listed = StageManifest(m, 1, 2, &manifest, &data);
  EXPECT_EQ(listed.status(), InvalidArgument());
  const std::string detail = listed.ok() ? std::string() : listed.error().message;
  EXPECT_NE(detail.find("2 boards"), std::string::npos) << detail;
}

TEST(StageManifestTest, RefusesAPlanForAnotherModel) {
  PreparedModel m = SplitEightB();
  m.source.tensors.pop_back();  // The final norm: the plan still places it.
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  HostStatus listed = StageManifest(m, 1, 1, &manifest, &data);
  EXPECT_EQ(listed.status(), InvalidArgument());
  const std::string detail = listed.ok() ? std::string() : listed.error().message;
  EXPECT_NE(detail.find("norm"), std::string::npos) << detail;
}

}  // namespace
}  // namespace wafer::host

#include "host/models/mkmodel.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "host/models/checkpoint.h"
#include "host/models/safetensors_file.h"

namespace wafer::host {
namespace {

namespace fs = std::filesystem;

std::string Slurp(const fs::path& p) {
  auto r = ReadFile(p.string());
  return r.ok() ? *r : std::string();
}

TEST(MkModelTest, DeterministicForASeed) {
  const fs::path root = fs::temp_directory_path() / ("mkmodel_test_" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto make = [&](const std::string& name, uint64_t seed) {
    MkModelOptions o;
    o.out_dir = (root / name).string();
    o.dtype = DType::kBF16;
    o.seed = seed;
    HostStatus made = MakeModel(o);
    EXPECT_TRUE(made.ok()) << made.error().ToString();
    return root / name;
  };
  const fs::path a = make("a", 5), b = make("b", 5), c = make("c", 6);
  for (const char* f : {"config.json", "tokenizer.json", "model.safetensors"}) {
    EXPECT_FALSE(Slurp(a / f).empty()) << f;
    EXPECT_EQ(Slurp(a / f), Slurp(b / f)) << f;
  }
  EXPECT_NE(Slurp(a / "model.safetensors"), Slurp(c / "model.safetensors"));
  EXPECT_EQ(Slurp(a / "tokenizer.json"), Slurp(c / "tokenizer.json"));

  // Weights look like a trained model's scale: projections ~ N(0, 1/in), not constant.
  auto ck = LoadCheckpoint(a.string());
  ASSERT_TRUE(ck.ok());
  const CheckpointTensor& wq = (*ck)->tensors[2];
  ASSERT_EQ(wq.desc.role, TensorRole::kWq);
  double sum_sq = 0;
  const size_t n = wq.bytes.size() / 2;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = (static_cast<uint32_t>(wq.bytes[2 * i + 1]) << 24) |
                          (static_cast<uint32_t>(wq.bytes[2 * i]) << 16);
    float f;
    std::memcpy(&f, &bits, 4);
    sum_sq += f * f;
  }
  EXPECT_NEAR(sum_sq / n, 1.0 / 64, 0.2 / 64);
  fs::remove_all(root);
}

TEST(MkModelTest, SmallPresetArch) {
  const ModelArch a = PresetArch(ModelPreset::kSmall, true);
  EXPECT_EQ(a.hidden_size, 256u);
  EXPECT_EQ(a.num_layers, 4u);
  EXPECT_EQ(a.num_heads, 8u);
  EXPECT_EQ(a.num_kv_heads, 4u);
  EXPECT_EQ(a.intermediate_size, 768u);
  EXPECT_TRUE(a.tie_embeddings);
}

TEST(MkModelTest, MediumPresetIsAtLeast200MBInBFloat16) {
  ModelArch a = PresetArch(ModelPreset::kMedium, false);
  EXPECT_EQ(a.hidden_size, 1024u);
  EXPECT_EQ(a.head_dim * a.num_heads, a.hidden_size);
  a.vocab_size = 770;  // 256 bytes + 512 merges + 2 added tokens.
  uint64_t params = 2ull * a.vocab_size * a.hidden_size + a.hidden_size;
  for (TensorRole role : {TensorRole::kAttnNorm, TensorRole::kWq, TensorRole::kWk, TensorRole::kWv,
                          TensorRole::kWo, TensorRole::kMlpNorm, TensorRole::kWGate,
                          TensorRole::kWUp, TensorRole::kWDown}) {
    uint64_t n = 1;
    for (uint64_t d : ExpectedTensorShape(a, role)) n *= d;
    params += n * a.num_layers;
  }
  EXPECT_GE(params * 2, 200ull << 20);
  EXPECT_LE(params * 2, 300ull << 20);
}

TEST(MkModelTest, ChecksumsOnByDefaultAndStaleManifestRemovedWhenOff) {
  const fs::path dir = fs::temp_directory_path() / ("mkmodel_sums_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  MkModelOptions o;
  o.out_dir = dir.string();
  HostStatus made = MakeModel(o);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_TRUE(fs::exists(dir / "model.checksums.json"));
  o.checksums = false;
  o.seed = 2;  // Different weights: the old manifest would no longer match.
  made = MakeModel(o);
  ASSERT_TRUE(made.ok()) << made.error().ToString();
  EXPECT_FALSE(fs::exists(dir / "model.checksums.json"));
  auto ck = LoadCheckpoint(dir.string());
  EXPECT_TRUE(ck.ok()) << ck.error().ToString();
  fs::remove_all(dir);
}

TEST(MkModelTest, ParsesArguments) {
  const std::vector<std::string_view> args = {"--out", "/tmp/x", "--preset", "small", "--dtype",
                                              "f16", "--tied", "--seed", "77", "--shards", "3"};
  auto o = ParseMkModelArgs(args);
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->out_dir, "/tmp/x");
  EXPECT_EQ(o->preset, ModelPreset::kSmall);
  EXPECT_EQ(o->dtype, DType::kF16);
  EXPECT_TRUE(o->tied);
  EXPECT_EQ(o->seed, 77u);
  EXPECT_EQ(o->shards, 3u);
  EXPECT_TRUE(o->checksums);

  const std::vector<std::string_view> medium = {"--out", "d", "--preset", "medium",
                                                "--no-checksums"};
  o = ParseMkModelArgs(medium);
  ASSERT_TRUE(o.ok()) << o.error().ToString();
  EXPECT_EQ(o->preset, ModelPreset::kMedium);
  EXPECT_FALSE(o->checksums);

  const std::vector<std::vector<std::string_view>> bad = {
      {},
      {"--out"},
      {"--out", "d", "--preset", "huge"},
      {"--out", "d", "--dtype", "f8"},
      {"--out", "d", "--seed", "-1"},
      {"--out", "d", "--shards", "0"},
      {"--out", "d", "--frobnicate"},
  };
  for (const auto& b : bad) {
    auto parsed = ParseMkModelArgs(b);
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_FALSE(parsed.ok() ? true : parsed.error().message.empty());
  }
}

}  // namespace
}  // namespace wafer::host

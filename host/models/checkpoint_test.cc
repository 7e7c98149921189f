#include "host/models/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

#include <cstring>
#include <functional>

#include "host/models/checksum_manifest.h"
#include "host/models/mkmodel.h"

namespace wafer::host {
namespace {

namespace fs = std::filesystem;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("checkpoint_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Without a checksum manifest unless asked: most tests below edit files after writing them to
  // reach the structural checks, which a manifest would (rightly) refuse first.
  std::string Make(const std::string& name, DType dtype, bool tied, uint32_t shards,
                   bool checksums = false) {
    MkModelOptions o;
    o.out_dir = (root_ / name).string();
    o.dtype = dtype;
    o.tied = tied;
    o.shards = shards;
    o.checksums = checksums;
    o.seed = 9;
    HostStatus made = MakeModel(o);
    EXPECT_TRUE(made.ok()) << made.error().ToString();
    return o.out_dir;
  }

  // Rewrites dir/model.safetensors after `edit` changes its tensor list.
  void Rewrite(const std::string& dir,
               const std::function<void(std::vector<SafetensorsWriteTensor>&)>& edit) {
    const std::string path = dir + "/model.safetensors";
    std::vector<SafetensorsWriteTensor> tensors;
    {
      auto file = SafetensorsFile::Open(path);
      ASSERT_TRUE(file.ok());
      for (const SafetensorsTensor& t : (*file)->tensors()) {
        tensors.push_back({t.name, t.dtype, t.shape, {t.bytes.begin(), t.bytes.end()}});
      }
    }
    edit(tensors);
    ASSERT_TRUE(WriteFile(path, EncodeSafetensors(tensors, {})).ok());
  }

  // Loads `dir`, expecting `code` and a detail that mentions every string in `mentions`.
  void ExpectRefused(const std::string& dir, StatusCode code,
                     const std::vector<std::string>& mentions) {
    auto ck = LoadCheckpoint(dir);
    const std::string detail = ck.ok() ? std::string() : ck.error().message;
    EXPECT_EQ(ck.status().code(), code) << detail;
    for (const std::string& m : mentions) EXPECT_NE(detail.find(m), std::string::npos) << detail;
  }

  fs::path root_;
};

void CheckLoaded(const Checkpoint& ck, DType dtype, bool tied) {
  const ModelArch& a = ck.arch();
  EXPECT_EQ(a.hidden_size, 64u);
  EXPECT_EQ(a.num_layers, 2u);
  EXPECT_EQ(a.num_heads, 4u);
  EXPECT_EQ(a.num_kv_heads, 2u);
  EXPECT_EQ(a.intermediate_size, 192u);
  EXPECT_EQ(a.max_position, 1024u);
  EXPECT_EQ(a.tie_embeddings, tied);
  ASSERT_NE(ck.tokenizer, nullptr);
  EXPECT_EQ(ck.tokenizer->vocab_size(), a.vocab_size);
  EXPECT_GT(a.vocab_size, 256u + 200u);
  ASSERT_EQ(ck.tensors.size(), 1 + 9 * 2 + 1 + (tied ? 0u : 1u));
  EXPECT_EQ(ck.tensors.front().desc.name, "model.embed_tokens.weight");
  EXPECT_EQ(ck.tensors[1].desc.name, "model.layers.0.input_layernorm.weight");
  EXPECT_EQ(ck.tensors[10].desc.name, "model.layers.1.input_layernorm.weight");
  EXPECT_EQ(ck.tensors[19].desc.role, TensorRole::kFinalNorm);
  if (!tied) {
    EXPECT_EQ(ck.tensors.back().desc.role, TensorRole::kLmHead);
  }
  uint64_t params = 0;
  for (const CheckpointTensor& t : ck.tensors) {
    uint64_t n = 1;
    for (uint64_t d : t.desc.shape) n *= d;
    params += n;
    EXPECT_EQ(t.desc.dtype, dtype);
    EXPECT_EQ(t.desc.byte_size, n * DTypeSize(dtype));
    EXPECT_EQ(t.bytes.size(), t.desc.byte_size);
    EXPECT_EQ(t.desc.shape, ExpectedTensorShape(a, t.desc.role)) << t.desc.name;
  }
  EXPECT_EQ(params, ck.config.param_count);
  EXPECT_EQ(ck.total_bytes(), params * DTypeSize(dtype));
  // Norm weights are 1 in every dtype.
  const CheckpointTensor& norm = ck.tensors[1];
  if (dtype == DType::kF32) {
    float one;
    std::memcpy(&one, norm.bytes.data(), 4);
    EXPECT_EQ(one, 1.0f);
  } else {
    const uint16_t bits = static_cast<uint16_t>(norm.bytes[0]) |
                          static_cast<uint16_t>(static_cast<uint16_t>(norm.bytes[1]) << 8);
    EXPECT_EQ(bits, dtype == DType::kBF16 ? 0x3f80 : 0x3c00);
  }
}

TEST_F(CheckpointTest, RoundTripsEveryLayout) {
  struct Case {
    DType dtype;
    bool tied;
    uint32_t shards;
  };
  for (const Case& c : {Case{DType::kF32, false, 1}, Case{DType::kBF16, false, 1},
                        Case{DType::kF16, true, 1}, Case{DType::kF32, true, 1},
                        Case{DType::kBF16, false, 3}, Case{DType::kF32, true, 5}}) {
    const std::string dir = Make("m" + std::to_string(static_cast<int>(c.dtype)) +
                                     (c.tied ? "t" : "u") + std::to_string(c.shards),
                                 c.dtype, c.tied, c.shards);
    EXPECT_EQ(fs::exists(dir + "/model.safetensors.index.json"), c.shards > 1);
    auto ck = LoadCheckpoint(dir);
    ASSERT_TRUE(ck.ok()) << ck.error().ToString();
    EXPECT_EQ((*ck)->files.size(), c.shards);
    EXPECT_EQ((*ck)->name, fs::path(dir).filename().string());
    CheckLoaded(**ck, c.dtype, c.tied);
  }
}

TEST_F(CheckpointTest, ShardedAndSingleHoldTheSameBytes) {
  auto one = LoadCheckpoint(Make("one", DType::kF32, false, 1));
  auto four = LoadCheckpoint(Make("four", DType::kF32, false, 4));
  ASSERT_TRUE(one.ok() && four.ok());
  ASSERT_EQ((*one)->tensors.size(), (*four)->tensors.size());
  for (size_t i = 0; i < (*one)->tensors.size(); ++i) {
    const auto& a = (*one)->tensors[i].bytes;
    const auto& b = (*four)->tensors[i].bytes;
    ASSERT_EQ(a.size(), b.size());
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin())) << (*one)->tensors[i].desc.name;
  }
}

TEST_F(CheckpointTest, TiedCheckpointWithExtraLmHeadIgnoresIt) {
  const std::string dir = Make("tied", DType::kF32, true, 1);
  Rewrite(dir, [](auto& t) {
    SafetensorsWriteTensor head = t.front();
    head.name = "lm_head.weight";
    t.push_back(head);
  });
  auto ck = LoadCheckpoint(dir);
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ((*ck)->tensors.back().desc.role, TensorRole::kFinalNorm);
}

TEST_F(CheckpointTest, NoTokenizerIsFine) {
  const std::string dir = Make("notok", DType::kF32, false, 1);
  fs::remove(dir + "/tokenizer.json");
  auto ck = LoadCheckpoint(dir);
  ASSERT_TRUE(ck.ok());
  EXPECT_EQ((*ck)->tokenizer, nullptr);
}

TEST_F(CheckpointTest, RefusesTruncatedFile) {
  const std::string dir = Make("trunc", DType::kF32, false, 1);
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 100);
  ExpectRefused(dir, StatusCode::kDataLoss, {"model.safetensors", "lm_head.weight"});
}

TEST_F(CheckpointTest, RefusesHeaderLengthBeyondFile) {
  const std::string dir = Make("hdr", DType::kF32, false, 1);
  auto contents = ReadFile(dir + "/model.safetensors");
  ASSERT_TRUE(contents.ok());
  (*contents)[3] = '\x01';  // Header length += 16 MB.
  ASSERT_TRUE(WriteFile(dir + "/model.safetensors", *contents).ok());
  ExpectRefused(dir, StatusCode::kDataLoss, {"model.safetensors", "runs past the end"});
}

TEST_F(CheckpointTest, RefusesOverlappingOffsets) {
  const std::string dir = Make("overlap", DType::kF32, false, 1);
  auto contents = ReadFile(dir + "/model.safetensors");
  ASSERT_TRUE(contents.ok());
  // Point model.norm.weight 4 bytes earlier, into the tensor before it.
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>((*contents)[i]);
  std::string header = contents->substr(8, header_len);
  const std::string from = "\"data_offsets\":[";
  const size_t at = header.find("\"model.norm.weight\"");
  ASSERT_NE(at, std::string::npos);
  const size_t off = header.find(from, at) + from.size();
  const size_t comma = header.find(',', off);
  const size_t close = header.find(']', comma);
  const uint64_t b = std::stoull(header.substr(off, comma - off));
  const uint64_t e = std::stoull(header.substr(comma + 1, close - comma - 1));
  std::string patched = header.substr(0, off) + std::to_string(b - 4) + "," +
                        std::to_string(e - 4) + header.substr(close);
  patched.resize(header.size(), ' ');  // Same length (shorter numbers are padded with spaces).
  ASSERT_EQ(patched.size(), header.size());
  contents->replace(8, header_len, patched);
  ASSERT_TRUE(WriteFile(dir + "/model.safetensors", *contents).ok());
  ExpectRefused(dir, StatusCode::kDataLoss, {"model.safetensors", "model.norm.weight", "overlap"});
}

TEST_F(CheckpointTest, RefusesShapeThatDisagreesWithConfig) {
  const std::string dir = Make("shape", DType::kF32, false, 1);
  Rewrite(dir, [](auto& tensors) {
    for (auto& t : tensors) {
      if (t.name == "model.layers.1.mlp.up_proj.weight") t.shape = {64, 192};  // Transposed.
    }
  });
  ExpectRefused(dir, StatusCode::kInvalidArgument,
                {"model.safetensors", "model.layers.1.mlp.up_proj.weight", "[64, 192]", "[192, 64]"});
}

TEST_F(CheckpointTest, RefusesMissingTensor) {
  const std::string dir = Make("missing", DType::kF32, false, 1);
  Rewrite(dir, [](auto& tensors) {
    std::erase_if(tensors, [](const auto& t) { return t.name == "model.layers.0.self_attn.v_proj.weight"; });
  });
  ExpectRefused(dir, StatusCode::kInvalidArgument, {"missing", "model.layers.0.self_attn.v_proj.weight"});
}

TEST_F(CheckpointTest, RefusesUnknownTensorAndBadDtype) {
  const std::string dir = Make("unknown", DType::kF32, false, 1);
  Rewrite(dir, [](auto& tensors) {
    tensors.push_back({"model.layers.0.self_attn.q_proj.bias", DType::kF32, {64},
                       std::vector<std::byte>(256)});
  });
  ExpectRefused(dir, StatusCode::kInvalidArgument,
                {"model.safetensors", "unknown tensor 'model.layers.0.self_attn.q_proj.bias'"});

  const std::string dir2 = Make("dtype", DType::kF32, false, 1);
  auto contents = ReadFile(dir2 + "/model.safetensors");
  ASSERT_TRUE(contents.ok());
  const size_t at = contents->find("\"F32\"");  // The first tensor in key order.
  ASSERT_NE(at, std::string::npos);
  contents->replace(at, 5, "\"I32\"");
  ASSERT_TRUE(WriteFile(dir2 + "/model.safetensors", *contents).ok());
  ExpectRefused(dir2, StatusCode::kInvalidArgument, {"model.safetensors", "unsupported dtype I32"});
}

TEST_F(CheckpointTest, RefusesBadConfigAndMissingFiles) {
  const std::string dir = Make("cfg", DType::kF32, false, 1);
  ASSERT_TRUE(WriteFile(dir + "/config.json", R"({"architectures":["LlamaForCausalLM"]})").ok());
  ExpectRefused(dir, StatusCode::kInvalidArgument, {"config.json", "vocab_size"});
  fs::remove(dir + "/config.json");
  ExpectRefused(dir, StatusCode::kNotFound, {"config.json"});
  ExpectRefused((root_ / "nowhere").string(), StatusCode::kNotFound, {"nowhere"});

  const std::string sharded = Make("sharded", DType::kF32, false, 3);
  fs::remove(sharded + "/model-00002-of-00003.safetensors");
  ExpectRefused(sharded, StatusCode::kNotFound, {"model-00002-of-00003.safetensors"});
}

TEST(TensorNameTest, ParsesAndPrintsHfNames) {
  TensorRole role;
  uint32_t layer;
  ASSERT_TRUE(ParseTensorName("model.layers.17.mlp.down_proj.weight", &role, &layer));
  EXPECT_EQ(role, TensorRole::kWDown);
  EXPECT_EQ(layer, 17u);
  EXPECT_EQ(TensorName(role, layer), "model.layers.17.mlp.down_proj.weight");
  EXPECT_FALSE(ParseTensorName("model.layers.01.mlp.down_proj.weight", &role, &layer));
  EXPECT_FALSE(ParseTensorName("model.layers.x.mlp.down_proj.weight", &role, &layer));
  EXPECT_FALSE(ParseTensorName("model.layers.1.mlp.down_proj.bias", &role, &layer));
  EXPECT_FALSE(ParseTensorName("model.layers.1", &role, &layer));
}


// ---------------------------------------------------------------------------------------------
// model.checksums.json
// ---------------------------------------------------------------------------------------------

void FlipByte(const fs::path& path, uint64_t offset_from_end) {
  std::string bytes = ReadFile(path.string()).value();
  ASSERT_GT(bytes.size(), offset_from_end);
  bytes[bytes.size() - 1 - offset_from_end] ^= 0x01;
  ASSERT_TRUE(WriteFile(path.string(), bytes).ok());
}

TEST_F(CheckpointTest, ManifestThatMatchesLoadsEveryLayout) {
  for (uint32_t shards : {1u, 3u}) {
    const std::string dir = Make("ok" + std::to_string(shards), DType::kBF16, false, shards, true);
    const std::string manifest_text = ReadFile(dir + "/model.checksums.json").value();
    auto manifest = ParseChecksumManifest(manifest_text, "manifest");
    ASSERT_TRUE(manifest.ok());
    // Every file mkmodel wrote is listed.
    size_t files = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().filename() == "model.checksums.json") continue;
      ++files;
      EXPECT_TRUE(manifest->contains(entry.path().filename().string())) << entry.path();
    }
    EXPECT_EQ(manifest->size(), files);
    EXPECT_EQ(files, shards == 1 ? 3u : 3u + 3u);  // config, tokenizer, weights (+ index).
    auto ck = LoadCheckpoint(dir);
    ASSERT_TRUE(ck.ok()) << ck.error().ToString();
    CheckLoaded(**ck, DType::kBF16, false);
  }
}

TEST_F(CheckpointTest, ManifestCatchesACorruptedByteThatTheParserCannot) {
  const std::string dir = Make("corrupt", DType::kF32, false, 1, true);
  // The last byte belongs to the last tensor's data: a flipped bit there still parses.
  FlipByte(fs::path(dir) / "model.safetensors", 0);
  ExpectRefused(dir, StatusCode::kDataLoss, {"model.safetensors", "CRC-32C"});
  fs::remove(fs::path(dir) / "model.checksums.json");
  auto ck = LoadCheckpoint(dir);
  EXPECT_TRUE(ck.ok()) << ck.error().ToString();  // Only the manifest could tell.
}

TEST_F(CheckpointTest, ManifestCatchesACorruptedShard) {
  const std::string dir = Make("corrupt_shard", DType::kBF16, false, 3, true);
  FlipByte(fs::path(dir) / "model-00002-of-00003.safetensors", 5);
  ExpectRefused(dir, StatusCode::kDataLoss, {"model-00002-of-00003.safetensors", "CRC-32C"});
}

TEST_F(CheckpointTest, ManifestNamesAMissingListedFile) {
  const std::string dir = Make("gone", DType::kF32, false, 1, true);
  // tokenizer.json is optional for the loader; listed in the manifest, its absence is an error.
  fs::remove(fs::path(dir) / "tokenizer.json");
  ExpectRefused(dir, StatusCode::kNotFound, {"tokenizer.json", "missing"});
}

TEST_F(CheckpointTest, ManifestCatchesAWrongLength) {
  const std::string dir = Make("length", DType::kF32, false, 1, true);
  // Trailing whitespace: config.json is still valid JSON with the same content.
  const std::string config = ReadFile(dir + "/config.json").value();
  ASSERT_TRUE(WriteFile(dir + "/config.json", config + "\n").ok());
  ExpectRefused(dir, StatusCode::kDataLoss,
                {"config.json", std::to_string(config.size() + 1) + " bytes",
                 std::to_string(config.size())});
}

TEST_F(CheckpointTest, MalformedManifestIsInvalidArgument) {
  const std::string dir = Make("badmanifest", DType::kF32, false, 1, true);
  const std::string path = dir + "/model.checksums.json";
  ASSERT_TRUE(WriteFile(path, "{\"algorithm\": \"crc32c\", \"files\": {\"../config.json\": "
                              "{\"crc32c\": \"00000000\", \"bytes\": 1}}}").ok());
  ExpectRefused(dir, StatusCode::kInvalidArgument, {"model.checksums.json", "../config.json"});
  ASSERT_TRUE(WriteFile(path, "{\"algorithm\": \"sha256\", \"files\": {}}").ok());
  ExpectRefused(dir, StatusCode::kInvalidArgument, {"crc32c"});
  ASSERT_TRUE(WriteFile(path, "{\"algorithm\": \"crc32c\", \"files\": {\"config.json\": "
                              "{\"crc32c\": \"xyz\", \"bytes\": 1}}}").ok());
  ExpectRefused(dir, StatusCode::kInvalidArgument, {"hex"});
}

}  // namespace
}  // namespace wafer::host

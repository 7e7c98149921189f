#include "host/models/safetensors_file.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace wafer::host {
namespace {

class SafetensorsFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("safetensors_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes a file from a raw header and `data_bytes` zero bytes of data.
  std::string WriteRaw(const std::string& header, size_t data_bytes, uint64_t claimed_len = 0) {
    std::string contents;
    const uint64_t len = claimed_len ? claimed_len : header.size();
    for (int i = 0; i < 8; ++i) contents.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
    contents += header;
    contents.append(data_bytes, '\0');
    const std::string path = (dir_ / "x.safetensors").string();
    EXPECT_TRUE(WriteFile(path, contents).ok());
    return path;
  }

  // The Error Open returns for `path` (code OK, no message, if the file opened).
  Error OpenError(const std::string& path) {
    auto file = SafetensorsFile::Open(path);
    return file.ok() ? Error{StatusCode::kOk, {}} : std::move(file).error();
  }

  std::filesystem::path dir_;
};

TEST_F(SafetensorsFileTest, RoundTripsWrittenTensors) {
  std::vector<SafetensorsWriteTensor> tensors(3);
  tensors[0] = {"b", DType::kF32, {2, 3}, std::vector<std::byte>(24, std::byte{1})};
  tensors[1] = {"a", DType::kBF16, {5}, std::vector<std::byte>(10, std::byte{2})};
  tensors[2] = {"c", DType::kF16, {0, 4}, {}};
  const std::string path = (dir_ / "ok.safetensors").string();
  ASSERT_TRUE(WriteFile(path, EncodeSafetensors(tensors, {{"format", "pt"}})).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.error().ToString();
  EXPECT_EQ((*file)->metadata().at("format"), "pt");
  ASSERT_EQ((*file)->tensors().size(), 3u);
  const SafetensorsTensor* b = (*file)->Find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->dtype, DType::kF32);
  EXPECT_EQ(b->shape, (std::vector<uint64_t>{2, 3}));
  ASSERT_EQ(b->bytes.size(), 24u);
  EXPECT_EQ(b->bytes[5], std::byte{1});
  const SafetensorsTensor* a = (*file)->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->bytes.size(), 10u);
  EXPECT_EQ(a->bytes[0], std::byte{2});
  EXPECT_EQ((*file)->Find("missing"), nullptr);
}

TEST_F(SafetensorsFileTest, MissingFileIsNotFound) {
  const Error error = OpenError((dir_ / "nope.safetensors").string());
  EXPECT_EQ(error.code, StatusCode::kNotFound);
  EXPECT_NE(error.message.find("nope.safetensors"), std::string::npos);
}

TEST_F(SafetensorsFileTest, RefusesCorruptFiles) {
  struct Case {
    std::string header;
    size_t data;
    uint64_t claimed_len;
    StatusCode code;
    std::string must_mention;
  };
  const std::vector<Case> cases = {
      {"", 0, 0, StatusCode::kDataLoss, "not a JSON object"},
      {"{\"t\":", 0, 0, StatusCode::kDataLoss, "not a JSON object"},
      {"[1,2]", 0, 0, StatusCode::kDataLoss, "not a JSON object"},
      {"{}", 0, 1000, StatusCode::kDataLoss, "runs past the end"},
      {"{}", 0, 200u << 20, StatusCode::kDataLoss, "exceeds the limit"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, 0, StatusCode::kDataLoss,
       "tensor 'w'"},
      {R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16, 0, StatusCode::kDataLoss,
       "need 12"},
      {R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16, 0,
       StatusCode::kInvalidArgument, "unsupported dtype I64"},
      {R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, 0, StatusCode::kDataLoss,
       "non-integer"},
      {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, 0, StatusCode::kDataLoss,
       "outside the data"},
      {R"({"w":{"dtype":"F32","shape":[2]}})", 8, 0, StatusCode::kDataLoss, "data_offsets"},
      {R"({"u":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
       R"("v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12, 0, StatusCode::kDataLoss, "'u' and 'v' overlap"},
      {R"({"u":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
       R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
       R"("v":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
       16, 0, StatusCode::kDataLoss, "'u' and 'v' overlap"},
      {R"({"__metadata__":{"k":1}})", 0, 0, StatusCode::kDataLoss, "__metadata__"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteRaw(c.header, c.data, c.claimed_len);
    const Error error = OpenError(path);
    const std::string& detail = error.message;
    EXPECT_EQ(error.code, c.code) << c.header << " -> " << detail;
    EXPECT_NE(detail.find(c.must_mention), std::string::npos) << detail;
    EXPECT_NE(detail.find("x.safetensors"), std::string::npos) << detail;
  }
}

TEST_F(SafetensorsFileTest, TruncatedFileIsDataLoss) {
  std::vector<SafetensorsWriteTensor> tensors = {
      {"w", DType::kF32, {4, 4}, std::vector<std::byte>(64)}};
  const std::string bytes = EncodeSafetensors(tensors, {});
  const std::string path = (dir_ / "t.safetensors").string();
  ASSERT_TRUE(WriteFile(path, bytes.substr(0, bytes.size() - 1)).ok());
  Error error = OpenError(path);
  EXPECT_EQ(error.code, StatusCode::kDataLoss);
  EXPECT_NE(error.message.find("'w'"), std::string::npos) << error.message;
  ASSERT_TRUE(WriteFile(path, bytes.substr(0, 5)).ok());
  error = OpenError(path);
  EXPECT_EQ(error.code, StatusCode::kDataLoss);
  EXPECT_NE(error.message.find("truncated"), std::string::npos) << error.message;
}

}  // namespace
}  // namespace wafer::host

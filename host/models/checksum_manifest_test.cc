#include "host/models/checksum_manifest.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/crc32c.h"

namespace wafer::host {
namespace {

std::vector<std::byte> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> b(n);
  for (std::byte& v : b) v = static_cast<std::byte>(rng());
  return b;
}

TEST(Crc32cCombineTest, EqualsTheCrcOfTheConcatenation) {
  const std::vector<std::byte> data = RandomBytes(5000, 1);
  const std::span<const std::byte> all(data);
  for (size_t split : {0u, 1u, 7u, 8u, 999u, 2500u, 4999u, 5000u}) {
    const uint32_t a = Crc32c(all.first(split));
    const uint32_t b = Crc32c(all.subspan(split));
    EXPECT_EQ(Crc32cCombine(a, b, data.size() - split), Crc32c(all)) << "split " << split;
  }
}

TEST(ParallelCrc32cTest, EqualsTheSerialCrcOnLargeAndSmallInputs) {
  // Above the two-thread threshold (8 MiB), odd length so the halves are unequal.
  const std::vector<std::byte> big = RandomBytes((size_t{9} << 20) + 3, 2);
  EXPECT_EQ(ParallelCrc32c(big), Crc32c(big));
  const std::vector<std::byte> small = RandomBytes(100, 3);
  EXPECT_EQ(ParallelCrc32c(small), Crc32c(small));
  EXPECT_EQ(ChecksumOf(small).bytes, 100u);
}

TEST(ChecksumManifestTest, JsonRoundTrips) {
  const ChecksumManifest m = {{"config.json", {0x0123abcdu, 612}},
                              {"model.safetensors", {0xffffffffu, 1ull << 33}}};
  const std::string text = ChecksumManifestJson(m);
  EXPECT_NE(text.find("\"0123abcd\""), std::string::npos) << text;
  auto parsed = ParseChecksumManifest(text, "m");
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ(parsed->at("config.json").crc32c, 0x0123abcdu);
  EXPECT_EQ(parsed->at("config.json").bytes, 612u);
  EXPECT_EQ(parsed->at("model.safetensors").crc32c, 0xffffffffu);
  EXPECT_EQ(parsed->at("model.safetensors").bytes, 1ull << 33);
}

TEST(ChecksumManifestTest, RefusesMalformedEntries) {
  const char* bad[] = {
      "[]",
      "{\"files\": {}}",
      "{\"algorithm\": \"crc32c\"}",
      "{\"algorithm\": \"crc32c\", \"files\": {\"a\": {\"crc32c\": \"0123abc\", \"bytes\": 1}}}",
      "{\"algorithm\": \"crc32c\", \"files\": {\"a\": {\"crc32c\": \"0123abcg\", \"bytes\": 1}}}",
      "{\"algorithm\": \"crc32c\", \"files\": {\"a\": {\"crc32c\": \"0123abcd\", \"bytes\": -1}}}",
      "{\"algorithm\": \"crc32c\", \"files\": {\"a\": {\"crc32c\": \"0123abcd\"}}}",
      "{\"algorithm\": \"crc32c\", \"files\": {\"..\": {\"crc32c\": \"0123abcd\", \"bytes\": 1}}}",
      "{\"algorithm\": \"crc32c\", \"files\": {\"d/a\": {\"crc32c\": \"0123abcd\", \"bytes\": 1}}}",
  };
  for (const char* text : bad) {
    auto parsed = ParseChecksumManifest(text, "m.json");
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << text;
    const std::string detail = parsed.ok() ? std::string() : parsed.error().message;
    EXPECT_NE(detail.find("m.json"), std::string::npos) << detail;
  }
}

}  // namespace
}  // namespace wafer::host

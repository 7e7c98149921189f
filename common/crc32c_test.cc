#include "common/crc32c.h"

#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace wafer {
namespace {

std::span<const std::byte> Bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

TEST(Crc32cTest, MatchesKnownVectors) {
  // RFC 3720 B.4 and the standard check value.
  EXPECT_EQ(Crc32c(Bytes("123456789")), 0xE3069283u);
  std::vector<std::byte> zeros(32, std::byte{0});
  EXPECT_EQ(Crc32c(zeros), 0x8A9136AAu);
  std::vector<std::byte> ones(32, std::byte{0xFF});
  EXPECT_EQ(Crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(Crc32c({}), 0u);
}

TEST(Crc32cTest, ExtendEqualsWhole) {
  std::string_view text = "the quick brown fox jumps over the lazy dog, twice over";
  uint32_t whole = Crc32c(Bytes(text));
  for (size_t split = 0; split <= text.size(); ++split) {
    uint32_t part = Crc32cExtend(Crc32c(Bytes(text.substr(0, split))), Bytes(text.substr(split)));
    EXPECT_EQ(part, whole) << split;
  }
}

TEST(Crc32cTest, FastPathAgreesWithPortable) {
  std::vector<std::byte> data(4099);
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(static_cast<uint8_t>(i * 131 + 7));
  for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 4099u}) {
    auto s = std::span<const std::byte>(data).subspan(0, len);
    EXPECT_EQ(Crc32cExtend(0, s), Crc32cExtendPortable(0, s)) << len;
  }
}

}  // namespace
}  // namespace wafer

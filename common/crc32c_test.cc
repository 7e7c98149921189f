#include "common/crc32c.h"

#include <algorithm>
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


// Lengths around every block size the fast path uses (3 x 256 and 3 x 8192 bytes, 8-byte
// words), each at every alignment within a word, against the byte-at-a-time table.
TEST(Crc32cTest, FastPathAgreesWithPortableAcrossLengthsAndAlignments) {
  std::vector<std::byte> data(3 * 3 * 8192 + 64);
  uint32_t x = 0x12345678u;
  for (std::byte& b : data) {
    x = x * 1664525u + 1013904223u;
    b = std::byte(static_cast<uint8_t>(x >> 24));
  }
  std::vector<size_t> lengths;
  for (size_t len = 0; len <= 64; ++len) lengths.push_back(len);
  for (size_t base : {size_t{768}, size_t{1536}, size_t{24576}, size_t{49152}, size_t{73728}}) {
    for (size_t delta = 0; delta <= 17; ++delta) {
      lengths.push_back(base + delta);
      lengths.push_back(base - 1 - delta);
    }
  }
  for (size_t len : {size_t{1000}, size_t{4096}, size_t{65536}, size_t{70001}}) {
    lengths.push_back(len);
  }
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t len : lengths) {
      ASSERT_LE(offset + len, data.size());
      auto s = std::span<const std::byte>(data).subspan(offset, len);
      for (uint32_t seed : {0u, 0xDEADBEEFu}) {
        ASSERT_EQ(Crc32cExtend(seed, s), Crc32cExtendPortable(seed, s))
            << "offset " << offset << " length " << len << " seed " << seed;
      }
    }
  }
}

// Splitting a large buffer anywhere (including inside a three-stream block) and extending gives
// the CRC of the whole; so does extending in irregular pieces.
TEST(Crc32cTest, ExtendSplitOverLargeBuffer) {
  std::vector<std::byte> data(200000);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = std::byte(static_cast<uint8_t>((i * 2654435761u) >> 13));
  }
  const std::span<const std::byte> all(data);
  const uint32_t whole = Crc32cExtendPortable(0, all);
  EXPECT_EQ(Crc32c(all), whole);
  for (size_t split : {size_t{1}, size_t{7}, size_t{767}, size_t{768}, size_t{769},
                       size_t{24575}, size_t{24576}, size_t{24577}, size_t{100003},
                       size_t{199999}}) {
    EXPECT_EQ(Crc32cExtend(Crc32c(all.first(split)), all.subspan(split)), whole) << split;
  }
  uint32_t crc = 0;
  size_t off = 0;
  for (size_t piece = 1; off < data.size(); piece = piece * 3 + 5) {
    const size_t n = std::min(piece, data.size() - off);
    crc = Crc32cExtend(crc, all.subspan(off, n));
    off += n;
  }
  EXPECT_EQ(crc, whole);
}

// A single flipped bit anywhere in a large buffer changes the CRC (every stream and the joins
// see their data).
TEST(Crc32cTest, BitFlipInAnyStreamChangesCrc) {
  std::vector<std::byte> data(3 * 8192 * 2 + 3 * 256 + 11, std::byte{0x5A});
  const uint32_t clean = Crc32c(data);
  for (size_t pos : {size_t{0}, size_t{8191}, size_t{8192}, size_t{16384}, size_t{24575},
                     size_t{30000}, size_t{49152}, size_t{49152 + 300}, data.size() - 1}) {
    data[pos] ^= std::byte{0x04};
    EXPECT_NE(Crc32c(data), clean) << pos;
    EXPECT_EQ(Crc32c(data), Crc32cExtendPortable(0, data)) << pos;
    data[pos] ^= std::byte{0x04};
  }
}

}  // namespace
}  // namespace wafer

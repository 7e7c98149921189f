#include "common/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace wafer {
namespace {

constexpr uint32_t kPolyReflected = 0x82F63B78u;

constexpr std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ kPolyReflected : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = MakeTable();

// The raw CRC register (no pre/post inversion) is linear over GF(2):
//   raw(c, A || B) = Shift(raw(c, A), |B|) ^ raw(0, B),
// where Shift(c, n) = raw(c, n zero bytes) = c * x^(8n) mod P (bit-reflected). Shift is a linear
// map of the 32-bit register, so for a fixed n it is four 256-entry tables, one per register byte.
// This is what lets three independent chains of crc32 instructions run over three adjacent
// stretches of a block and be joined afterwards.
class ShiftTables {
 public:
  explicit ShiftTables(size_t zero_bytes) {
    uint32_t basis[32];
    for (int bit = 0; bit < 32; ++bit) {
      uint32_t c = 1u << bit;
      for (size_t i = 0; i < zero_bytes; ++i) c = kTable[c & 0xFFu] ^ (c >> 8);
      basis[bit] = c;
    }
    for (int k = 0; k < 4; ++k) {
      for (uint32_t v = 0; v < 256; ++v) {
        uint32_t out = 0;
        for (int b = 0; b < 8; ++b) {
          if (v & (1u << b)) out ^= basis[8 * k + b];
        }
        tables_[k][v] = out;
      }
    }
  }

  // raw(c, zero_bytes zero bytes).
  uint32_t Shift(uint32_t c) const {
    return tables_[0][c & 0xFFu] ^ tables_[1][(c >> 8) & 0xFFu] ^ tables_[2][(c >> 16) & 0xFFu] ^
           tables_[3][c >> 24];
  }

 private:
  uint32_t tables_[4][256];
};

#if defined(__x86_64__)
// Bytes per stream. A long block amortizes the two shifts and the loop overhead; the short one
// keeps mid-sized buffers (a few KB) off the single dependent chain.
constexpr size_t kLongStream = 8192;
constexpr size_t kShortStream = 256;

const ShiftTables& LongShift() {
  static const ShiftTables tables(kLongStream);
  return tables;
}

const ShiftTables& ShortShift() {
  static const ShiftTables tables(kShortStream);
  return tables;
}

inline uint64_t Load64(const unsigned char* p) {
  uint64_t word;
  std::memcpy(&word, p, 8);
  return word;
}

// One block of 3 * stream_bytes: three independent crc32 chains (the instruction has a latency
// of 3 cycles and a throughput of 1 per cycle, so one chain leaves two thirds of the unit idle),
// joined with the shift tables.
template <size_t kStream>
__attribute__((target("sse4.2"))) inline uint32_t ThreeStreams(uint32_t crc,
                                                                const unsigned char* p,
                                                                const ShiftTables& shift) {
  static_assert(kStream % 8 == 0);
  uint64_t c0 = crc, c1 = 0, c2 = 0;
  for (size_t i = 0; i < kStream; i += 8) {
    c0 = _mm_crc32_u64(c0, Load64(p + i));
    c1 = _mm_crc32_u64(c1, Load64(p + kStream + i));
    c2 = _mm_crc32_u64(c2, Load64(p + 2 * kStream + i));
  }
  uint32_t c = shift.Shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
  return shift.Shift(c) ^ static_cast<uint32_t>(c2);
}

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const unsigned char* p,
                                                        size_t n) {
  uint32_t c = ~crc;
  if (n >= 3 * kLongStream) {
    const ShiftTables& shift = LongShift();
    while (n >= 3 * kLongStream) {
      c = ThreeStreams<kLongStream>(c, p, shift);
      p += 3 * kLongStream;
      n -= 3 * kLongStream;
    }
  }
  if (n >= 3 * kShortStream) {
    const ShiftTables& shift = ShortShift();
    while (n >= 3 * kShortStream) {
      c = ThreeStreams<kShortStream>(c, p, shift);
      p += 3 * kShortStream;
      n -= 3 * kShortStream;
    }
  }
  uint64_t c64 = c;
  while (n >= 8) {
    c64 = _mm_crc32_u64(c64, Load64(p));
    p += 8;
    n -= 8;
  }
  c = static_cast<uint32_t>(c64);
  while (n-- > 0) c = _mm_crc32_u8(c, *p++);
  return ~c;
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t Crc32cExtendPortable(uint32_t crc, std::span<const std::byte> data) {
  uint32_t c = ~crc;
  for (std::byte b : data) c = kTable[(c ^ static_cast<uint8_t>(b)) & 0xFFu] ^ (c >> 8);
  return ~c;
}

uint32_t Crc32cExtend(uint32_t crc, std::span<const std::byte> data) {
#if defined(__x86_64__)
  if (HasSse42()) {
    return ExtendSse42(crc, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  }
#endif
  return Crc32cExtendPortable(crc, data);
}

}  // namespace wafer

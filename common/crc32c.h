// CRC-32C (Castagnoli), the checksum on every weight chunk of the board link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace wafer {

// Extends `crc` (the value returned for the bytes before `data`; 0 to start) over `data`.
// Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise; both agree.
uint32_t Crc32cExtend(uint32_t crc, std::span<const std::byte> data);

inline uint32_t Crc32c(std::span<const std::byte> data) { return Crc32cExtend(0, data); }

// The portable table implementation, exposed so tests can check the fast path against it.
uint32_t Crc32cExtendPortable(uint32_t crc, std::span<const std::byte> data);

}  // namespace wafer

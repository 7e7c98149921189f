// Memory-mapped registers of the board controller, reached only through RegisterBus: a
// register is constexpr data (its offset in a block and its access type), and a read of a
// write-only register or a write of a read-only one does not compile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wafer::fw::board {

enum class Access : uint8_t {
  kRead,        // RO: writes are ignored by the hardware.
  kWrite,       // WO: reads return 0 (doorbells, command registers).
  kReadWrite,   // RW.
};

struct Register {
  uint32_t offset;  // Bytes from the block's base.
  Access access;
};

// One register block at a fixed base address. Not thread-safe (there is one thread).
class RegisterBus {
 public:
  explicit constexpr RegisterBus(uintptr_t base) : base_(base) {}

  template <Register R>
  uint32_t Read() const {
    static_assert(R.access != Access::kWrite, "write-only register");
    return *reinterpret_cast<volatile const uint32_t*>(base_ + R.offset);
  }
  template <Register R>
  void Write(uint32_t value) const {
    static_assert(R.access != Access::kRead, "read-only register");
    *reinterpret_cast<volatile uint32_t*>(base_ + R.offset) = value;
  }
  // Entry `index` of a register array: consecutive words from R's offset.
  template <Register R>
  void WriteAt(uint32_t index, uint32_t value) const {
    static_assert(R.access != Access::kRead, "read-only register");
    *reinterpret_cast<volatile uint32_t*>(base_ + R.offset + 4 * index) = value;
  }
  // A 64-bit value in two registers: LO is read first and latches HI (the hardware's rule).
  template <Register Lo, Register Hi>
  uint64_t Read64() const {
    const uint64_t lo = Read<Lo>();
    return lo | (uint64_t{Read<Hi>()} << 32);
  }
  template <Register Lo, Register Hi>
  void Write64(uint64_t value) const {
    Write<Lo>(static_cast<uint32_t>(value));
    Write<Hi>(static_cast<uint32_t>(value >> 32));
  }

 private:
  uintptr_t base_;
};

// Orders memory accesses to a shared (DMA) window against the register accesses that hand it
// over: everything written before is visible to the device, nothing after is read early. A full
// barrier: DMB on the Cortex-M4, as CMSIS drivers use before ringing a DMA doorbell (and a fence
// on the host, where the port's tests run it against a model of the registers).
inline void MemoryBarrier() { __sync_synchronize(); }

// Busy-waits, reading `poll` until it returns true or `spins` reads have failed. A real board
// bounds each wait: a device that never answers is UNAVAILABLE, not a hang.
template <typename Poll>
bool SpinUntil(Poll poll, uint32_t spins) {
  for (uint32_t i = 0; i < spins; ++i) {
    if (poll()) return true;
  }
  return false;
}

}  // namespace wafer::fw::board

#include "firmware/link/arena_allocator.h"

namespace wafer::fw {
namespace {

// A builder past its bound: stop here rather than write past the arena (no heap to fall back
// on, no exception to throw). The debugger or the watchdog takes it from here.
[[noreturn]] void ArenaOverflow() { __builtin_trap(); }

}  // namespace

ArenaAllocator::ArenaAllocator(std::span<std::byte> arena) : arena_(arena) {
  if (reinterpret_cast<uintptr_t>(arena.data()) % 8 != 0 || arena.size() % 8 != 0) {
    ArenaOverflow();  // A programmer error, caught at init.
  }
}

uint8_t* ArenaAllocator::allocate(size_t size) {
  if (in_use_ || size > arena_.size()) ArenaOverflow();
  in_use_ = true;
  return reinterpret_cast<uint8_t*>(arena_.data());
}

void ArenaAllocator::deallocate(uint8_t* p, size_t) {
  if (p == reinterpret_cast<uint8_t*>(arena_.data())) in_use_ = false;
}

uint8_t* ArenaAllocator::reallocate_downward(uint8_t*, size_t, size_t, size_t, size_t) {
  ArenaOverflow();
}

}  // namespace wafer::fw

// The board image's only definitions of the allocation functions: every one traps. Nothing in
// the firmware calls them after init or before (main constructs every object in static storage
// with placement new), but FlatBuffers' headers reference operator new[]/delete[] (its default
// allocator, never used: every builder has an ArenaAllocator) and every class with a virtual
// destructor references operator delete (its deleting destructor, never called: nothing is
// deleted). Linking these instead of the C and C++ libraries' versions keeps the heap out of the
// image; check_cortex_m4.sh verifies that nothing else defines them.
#include <cstddef>
#include <new>

namespace {
[[noreturn]] void HeapCall() { __builtin_trap(); }
}  // namespace

void* operator new(std::size_t) { HeapCall(); }
void* operator new[](std::size_t) { HeapCall(); }
void* operator new(std::size_t, const std::nothrow_t&) noexcept { HeapCall(); }
void* operator new[](std::size_t, const std::nothrow_t&) noexcept { HeapCall(); }
void* operator new(std::size_t, std::align_val_t) { HeapCall(); }
void* operator new[](std::size_t, std::align_val_t) { HeapCall(); }
void* operator new(std::size_t, std::align_val_t, const std::nothrow_t&) noexcept { HeapCall(); }
void* operator new[](std::size_t, std::align_val_t, const std::nothrow_t&) noexcept { HeapCall(); }
void operator delete(void*) noexcept { HeapCall(); }
void operator delete[](void*) noexcept { HeapCall(); }
void operator delete(void*, std::size_t) noexcept { HeapCall(); }
void operator delete[](void*, std::size_t) noexcept { HeapCall(); }
void operator delete(void*, std::align_val_t) noexcept { HeapCall(); }
void operator delete[](void*, std::align_val_t) noexcept { HeapCall(); }
void operator delete(void*, std::size_t, std::align_val_t) noexcept { HeapCall(); }
void operator delete[](void*, std::size_t, std::align_val_t) noexcept { HeapCall(); }
void operator delete(void*, const std::nothrow_t&) noexcept { HeapCall(); }
void operator delete[](void*, const std::nothrow_t&) noexcept { HeapCall(); }
void operator delete(void*, std::align_val_t, const std::nothrow_t&) noexcept { HeapCall(); }
void operator delete[](void*, std::align_val_t, const std::nothrow_t&) noexcept { HeapCall(); }

// The C library's allocator likewise, should anything in it reach for one.
extern "C" {
void* malloc(std::size_t) { HeapCall(); }
void* calloc(std::size_t, std::size_t) { HeapCall(); }
void* realloc(void*, std::size_t) { HeapCall(); }
void free(void*) { HeapCall(); }
void* _malloc_r(void*, std::size_t) { HeapCall(); }
void* _calloc_r(void*, std::size_t, std::size_t) { HeapCall(); }
void* _realloc_r(void*, void*, std::size_t) { HeapCall(); }
void _free_r(void*, void*) { HeapCall(); }
}

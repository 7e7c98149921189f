// A flatbuffers::Allocator over one fixed arena, and upper bounds of what a FlatBufferBuilder
// needs to build a message, so that the link layer builds frames without the heap.
//
// FlatBuffers 2.0.8's builder falls back to `new[]`/`delete[]` whenever it has no allocator and
// grows its buffer by reallocating; neither may happen on the board. Every builder in the link
// layer therefore gets an ArenaAllocator over an arena its owner reserved at init, sized for the
// largest frame, and is told that the arena is its initial size: its first allocation takes the
// whole arena and it never asks for more, because its owner checks each message's bound
// (fb_bound below) against capacity() before building and answers RESOURCE_EXHAUSTED instead of
// building a message that would not fit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include <flatbuffers/flatbuffers.h>

namespace wafer::fw {

// Not thread-safe; belongs to the one builder it was handed to.
class ArenaAllocator final : public flatbuffers::Allocator {
 public:
  // `arena` outlives this and every builder given this allocator.
  // REQUIRES: `arena` is 8-byte aligned and its size a multiple of 8 (the builder's alignment).
  explicit ArenaAllocator(std::span<std::byte> arena);

  // The arena, whole. REQUIRES: size <= capacity() and the arena is not handed out already;
  // anything else is a programmer error (a message built past its bound) and traps: the heap is
  // not an option and writing past the arena would corrupt memory.
  uint8_t* allocate(size_t size) override;
  void deallocate(uint8_t* p, size_t size) override;
  // The builder outgrew the arena: a programmer error (its owner checks the bound first); traps.
  uint8_t* reallocate_downward(uint8_t* old_p, size_t old_size, size_t new_size,
                               size_t in_use_back, size_t in_use_front) override;

  size_t capacity() const { return arena_.size(); }

 private:
  std::span<std::byte> arena_;
  bool in_use_ = false;
};

// Upper bounds of the bytes a FlatBufferBuilder uses for each part of a message: what it writes
// plus its scratch (a vtable offset kept per table, field locations while a table is open), with
// every alignment pad at its worst (8 bytes, the widest scalar). Generous on purpose: they size
// checks, not buffers on the wire.
namespace fb_bound {

// A table with `fields` fields (scalars, structs of at most 8 bytes, or offsets): its vtable
// (4 + 2 per field), its body (a 4-byte vtable offset, then each field padded to 8), padding,
// 8 bytes of scratch per field while it is built and 4 to remember its vtable.
constexpr size_t Table(size_t fields) { return 32 + 32 * fields; }
// A vector of `count` elements of `element_bytes` each (4 for a vector of tables or strings):
// its length, the elements, and padding before and after.
constexpr size_t Vector(size_t count, size_t element_bytes) { return 24 + count * element_bytes; }
// A string of `length` bytes: its length, the bytes, the terminating NUL and padding.
constexpr size_t String(size_t length) { return 16 + length; }
// Finishing a buffer: the root offset, the file identifier and the final alignment.
constexpr size_t Finish() { return 32; }
// The fields of a generated table, from the vtable offset of its last field (`Table::VT_LAST`):
// 4 for the first field, 2 more for each next one. Fields are only ever appended (schema
// evolution), so a table that gains one needs its last VT_ name updated here, or the bound falls
// short: frame_codec_test builds every reply in an arena of exactly its bound to catch that.
constexpr size_t Fields(size_t last_vtable_offset) { return (last_vtable_offset - 4) / 2 + 1; }

}  // namespace fb_bound

}  // namespace wafer::fw

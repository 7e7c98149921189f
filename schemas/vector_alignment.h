// FlatBuffers 2.0.8's Verifier checks that a vector's length prefix is 4-byte aligned, not that
// its elements are aligned for their type: a vector of 8-byte scalars ([ulong], [double]) or of an
// 8-byte-aligned struct ([KvRegion]) can sit 4 bytes off in a buffer that verifies, and reading
// it is undefined behaviour (UBSan found it when libFuzzer mutated board frames, issue 15). Every
// codec that reads such a vector checks it with ElementsAligned first and refuses the message as
// malformed otherwise; FlatBuffers' builders never write one misaligned.
#pragma once

#include <cstddef>
#include <cstdint>

#include <flatbuffers/flatbuffers.h>

namespace wafer::wire {

template <typename T>
struct ElementAlignment {
  static constexpr size_t value = alignof(T);
};
// A vector of structs is a Vector<const S*> whose elements are the structs themselves.
template <typename S>
struct ElementAlignment<const S*> {
  static constexpr size_t value = alignof(S);
};

// True when `vector` is absent, empty (the builder does not align an empty vector, and nothing
// is read from one) or its elements are aligned for their type. Call after the Verifier has
// accepted the buffer that holds it.
template <typename T>
bool ElementsAligned(const flatbuffers::Vector<T>* vector) {
  return vector == nullptr || vector->size() == 0 ||
         reinterpret_cast<uintptr_t>(vector->Data()) % ElementAlignment<T>::value == 0;
}

}  // namespace wafer::wire

// A vector with its capacity fixed at compile time and storage inline: no heap, ever. A push onto
// a full vector returns RESOURCE_EXHAUSTED instead of dropping or allocating.
#pragma once

#include <cassert>
#include <cstddef>
#include <new>
#include <span>
#include <utility>

#include "common/status.h"

namespace wafer {

template <typename T, size_t kCapacity>
class FixedVector {
 public:
  FixedVector() = default;
  FixedVector(const FixedVector&) = delete;
  FixedVector& operator=(const FixedVector&) = delete;
  ~FixedVector() { clear(); }

  // Returns RESOURCE_EXHAUSTED when full; the vector is unchanged then.
  template <typename... Args>
  [[nodiscard]] Status emplace_back(Args&&... args) {
    if (size_ == kCapacity) return ResourceExhausted();
    new (&slots_[size_]) T(std::forward<Args>(args)...);
    ++size_;
    return OkStatus();
  }
  [[nodiscard]] Status push_back(const T& v) { return emplace_back(v); }

  void pop_back() {
    assert(size_ > 0);
    --size_;
    data()[size_].~T();
  }
  // Removes element i by moving the last one into its place (order not kept).
  void swap_remove(size_t i) {
    assert(i < size_);
    if (i != size_ - 1) data()[i] = std::move(data()[size_ - 1]);
    pop_back();
  }
  void clear() {
    while (size_ > 0) pop_back();
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool full() const { return size_ == kCapacity; }
  static constexpr size_t capacity() { return kCapacity; }

  T* data() { return std::launder(reinterpret_cast<T*>(slots_)); }
  const T* data() const { return std::launder(reinterpret_cast<const T*>(slots_)); }
  T& operator[](size_t i) { assert(i < size_); return data()[i]; }
  const T& operator[](size_t i) const { assert(i < size_); return data()[i]; }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }
  std::span<T> span() { return {data(), size_}; }

 private:
  struct alignas(T) Slot {
    unsigned char bytes[sizeof(T)];
  };
  Slot slots_[kCapacity];
  size_t size_ = 0;
};

}  // namespace wafer

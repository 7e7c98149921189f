// Result<T>: a value or a non-OK Status. Heap-free (the value lives inline), so firmware uses it too.
#pragma once

#include <cassert>
#include <new>
#include <type_traits>
#include <utility>

#include "common/status.h"

namespace wafer {

template <typename T>
class [[nodiscard]] Result {
 public:
  // A Result built from a Status must carry an error; an OK status without a value is a bug.
  Result(Status status) : status_(status) {  // NOLINT(google-explicit-constructor)
    assert(!status.ok());
    if (status_.ok()) status_ = Internal();
  }
  Result(const T& value) : has_value_(true) { new (&storage_) T(value); }  // NOLINT
  Result(T&& value) : has_value_(true) { new (&storage_) T(std::move(value)); }  // NOLINT

  Result(const Result& other) : status_(other.status_), has_value_(other.has_value_) {
    if (has_value_) new (&storage_) T(other.value());
  }
  Result(Result&& other) noexcept : status_(other.status_), has_value_(other.has_value_) {
    if (has_value_) new (&storage_) T(std::move(other.value()));
  }
  Result& operator=(Result other) noexcept {
    Reset();
    status_ = other.status_;
    has_value_ = other.has_value_;
    if (has_value_) new (&storage_) T(std::move(other.value()));
    return *this;
  }
  ~Result() { Reset(); }

  bool ok() const { return has_value_; }
  Status status() const { return status_; }

  // REQUIRES: ok().
  T& value() & { assert(has_value_); return *std::launder(reinterpret_cast<T*>(&storage_)); }
  const T& value() const& {
    assert(has_value_);
    return *std::launder(reinterpret_cast<const T*>(&storage_));
  }
  T&& value() && { assert(has_value_); return std::move(*std::launder(reinterpret_cast<T*>(&storage_))); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void Reset() {
    if (has_value_) value().~T();
    has_value_ = false;
  }

  Status status_;
  bool has_value_ = false;
  alignas(T) unsigned char storage_[sizeof(T)];
};

}  // namespace wafer

#define WAFER_CONCAT_INNER_(a, b) a##b
#define WAFER_CONCAT_(a, b) WAFER_CONCAT_INNER_(a, b)
#define WAFER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
// Declares or assigns `lhs` from a Result-returning expression, returning its Status on error.
#define WAFER_ASSIGN_OR_RETURN(lhs, expr) \
  WAFER_ASSIGN_OR_RETURN_IMPL_(WAFER_CONCAT_(wafer_result_, __LINE__), lhs, expr)

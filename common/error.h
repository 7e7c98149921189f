// Error and HostResult<T>: the host side's one way to say what went wrong, a code with its
// message. Firmware keeps the code-only, heap-free `Status` (common/status.h); this header uses
// std::string and is never built for the board.
//
// A fallible host function returns `HostResult<T>` (or `HostStatus` when there is no value)
// instead of filling a `std::string* detail` out-parameter or leaving its message behind a
// `last_error()` getter:
//
//   HostResult<DaemonConfig> LoadConfig(const std::string& path);
//   ...
//   auto config = LoadConfig(path);
//   if (!config.ok()) return config.error().WithContext("config");
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/status.h"

namespace wafer {

struct [[nodiscard]] Error {
  StatusCode code = StatusCode::kUnknown;
  std::string message;

  Status status() const { return Status(code); }
  const char* code_name() const { return StatusCodeName(code); }

  // The same error with "`context`: " in front of its message, for a caller that knows which
  // file, key or board the failure was about.
  Error WithContext(std::string_view context) const& { return Error(*this).WithContext(context); }
  Error WithContext(std::string_view context) && {
    message.insert(0, std::string(context) + ": ");
    return std::move(*this);
  }

  // "INVALID_ARGUMENT: <message>", for logs and command-line output.
  std::string ToString() const { return std::string(code_name()) + ": " + message; }

  friend bool operator==(const Error&, const Error&) = default;
};

// A value, or the Error that kept it from being made.
template <typename T>
class [[nodiscard]] HostResult {
 public:
  HostResult(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT
  // REQUIRES: error.code != kOk (an OK error is a bug; it becomes INTERNAL).
  HostResult(Error error) : state_(std::in_place_index<1>, std::move(error)) {  // NOLINT
    if (std::get<1>(state_).code == StatusCode::kOk) std::get<1>(state_).code = StatusCode::kInternal;
  }

  bool ok() const { return state_.index() == 0; }
  StatusCode code() const { return ok() ? StatusCode::kOk : error().code; }
  Status status() const { return Status(code()); }

  // REQUIRES: !ok().
  const Error& error() const& { return std::get<1>(state_); }
  Error&& error() && { return std::get<1>(std::move(state_)); }

  // REQUIRES: ok().
  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> state_;
};

// Success with nothing to return, or an Error.
template <>
class [[nodiscard]] HostResult<void> {
 public:
  HostResult() = default;
  HostResult(Error error) : error_(std::move(error)), failed_(true) {  // NOLINT
    if (error_.code == StatusCode::kOk) error_.code = StatusCode::kInternal;
  }

  bool ok() const { return !failed_; }
  StatusCode code() const { return failed_ ? error_.code : StatusCode::kOk; }
  Status status() const { return Status(code()); }

  // REQUIRES: !ok().
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_{StatusCode::kOk, {}};
  bool failed_ = false;
};

using HostStatus = HostResult<void>;

inline HostStatus HostOk() { return HostStatus(); }

}  // namespace wafer

#ifndef WAFER_CONCAT_
#define WAFER_CONCAT_INNER_(a, b) a##b
#define WAFER_CONCAT_(a, b) WAFER_CONCAT_INNER_(a, b)
#endif

// Returns the Error of a failed HostResult/HostStatus expression from the enclosing function
// (which must return a HostResult of any type).
#define WAFER_HOST_RETURN_IF_ERROR(expr)                       \
  do {                                                         \
    auto wafer_host_status_ = (expr);                          \
    if (!wafer_host_status_.ok()) return std::move(wafer_host_status_).error(); \
  } while (0)

#define WAFER_HOST_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                      \
  if (!tmp.ok()) return std::move(tmp).error();           \
  lhs = std::move(tmp).value()
// Declares or assigns `lhs` from a HostResult expression, returning its Error on failure.
#define WAFER_HOST_ASSIGN_OR_RETURN(lhs, expr) \
  WAFER_HOST_ASSIGN_OR_RETURN_IMPL_(WAFER_CONCAT_(wafer_host_result_, __LINE__), lhs, expr)

// Status and the canonical error codes, shared by firmware and host. Code-only and heap-free:
// human detail goes to the log and, when a client must see it, into a reply's `detail` field.
#pragma once

#include <cstdint>

namespace wafer {

enum class StatusCode : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// Returns the canonical upper-case name ("INVALID_ARGUMENT"); "UNKNOWN_CODE" for bad values.
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  constexpr Status() = default;
  constexpr explicit Status(StatusCode code) : code_(code) {}

  static constexpr Status Ok() { return Status(); }

  constexpr bool ok() const { return code_ == StatusCode::kOk; }
  constexpr StatusCode code() const { return code_; }
  const char* name() const { return StatusCodeName(code_); }

  // Marks a status as deliberately ignored.
  void IgnoreError() const {}

  friend constexpr bool operator==(Status a, Status b) { return a.code_ == b.code_; }

 private:
  StatusCode code_ = StatusCode::kOk;
};

constexpr Status OkStatus() { return Status(); }
constexpr Status InvalidArgument() { return Status(StatusCode::kInvalidArgument); }
constexpr Status NotFound() { return Status(StatusCode::kNotFound); }
constexpr Status AlreadyExists() { return Status(StatusCode::kAlreadyExists); }
constexpr Status ResourceExhausted() { return Status(StatusCode::kResourceExhausted); }
constexpr Status FailedPrecondition() { return Status(StatusCode::kFailedPrecondition); }
constexpr Status OutOfRange() { return Status(StatusCode::kOutOfRange); }
constexpr Status Unavailable() { return Status(StatusCode::kUnavailable); }
constexpr Status DataLoss() { return Status(StatusCode::kDataLoss); }
constexpr Status Internal() { return Status(StatusCode::kInternal); }
constexpr Status DeadlineExceeded() { return Status(StatusCode::kDeadlineExceeded); }
constexpr Status Cancelled() { return Status(StatusCode::kCancelled); }
constexpr Status Unimplemented() { return Status(StatusCode::kUnimplemented); }
constexpr Status PermissionDenied() { return Status(StatusCode::kPermissionDenied); }

}  // namespace wafer

#define WAFER_RETURN_IF_ERROR(expr)            \
  do {                                         \
    const ::wafer::Status wafer_status_ = (expr); \
    if (!wafer_status_.ok()) return wafer_status_; \
  } while (0)

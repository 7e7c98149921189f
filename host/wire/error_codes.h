// The typed wire code a client sees for a Status from a board, the link or a model loader.
#pragma once

#include "common/status.h"
#include "host/wire/messages.h"

namespace wafer::host {

// NOT_FOUND means different things by context (a model the board does not hold; a model
// directory that is missing), so the caller says which code it becomes.
inline ErrorCode ErrorCodeFor(Status s, ErrorCode if_not_found) {
  switch (s.code()) {
    case StatusCode::kOk: return ErrorCode::kNone;
    case StatusCode::kNotFound: return if_not_found;
    case StatusCode::kInvalidArgument: return ErrorCode::kInvalidArgument;
    case StatusCode::kAlreadyExists: return ErrorCode::kAlreadyExists;
    case StatusCode::kResourceExhausted: return ErrorCode::kResourceExhausted;
    case StatusCode::kFailedPrecondition: return ErrorCode::kFailedPrecondition;
    case StatusCode::kUnavailable: return ErrorCode::kBoardUnavailable;
    case StatusCode::kDataLoss: return ErrorCode::kDataLoss;
    case StatusCode::kOutOfRange: return ErrorCode::kOutOfRange;
    case StatusCode::kPermissionDenied: return ErrorCode::kPermissionDenied;
    case StatusCode::kDeadlineExceeded: return ErrorCode::kDeadlineExceeded;
    case StatusCode::kCancelled: return ErrorCode::kCancelled;
    case StatusCode::kUnimplemented: return ErrorCode::kUnimplemented;
    default: return ErrorCode::kInternal;
  }
}

}  // namespace wafer::host

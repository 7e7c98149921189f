#include "host/wire/messages.h"

namespace wafer::host {

StatusCode DecodeErrorStatus(ErrorCode wire_code) {
  switch (wire_code) {
    case ErrorCode::kUnsupportedVersion: return StatusCode::kFailedPrecondition;
    case ErrorCode::kWrongMessageType: return StatusCode::kUnimplemented;
    case ErrorCode::kInvalidArgument: return StatusCode::kInvalidArgument;
    default: return StatusCode::kDataLoss;  // MALFORMED_MESSAGE, and anything else.
  }
}

ErrorCode DecodeErrorWireCode(StatusCode code) {
  switch (code) {
    case StatusCode::kFailedPrecondition: return ErrorCode::kUnsupportedVersion;
    case StatusCode::kUnimplemented: return ErrorCode::kWrongMessageType;
    case StatusCode::kInvalidArgument: return ErrorCode::kInvalidArgument;
    default: return ErrorCode::kMalformedMessage;  // DATA_LOSS, and anything else.
  }
}

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone: return "NONE";
    case ErrorCode::kMalformedMessage: return "MALFORMED_MESSAGE";
    case ErrorCode::kUnsupportedVersion: return "UNSUPPORTED_VERSION";
    case ErrorCode::kWrongMessageType: return "WRONG_MESSAGE_TYPE";
    case ErrorCode::kUnknownModel: return "UNKNOWN_MODEL";
    case ErrorCode::kPromptTooLong: return "PROMPT_TOO_LONG";
    case ErrorCode::kInvalidMaxTokens: return "INVALID_MAX_TOKENS";
    case ErrorCode::kInvalidSampling: return "INVALID_SAMPLING";
    case ErrorCode::kQueueFull: return "QUEUE_FULL";
    case ErrorCode::kDraining: return "DRAINING";
    case ErrorCode::kUnknownJob: return "UNKNOWN_JOB";
    case ErrorCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case ErrorCode::kModelNotReady: return "MODEL_NOT_READY";
    case ErrorCode::kBoardUnavailable: return "BOARD_UNAVAILABLE";
    case ErrorCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case ErrorCode::kInternal: return "INTERNAL";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kDataLoss: return "DATA_LOSS";
    case ErrorCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case ErrorCode::kUnimplemented: return "UNIMPLEMENTED";
    case ErrorCode::kCancelled: return "CANCELLED";
    case ErrorCode::kAlreadyExists: return "ALREADY_EXISTS";
    case ErrorCode::kMessageTooLarge: return "MESSAGE_TOO_LARGE";
    case ErrorCode::kOutOfRange: return "OUT_OF_RANGE";
    case ErrorCode::kPermissionDenied: return "PERMISSION_DENIED";
    case ErrorCode::kIdempotencyConflict: return "IDEMPOTENCY_CONFLICT";
    case ErrorCode::kStorageUnavailable: return "STORAGE_UNAVAILABLE";
    case ErrorCode::kQuotaExceeded: return "QUOTA_EXCEEDED";
    case ErrorCode::kTargetUnmeetable: return "TARGET_UNMEETABLE";
  }
  return "UNKNOWN_CODE";
}

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStopToken: return "stop_token";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kDeadlineExceeded: return "deadline_exceeded";
    case FinishReason::kError: return "error";
    case FinishReason::kContextFull: return "context_full";
    case FinishReason::kAbandoned: return "abandoned";
    case FinishReason::kPoison: return "poison";
    case FinishReason::kShed: return "shed";
  }
  return "unknown";
}

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kUnknown: return "unknown";
    case JobState::kQueued: return "queued";
    case JobState::kRunning: return "running";
    case JobState::kFinished: return "finished";
  }
  return "unknown";
}

const char* BoardStateName(BoardState state) {
  switch (state) {
    case BoardState::kOffline: return "offline";
    case BoardState::kBooting: return "booting";
    case BoardState::kReady: return "ready";
    case BoardState::kFaulted: return "faulted";
    case BoardState::kResetting: return "resetting";
  }
  return "unknown";
}

const char* ModelStateName(ModelState state) {
  switch (state) {
    case ModelState::kLoading: return "loading";
    case ModelState::kReady: return "ready";
    case ModelState::kUnloading: return "unloading";
    case ModelState::kFailed: return "failed";
  }
  return "unknown";
}

}  // namespace wafer::host

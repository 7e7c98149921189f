// The firmware's error log: a fixed-capacity ring of records in RAM that the host reads over the
// link (ReadErrorLog). No heap: when the ring is full the oldest record is overwritten and
// counted, so a reader can tell that it missed some.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>

#include "common/clock.h"

namespace wafer::fw {

// Same values as board.fbs LogSeverity.
enum class Severity : uint8_t { kInfo, kWarning, kError, kFatal };

// Same values as board.fbs LogCode, where the arguments of each are listed.
enum class LogCode : uint16_t {
  kUnknown = 0,
  kBootTransition = 1,
  kBootRejected = 2,
  kSelfTestFailed = 3,
  kReset = 4,
  kChunkCrcMismatch = 5,
  kChunkOutOfRange = 6,
  kStepFailed = 7,
  kImageBegin = 8,
  kImageChunkCrcMismatch = 9,
  kImageOutOfRange = 10,
  kImageCrcMismatch = 11,
  kImageSignatureInvalid = 12,
  kImageAccepted = 13,
  kImageActivated = 14,
  kImageConfirmed = 15,
  kImageRolledBack = 16,
  kFabricHarvested = 17,
  kPeFailed = 18,
  kEccCorrected = 19,
  kLinkCrcError = 20,
  kThermalThrottle = 21,
  kThermalTrip = 22,
  kPowerCapped = 23,
  kFaultInjected = 24,
  kModelRepaired = 25,
  kDiagnosticRun = 26,
  kRollbackRequested = 27,
};

inline constexpr size_t kLogArgs = 4;
inline constexpr size_t kErrorLogCapacity = 256;
inline constexpr size_t kMaxLogRecordsPerReply = 64;

struct LogRecord {
  uint64_t sequence = 0;  // 1 for the first record since power-up.
  int64_t timestamp_ns = 0;
  Severity severity = Severity::kInfo;
  LogCode code = LogCode::kUnknown;
  uint8_t arg_count = 0;
  std::array<uint64_t, kLogArgs> args{};
};

// What a Read returned besides the records.
struct LogReadResult {
  size_t count = 0;            // Records copied into `out`.
  uint64_t next_sequence = 0;  // Where the next read should start.
  uint64_t dropped = 0;        // Records at or after `from_sequence` that were overwritten.
};

// Not thread-safe; owned by the command processor. Survives a Reset command (it sits in RAM the
// reset does not clear), so the host can read what happened around a reset or a rollback.
class ErrorLog {
 public:
  // `clock` outlives this; it stamps every record.
  explicit ErrorLog(const Clock& clock) : clock_(clock) {}

  // Appends a record; extra arguments beyond kLogArgs are dropped. When the ring is full the
  // oldest record is overwritten and overwritten() grows by one.
  void Append(Severity severity, LogCode code, std::initializer_list<uint64_t> args);

  // Copies records with sequence >= `from_sequence`, oldest first, into `out` (at most its size).
  // A `from_sequence` beyond the newest record yields nothing and next_sequence = the next one
  // to be written, so a reader that outlived a power cycle resynchronizes.
  LogReadResult Read(uint64_t from_sequence, std::span<LogRecord> out) const;

  size_t size() const { return size_; }
  static constexpr size_t capacity() { return kErrorLogCapacity; }
  uint64_t overwritten() const { return overwritten_; }
  // The sequence number the next record will get.
  uint64_t next_sequence() const { return next_sequence_; }

 private:
  const Clock& clock_;
  std::array<LogRecord, kErrorLogCapacity> ring_{};
  size_t head_ = 0;  // Index of the oldest record.
  size_t size_ = 0;
  uint64_t next_sequence_ = 1;
  uint64_t overwritten_ = 0;
};

}  // namespace wafer::fw

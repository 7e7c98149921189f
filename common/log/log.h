// The host side's one logger: leveled lines that name their component, as text or as JSON, on
// stderr. spdlog does the writing behind this header; callers include only this file and format
// with fmt's "{}" syntax, checked at compile time:
//
//   log::Warn("store", "job store {}: {}; writes wait for the disk", path, why);
//   log::Info(log::BoardComponent(2), "drained: {}", reasons);
//
// Host side only (it uses the heap and threads); firmware keeps its error-log ring.
//
// Thread-safe: every function may be called from any thread. A line is written whole (one
// write and flush per line, under a lock), so lines of different threads never interleave.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/core.h>

#include "common/error.h"

namespace wafer::log {

// In increasing severity; kOff silences every line.
enum class Level : uint8_t { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// kText: "2026-12-07T08:48:43.123Z WARN  [store] message", one line per record; control
// characters in the message are escaped (\n, \t, \xHH) so that a record stays one line.
// kJson: one object per line, {"ts":"2026-12-07T08:48:43.123Z","level":"warn",
// "component":"store","msg":"message"}, ASCII only: quotes, backslashes and control characters
// are escaped, UTF-8 becomes \uXXXX escapes and bytes that are not UTF-8 become \ufffd.
enum class Format : uint8_t { kText, kJson };

struct Options {
  Level level = Level::kInfo;
  Format format = Format::kText;
  // Where lines go. Borrowed: the file must stay open until Configure() picks another one.
  std::FILE* out = stderr;
};

// Replaces the process-wide settings. Until the first call, the logger writes info and above as
// text to stderr.
void Configure(const Options& options);

// "trace", "debug", "info", "warn", "error", "off".
const char* LevelName(Level level);
// "text", "json".
const char* FormatName(Format format);

// Parses a level name as LevelName() spells it.
//
// Returns:
//   OK               - the level.
//   INVALID_ARGUMENT - `name` is none of them; the message lists the accepted names.
HostResult<Level> ParseLevel(std::string_view name);

// Parses a format name as FormatName() spells it.
//
// Returns:
//   OK               - the format.
//   INVALID_ARGUMENT - `name` is neither; the message lists the accepted names.
HostResult<Format> ParseFormat(std::string_view name);

// The component name of board `index`'s lines: "board[2]".
std::string BoardComponent(uint32_t index);

// True when a line of `level` would be written (formatting is skipped otherwise).
bool Enabled(Level level);

// Writes one line, already formatted. Never throws; a line that cannot be written is lost.
void Write(Level level, std::string_view component, std::string_view message);

template <typename... Args>
void Log(Level level, std::string_view component, fmt::format_string<Args...> format,
         Args&&... args) {
  if (!Enabled(level)) return;
  Write(level, component, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void Trace(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  Log(Level::kTrace, component, format, std::forward<Args>(args)...);
}
template <typename... Args>
void Debug(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  Log(Level::kDebug, component, format, std::forward<Args>(args)...);
}
template <typename... Args>
void Info(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  Log(Level::kInfo, component, format, std::forward<Args>(args)...);
}
template <typename... Args>
void Warn(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  Log(Level::kWarn, component, format, std::forward<Args>(args)...);
}
template <typename... Args>
void Error(std::string_view component, fmt::format_string<Args...> format, Args&&... args) {
  Log(Level::kError, component, format, std::forward<Args>(args)...);
}

}  // namespace wafer::log

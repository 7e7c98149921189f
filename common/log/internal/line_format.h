// The two line formats of common/log, as pure functions so that tests pin them byte for byte.
// Private to common/log.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/log/log.h"

namespace wafer::log::internal {

// "2026-12-07T08:48:43.123Z": UTC, milliseconds.
std::string Timestamp(int64_t unix_ms);

// `message` as the body of a JSON string (no quotes around it), ASCII only: '"' and '\' are
// escaped, control characters become \n, \r, \t, \b, \f or \u00XX, each well-formed UTF-8
// sequence becomes its \uXXXX escape (a surrogate pair above U+FFFF), and each byte that does
// not start a well-formed sequence (overlong, surrogate, past U+10FFFF, truncated) becomes
// \ufffd.
std::string JsonEscape(std::string_view message);

// `message` with control characters escaped (\n, \r, \t, \xHH; backslashes stay as they are),
// so that it cannot end the line or fake another record. Other bytes pass through unchanged.
std::string TextEscape(std::string_view message);

// "<ts> <LEVEL> [<component>] <message>\n", the level padded to five characters.
std::string TextLine(int64_t unix_ms, Level level, std::string_view component,
                     std::string_view message);

// {"ts":"<ts>","level":"<level>","component":"<component>","msg":"<message>"}\n
std::string JsonLine(int64_t unix_ms, Level level, std::string_view component,
                     std::string_view message);

}  // namespace wafer::log::internal

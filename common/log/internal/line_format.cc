#include "common/log/internal/line_format.h"

#include <ctime>

namespace wafer::log::internal {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void AppendU16(std::string& out, uint32_t unit) {
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(unit >> shift) & 0xf];
}

// Decodes one well-formed UTF-8 sequence (RFC 3629) at the front of `s`; returns its length
// and sets `code_point`, or returns 0 when the first byte does not start one.
size_t DecodeUtf8(std::string_view s, uint32_t* code_point) {
  const auto b0 = static_cast<uint8_t>(s[0]);
  size_t length;
  uint32_t cp;
  uint32_t min;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2, cp = b0 & 0x1f, min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3, cp = b0 & 0x0f, min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;  // ASCII is not handled here; 0x80-0xc1 and 0xf5-0xff never start a sequence.
  }
  if (s.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  *code_point = cp;
  return length;
}

const char* UpperLevelName(Level level) {
  switch (level) {
    case Level::kTrace: return "TRACE";
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO ";
    case Level::kWarn: return "WARN ";
    case Level::kError: return "ERROR";
    case Level::kOff: return "OFF  ";
  }
  return "?    ";
}

}  // namespace

std::string Timestamp(int64_t unix_ms) {
  int64_t seconds = unix_ms / 1000;
  int64_t millis = unix_ms % 1000;
  if (millis < 0) millis += 1000, seconds -= 1;
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  out += '.';
  out += static_cast<char>('0' + millis / 100);
  out += static_cast<char>('0' + millis / 10 % 10);
  out += static_cast<char>('0' + millis % 10);
  out += 'Z';
  return out;
}

std::string JsonEscape(std::string_view message) {
  std::string out;
  out.reserve(message.size() + 8);
  size_t i = 0;
  while (i < message.size()) {
    const auto c = static_cast<uint8_t>(message[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            AppendU16(out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t length = DecodeUtf8(message.substr(i), &cp);
    if (length == 0) {
      AppendU16(out, 0xfffd);  // Not UTF-8: the replacement character, one per bad byte.
      ++i;
      continue;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      AppendU16(out, 0xd800 + (cp >> 10));
      AppendU16(out, 0xdc00 + (cp & 0x3ff));
    } else {
      AppendU16(out, cp);
    }
    i += length;
  }
  return out;
}

std::string TextEscape(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  for (const char ch : message) {
    const auto c = static_cast<uint8_t>(ch);
    if (c >= 0x20 && c != 0x7f) {
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string TextLine(int64_t unix_ms, Level level, std::string_view component,
                     std::string_view message) {
  std::string line = Timestamp(unix_ms);
  line += ' ';
  line += UpperLevelName(level);
  line += " [";
  line += TextEscape(component);
  line += "] ";
  line += TextEscape(message);
  line += '\n';
  return line;
}

std::string JsonLine(int64_t unix_ms, Level level, std::string_view component,
                     std::string_view message) {
  std::string line = "{\"ts\":\"";
  line += Timestamp(unix_ms);
  line += "\",\"level\":\"";
  line += LevelName(level);
  line += "\",\"component\":\"";
  line += JsonEscape(component);
  line += "\",\"msg\":\"";
  line += JsonEscape(message);
  line += "\"}\n";
  return line;
}

}  // namespace wafer::log::internal

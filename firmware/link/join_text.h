// Bounded string concatenation for reply details, without the C library's printf family (whose
// newlib implementation reaches for malloc, which the board image does without).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <span>

namespace wafer::fw {

// Writes the concatenation of `parts` (NUL-terminated; nullptr counts as empty) into `out`, cut
// to fit and NUL-terminated, like snprintf(out, size, "%s%s...", parts...).
// Returns the characters written, without the NUL. REQUIRES: !out.empty().
inline size_t JoinText(std::span<char> out, std::initializer_list<const char*> parts) {
  size_t n = 0;
  for (const char* p : parts) {
    for (; p != nullptr && *p != '\0' && n + 1 < out.size(); ++p) out[n++] = *p;
  }
  out[n] = '\0';
  return n;
}

}  // namespace wafer::fw

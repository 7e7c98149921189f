// UTF-8 decoding shared by the tokenizer and its pre-tokenizer (well-formed sequences per the
// Unicode Standard, table 3-7).
#pragma once

#include <cstddef>
#include <string_view>

namespace wafer::host::internal {

// The length of the UTF-8 sequence `lead` starts; 0 when `lead` cannot start one (a continuation
// byte, 0xC0, 0xC1 or 0xF5..0xFF).
inline size_t Utf8SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

// Whether `next` may be byte `index` (>= 1) of the sequence `lead` starts. Rejects overlong
// forms, surrogates and code points above U+10FFFF, like the standard.
inline bool Utf8ValidFollower(unsigned char lead, size_t index, unsigned char next) {
  if ((next & 0xc0) != 0x80) return false;
  if (index != 1) return true;
  if (lead == 0xe0) return next >= 0xa0;
  if (lead == 0xed) return next < 0xa0;
  if (lead == 0xf0) return next >= 0x90;
  if (lead == 0xf4) return next < 0x90;
  return true;
}

// What DecodeUtf8 yields for a byte outside a valid sequence; not a Unicode code point.
inline constexpr char32_t kInvalidCodePoint = 0xffffffff;

// Decodes the character at `text[pos]` (pos < text.size()) into `*cp` and returns its length in
// bytes. A byte that does not start a complete, valid sequence is returned alone (length 1) with
// `*cp` = kInvalidCodePoint; this never reads past the end of `text`.
inline size_t DecodeUtf8(std::string_view text, size_t pos, char32_t* cp) {
  const auto lead = static_cast<unsigned char>(text[pos]);
  const size_t len = Utf8SequenceLength(lead);
  if (len == 0 || len > text.size() - pos) {
    *cp = kInvalidCodePoint;
    return 1;
  }
  static constexpr unsigned char kLeadMask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
  char32_t value = lead & kLeadMask[len];
  for (size_t k = 1; k < len; ++k) {
    const auto next = static_cast<unsigned char>(text[pos + k]);
    if (!Utf8ValidFollower(lead, k, next)) {
      *cp = kInvalidCodePoint;
      return 1;
    }
    value = (value << 6) | (next & 0x3f);
  }
  *cp = value;
  return len;
}

}  // namespace wafer::host::internal

#include "host/models/internal/pre_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "host/models/internal/unicode_tables.h"
#include "host/models/internal/utf8.h"

// How the regexes are matched. Both are alternations tried leftmost-first at the current position
// (Oniguruma, which Hugging Face tokenizers runs, and fancy-regex backtrack the same way): the
// first alternative that matches there wins, even if a later one would match more. Every
// character is a letter (\p{L}), a number (\p{N}), a space (\s) or other, and every alternative
// starts with a run of one class, so each matcher below checks the alternatives in pattern order
// and decides each one from the classes of the next few characters. The greedy quantifiers
// backtrack only where noted.

namespace wafer::host::internal {
namespace {

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther, kEnd };

CharClass Classify(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return CharClass::kLetter;
    if (cp >= '0' && cp <= '9') return CharClass::kNumber;
    if (cp == ' ' || (cp >= '\t' && cp <= '\r')) return CharClass::kSpace;
    return CharClass::kOther;
  }
  if (cp == kInvalidCodePoint) return CharClass::kOther;
  if (InRanges(LetterRanges(), cp)) return CharClass::kLetter;
  if (InRanges(NumberRanges(), cp)) return CharClass::kNumber;
  if (InRanges(WhiteSpaceRanges(), cp)) return CharClass::kSpace;
  return CharClass::kOther;
}

// `text` decoded into characters, with out-of-range positions reading as kEnd.
class Chars {
 public:
  explicit Chars(std::string_view text) : text_(text) {
    chars_.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
      char32_t cp;
      const size_t len = DecodeUtf8(text, pos, &cp);
      chars_.push_back({pos, cp, Classify(cp)});
      pos += len;
    }
  }

  size_t size() const { return chars_.size(); }
  CharClass cls(size_t i) const { return i < chars_.size() ? chars_[i].cls : CharClass::kEnd; }
  char32_t cp(size_t i) const { return i < chars_.size() ? chars_[i].cp : kInvalidCodePoint; }
  bool IsLineBreak(size_t i) const { return cp(i) == '\r' || cp(i) == '\n'; }

  // The first position at or after `i` whose class is not `c`.
  size_t RunEnd(size_t i, CharClass c) const {
    while (cls(i) == c) ++i;
    return i;
  }

  // The bytes of characters [begin, end).
  std::string_view Slice(size_t begin, size_t end) const {
    const size_t from = chars_[begin].offset;
    const size_t to = end < chars_.size() ? chars_[end].offset : text_.size();
    return text_.substr(from, to - from);
  }

 private:
  struct Char {
    size_t offset;  // In text_.
    char32_t cp;    // kInvalidCodePoint for a byte outside a valid sequence.
    CharClass cls;
  };
  std::string_view text_;
  std::vector<Char> chars_;
};

// `'s|'t|'re|'ve|'m|'ll|'d` at `i`, case-insensitively for `(?i:...)`: the end of the match, or
// 0. Under Unicode simple case folding the only non-ASCII character that folds to one of these
// letters is U+017F LATIN SMALL LETTER LONG S, which folds to 's' (both engines honour it).
size_t MatchContraction(const Chars& s, size_t i, bool ignore_case) {
  if (s.cp(i) != '\'') return 0;
  auto fold = [&](size_t k) -> char32_t {
    const char32_t c = s.cp(k);
    if (!ignore_case) return c;
    if (c >= 'A' && c <= 'Z') return c - 'A' + 'a';
    return c == 0x17f ? char32_t{'s'} : c;
  };
  const char32_t a = fold(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  const char32_t b = fold(i + 2);
  if (((a == 'r' || a == 'v') && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

// `\s+(?!\S)|\s+` at `i`, where the whitespace run is [i, end). The greedy \s+ backs off one
// character so that the lookahead sees whitespace: all of the run when it ends the text, all but
// its last character when that leaves at least one, else (a single space before a non-space)
// the second alternative takes the run.
size_t MatchSpaceTail(const Chars& s, size_t i, size_t end) {
  if (end == s.size() || end - i == 1) return end;
  return end - 1;
}

// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` at `i`.
size_t MatchGpt2(const Chars& s, size_t i) {
  if (size_t end = MatchContraction(s, i, /*ignore_case=*/false)) return end;
  // ` ?X+` for X in letter, number, other: the optional ' ' joins only when X follows it; without
  // it, X+ would have to start at the ' ' itself, which is a space, not X.
  for (CharClass c : {CharClass::kLetter, CharClass::kNumber, CharClass::kOther}) {
    const size_t start = s.cp(i) == ' ' && s.cls(i + 1) == c ? i + 1 : i;
    if (s.cls(start) == c) return s.RunEnd(start, c);
  }
  return MatchSpaceTail(s, i, s.RunEnd(i, CharClass::kSpace));  // Only a space is left.
}

// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|`
// `\s*[\r\n]+|\s+(?!\S)|\s+` at `i`.
size_t MatchLlama3(const Chars& s, size_t i) {
  if (size_t end = MatchContraction(s, i, /*ignore_case=*/true)) return end;
  // `[^\r\n\p{L}\p{N}]?\p{L}+`: one space (not CR or LF) or other character may lead the letters.
  if (s.cls(i) == CharClass::kLetter) return s.RunEnd(i, CharClass::kLetter);
  if ((s.cls(i) == CharClass::kOther || (s.cls(i) == CharClass::kSpace && !s.IsLineBreak(i))) &&
      s.cls(i + 1) == CharClass::kLetter) {
    return s.RunEnd(i + 1, CharClass::kLetter);
  }
  // `\p{N}{1,3}`.
  if (s.cls(i) == CharClass::kNumber) return std::min(s.RunEnd(i, CharClass::kNumber), i + 3);
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`.
  const size_t start = s.cp(i) == ' ' && s.cls(i + 1) == CharClass::kOther ? i + 1 : i;
  if (s.cls(start) == CharClass::kOther) {
    size_t end = s.RunEnd(start, CharClass::kOther);
    while (s.IsLineBreak(end)) ++end;
    return end;
  }
  // Only a space is left; its run is [i, run_end). `\s*[\r\n]+`: the greedy \s* backs off until
  // [\r\n]+ can match, so the match ends just after the run's last CR or LF.
  const size_t run_end = s.RunEnd(i, CharClass::kSpace);
  for (size_t end = run_end; end > i; --end) {
    if (s.IsLineBreak(end - 1)) return end;
  }
  return MatchSpaceTail(s, i, run_end);
}

std::vector<std::string_view> Split(std::string_view text, size_t (*match)(const Chars&, size_t)) {
  const Chars chars(text);
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < chars.size();) {
    const size_t end = match(chars, i);  // Always > i: some alternative matches every character.
    pieces.push_back(chars.Slice(i, end));
    i = end;
  }
  return pieces;
}

}  // namespace

std::vector<std::string_view> SplitGpt2(std::string_view text) { return Split(text, MatchGpt2); }

std::vector<std::string_view> SplitLlama3(std::string_view text) {
  return Split(text, MatchLlama3);
}

}  // namespace wafer::host::internal

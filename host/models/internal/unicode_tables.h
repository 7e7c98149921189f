// The Unicode classes the pre-tokenizer's split patterns use (\p{L}, \p{N}, \s), as sorted,
// disjoint, inclusive code-point ranges. The tables live in unicode_tables.cc, which
// scripts/gen-unicode-tables generates; its header comment names the Unicode version.
#pragma once

#include <algorithm>
#include <span>
#include <string_view>

namespace wafer::host::internal {

struct CodePointRange {
  char32_t first;
  char32_t last;  // Inclusive.
};

// The Unicode version the tables were generated from, e.g. "14.0.0".
std::string_view UnicodeTablesVersion();
// \p{L}: General_Category Lu, Ll, Lt, Lm, Lo.
std::span<const CodePointRange> LetterRanges();
// \p{N}: General_Category Nd, Nl, No.
std::span<const CodePointRange> NumberRanges();
// \s: the White_Space property (U+0009..U+000D, U+0085, Zs, Zl, Zp), as Oniguruma and Rust's
// regex define \s for Unicode text.
std::span<const CodePointRange> WhiteSpaceRanges();

// Whether `cp` lies in one of `ranges` (sorted and disjoint), by binary search.
inline bool InRanges(std::span<const CodePointRange> ranges, char32_t cp) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), cp,
                             [](char32_t c, const CodePointRange& r) { return c < r.first; });
  return it != ranges.begin() && cp <= std::prev(it)->last;
}

}  // namespace wafer::host::internal

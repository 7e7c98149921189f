// Hand-written matchers for the two split regexes of byte-level BPE tokenizers (GPT-2's and
// Llama 3's), exact to the regex semantics; see PreTokenize in host/models/tokenizer.h.
#pragma once

#include <string_view>
#include <vector>

namespace wafer::host::internal {

// The regexes as a tokenizer.json spells them (after JSON unescaping).
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|)"
    R"(\s*[\r\n]+|\s+(?!\S)|\s+)";

// The consecutive matches of kGpt2Pattern / kLlama3Pattern over `text`, as views into it. Every
// character matches some alternative, so the pieces cover `text` exactly.
std::vector<std::string_view> SplitGpt2(std::string_view text);
std::vector<std::string_view> SplitLlama3(std::string_view text);

}  // namespace wafer::host::internal

// Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (GPT-2 / Llama 3 style).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/result.h"

namespace wafer::host {

// Splits text into pre-tokens, approximating the GPT-2 pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with byte classes instead of Unicode categories: ASCII letters and every byte >= 0x80 count as
// letters (so a UTF-8 character is never split), ASCII digits as digits, ASCII whitespace as
// space, the rest as other. A single ' ' before a letter/digit/other run joins that run; a
// whitespace run gives its last ' ' to a following word. Contractions are not split off.
// Concatenating the pieces gives back `text` exactly.
std::vector<std::string_view> PreTokenize(std::string_view text);

// The GPT-2 byte-to-unicode table: byte b is spelled by the UTF-8 string ByteToUnicode()[b].
const std::vector<std::string>& ByteToUnicode();

// Immutable after construction; thread-safe to use.
class Tokenizer {
 public:
  // Parses tokenizer.json text: model.type "BPE", model.vocab {token: id}, model.merges as
  // "a b" strings or ["a", "b"] pairs, optional added_tokens [{id, content}, ...]. `source`
  // names the file in `*detail` (may be null).
  //
  // Returns:
  //   INVALID_ARGUMENT - bad JSON, not BPE, a duplicate id, or a merge whose parts or result
  //                      are not in the vocabulary.
  static Result<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text,
                                                     std::string_view source, std::string* detail);
  // Reads and parses a file. Returns NOT_FOUND/UNAVAILABLE (file) or as FromJson.
  static Result<std::unique_ptr<Tokenizer>> Load(const std::string& path, std::string* detail);

  // Added tokens (e.g. "<|begin_of_text|>") found verbatim in `text` become their ids; the rest
  // is pre-tokenized (PreTokenize) and BPE-merged. Bytes with no token are skipped (a byte-level
  // vocabulary has all 256).
  std::vector<uint32_t> Encode(std::string_view text) const;

  // The bytes the ids spell (added tokens by their content). Unknown ids are skipped. The result
  // may end inside a UTF-8 sequence; see StreamDecoder for text output.
  std::string Decode(std::span<const uint32_t> ids) const;

  // One past the largest id.
  uint32_t vocab_size() const { return vocab_size_; }
  // -1 when `token` (a vocabulary string or added token content) is unknown.
  int64_t TokenId(std::string_view token) const;
  // The bytes of one token; empty for an unknown id.
  std::string TokenBytes(uint32_t id) const;

  // Turns a stream of ids into text, emitting only complete UTF-8 sequences: a character split
  // across tokens is held back until its last byte arrives. Invalid bytes become U+FFFD, so the
  // output is always valid UTF-8. Not thread-safe; one per sequence. Borrows the tokenizer,
  // which must outlive it.
  class StreamDecoder {
   public:
    explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
    // The text completed by `id` (possibly empty).
    std::string Push(uint32_t id);
    // Whatever is held back, as U+FFFD for an incomplete sequence; resets the decoder.
    std::string Flush();

   private:
    const Tokenizer& tokenizer_;
    std::string pending_;
  };

 private:
  Tokenizer() = default;
  void EncodeWord(std::string_view word, std::vector<uint32_t>& out) const;

  uint32_t vocab_size_ = 0;
  std::unordered_map<std::string, uint32_t> vocab_;          // Byte-level spelling -> id.
  std::vector<std::string> id_bytes_;                        // id -> raw bytes.
  std::unordered_map<std::string, uint32_t> merge_rank_;     // "a\0b" -> rank.
  std::vector<std::pair<std::string, uint32_t>> added_;      // Content, id; longest first.
};

// Consumes the longest prefix of `bytes` made of complete, valid UTF-8 sequences, appending it
// to `out`; invalid bytes become U+FFFD. Returns how many bytes were consumed (the rest is an
// incomplete sequence that may still complete).
size_t AppendCompleteUtf8(std::string_view bytes, std::string& out);

}  // namespace wafer::host

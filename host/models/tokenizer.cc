#include "host/models/tokenizer.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "host/models/safetensors_file.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;

enum class ByteClass : uint8_t { kLetter, kDigit, kSpace, kOther };

ByteClass Classify(char c) {
  const auto b = static_cast<unsigned char>(c);
  if (b >= 0x80 || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')) return ByteClass::kLetter;
  if (b >= '0' && b <= '9') return ByteClass::kDigit;
  if (b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v') {
    return ByteClass::kSpace;
  }
  return ByteClass::kOther;
}

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// The length of the UTF-8 sequence `lead` starts (0: not a lead byte), and whether `next` may be
// the byte at position `index` (>= 1) of it (rejects overlongs and surrogates like the standard).
size_t SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

bool ValidFollower(unsigned char lead, size_t index, unsigned char next) {
  if ((next & 0xc0) != 0x80) return false;
  if (index != 1) return true;
  if (lead == 0xe0) return next >= 0xa0;
  if (lead == 0xed) return next < 0xa0;
  if (lead == 0xf0) return next >= 0x90;
  if (lead == 0xf4) return next < 0x90;
  return true;
}

// The byte a GPT-2 byte-level character stands for, keyed by its UTF-8 spelling.
const std::unordered_map<std::string, uint8_t>& UnicodeToByte() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<std::string, uint8_t>();
    const auto& forward = ByteToUnicode();
    for (int b = 0; b < 256; ++b) (*t)[forward[b]] = static_cast<uint8_t>(b);
    return t;
  }();
  return *table;
}

// The raw bytes of a byte-level vocabulary string. Characters outside the byte table (a vocabulary
// that is not byte-level) are kept as their own UTF-8.
std::string VocabStringToBytes(std::string_view s) {
  const auto& table = UnicodeToByte();
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = SequenceLength(static_cast<unsigned char>(s[i]));
    if (len == 0 || i + len > s.size()) len = 1;
    const std::string ch(s.substr(i, len));
    auto it = table.find(ch);
    if (it != table.end()) out.push_back(static_cast<char>(it->second));
    else out += ch;
    i += len;
  }
  return out;
}

Status Fail(std::string* detail, std::string message) {
  if (detail != nullptr) *detail = std::move(message);
  return InvalidArgument();
}

std::string MergeKey(std::string_view a, std::string_view b) {
  std::string key(a);
  key.push_back('\0');
  key.append(b);
  return key;
}

}  // namespace

const std::vector<std::string>& ByteToUnicode() {
  static const auto* table = [] {
    auto* t = new std::vector<std::string>(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
      AppendUtf8(printable ? b : next++, (*t)[b]);
    }
    return t;
  }();
  return *table;
}

std::vector<std::string_view> PreTokenize(std::string_view text) {
  std::vector<std::string_view> pieces;
  const size_t n = text.size();
  auto run_end = [&](size_t from) {
    const ByteClass c = Classify(text[from]);
    size_t j = from;
    while (j < n && Classify(text[j]) == c) ++j;
    return j;
  };
  size_t i = 0;
  while (i < n) {
    if (Classify(text[i]) != ByteClass::kSpace) {
      const size_t j = run_end(i);
      pieces.push_back(text.substr(i, j - i));
      i = j;
      continue;
    }
    const size_t j = run_end(i);  // Whitespace [i, j).
    if (j < n && text[j - 1] == ' ') {
      if (j - 1 > i) pieces.push_back(text.substr(i, j - 1 - i));
      const size_t k = run_end(j);
      pieces.push_back(text.substr(j - 1, k - (j - 1)));
      i = k;
    } else {
      pieces.push_back(text.substr(i, j - i));
      i = j;
    }
  }
  return pieces;
}

size_t AppendCompleteUtf8(std::string_view bytes, std::string& out) {
  static constexpr char kReplacement[] = "\xef\xbf\xbd";
  size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    const size_t len = SequenceLength(lead);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    const size_t avail = std::min(len, bytes.size() - i);
    bool valid = true;
    for (size_t k = 1; k < avail && valid; ++k) {
      valid = ValidFollower(lead, k, static_cast<unsigned char>(bytes[i + k]));
    }
    if (!valid) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (avail < len) return i;  // Incomplete but may still complete.
    out.append(bytes.substr(i, len));
    i += len;
  }
  return i;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text,
                                                       std::string_view source,
                                                       std::string* detail) {
  const std::string where = std::string(source) + ": ";
  const Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Fail(detail, where + "not a JSON object");
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  try {
    auto model = j.find("model");
    if (model == j.end() || !model->is_object()) return Fail(detail, where + "no 'model' object");
    if (auto type = model->find("type"); type != model->end() &&
                                         (!type->is_string() || type->get<std::string>() != "BPE")) {
      return Fail(detail, where + "model.type " + type->dump() + " is not \"BPE\"");
    }
    auto vocab = model->find("vocab");
    if (vocab == model->end() || !vocab->is_object()) {
      return Fail(detail, where + "model.vocab must be an object");
    }
    uint64_t max_id = 0;
    for (const auto& [token, id] : vocab->items()) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() >= (1u << 24)) {
        return Fail(detail, where + "model.vocab['" + token + "'] is not an id below 2^24");
      }
      max_id = std::max<uint64_t>(max_id, id.get<uint64_t>() + 1);
    }
    std::vector<std::pair<std::string, uint32_t>> added;
    if (auto at = j.find("added_tokens"); at != j.end() && !at->is_null()) {
      if (!at->is_array()) return Fail(detail, where + "added_tokens must be an array");
      for (const Json& t : *at) {
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_unsigned() ||
            t["id"].get<uint64_t>() >= (1u << 24) || !t.contains("content") ||
            !t["content"].is_string() || t["content"].get<std::string>().empty()) {
          return Fail(detail, where + "added token " + t.dump() + " needs an id and content");
        }
        added.emplace_back(t["content"].get<std::string>(), t["id"].get<uint32_t>());
        max_id = std::max<uint64_t>(max_id, t["id"].get<uint64_t>() + 1);
      }
    }
    tok->vocab_size_ = static_cast<uint32_t>(max_id);
    tok->id_bytes_.resize(max_id);
    std::vector<bool> used(max_id, false);
    for (const auto& [token, id_json] : vocab->items()) {
      const auto id = id_json.get<uint32_t>();
      if (used[id]) return Fail(detail, where + "model.vocab gives id " + std::to_string(id) + " twice");
      used[id] = true;
      tok->vocab_[token] = id;
      tok->id_bytes_[id] = VocabStringToBytes(token);
    }
    for (auto& [content, id] : added) {
      tok->id_bytes_[id] = content;  // Added tokens decode to their content verbatim.
      tok->vocab_.emplace(content, id);
    }
    std::sort(added.begin(), added.end(), [](const auto& a, const auto& b) {
      return a.first.size() != b.first.size() ? a.first.size() > b.first.size() : a.second < b.second;
    });
    tok->added_ = std::move(added);

    auto merges = model->find("merges");
    if (merges != model->end() && !merges->is_null()) {
      if (!merges->is_array()) return Fail(detail, where + "model.merges must be an array");
      uint32_t rank = 0;
      for (const Json& m : *merges) {
        std::string a, b;
        if (m.is_string()) {
          const std::string s = m.get<std::string>();
          const size_t space = s.find(' ');
          if (space == std::string::npos || space == 0 || space + 1 >= s.size() ||
              s.find(' ', space + 1) != std::string::npos) {
            return Fail(detail, where + "merge " + m.dump() + " is not \"a b\"");
          }
          a = s.substr(0, space);
          b = s.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
          a = m[0].get<std::string>();
          b = m[1].get<std::string>();
        } else {
          return Fail(detail, where + "merge " + m.dump() + " is neither \"a b\" nor [a, b]");
        }
        if (!tok->vocab_.contains(a) || !tok->vocab_.contains(b) || !tok->vocab_.contains(a + b)) {
          return Fail(detail, where + "merge " + m.dump() + " uses or makes a token not in the vocab");
        }
        tok->merge_rank_.emplace(MergeKey(a, b), rank++);
      }
    }
  } catch (const std::exception& e) {
    return Fail(detail, where + "malformed: " + e.what());
  }
  return tok;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path, std::string* detail) {
  WAFER_ASSIGN_OR_RETURN(const std::string text, ReadFile(path, detail));
  return FromJson(text, path, detail);
}

void Tokenizer::EncodeWord(std::string_view word, std::vector<uint32_t>& out) const {
  const auto& spell = ByteToUnicode();
  std::vector<std::string> symbols;
  symbols.reserve(word.size());
  for (char c : word) symbols.push_back(spell[static_cast<unsigned char>(c)]);
  // GPT-2 BPE: repeatedly merge every occurrence of the lowest-ranked adjacent pair.
  while (symbols.size() > 1) {
    uint32_t best = std::numeric_limits<uint32_t>::max();
    std::string best_key;
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_rank_.find(MergeKey(symbols[i], symbols[i + 1]));
      if (it != merge_rank_.end() && it->second < best) {
        best = it->second;
        best_key = it->first;
      }
    }
    if (best == std::numeric_limits<uint32_t>::max()) break;
    std::vector<std::string> merged;
    merged.reserve(symbols.size());
    for (size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && MergeKey(symbols[i], symbols[i + 1]) == best_key) {
        merged.push_back(symbols[i] + symbols[i + 1]);
        ++i;
      } else {
        merged.push_back(std::move(symbols[i]));
      }
    }
    symbols = std::move(merged);
  }
  for (const std::string& s : symbols) {
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      continue;
    }
    // Not byte-level after all: fall back to single characters, skipping unknown ones.
    for (size_t i = 0; i < s.size();) {
      size_t len = SequenceLength(static_cast<unsigned char>(s[i]));
      if (len == 0 || i + len > s.size()) len = 1;
      auto ch = vocab_.find(s.substr(i, len));
      if (ch != vocab_.end()) out.push_back(ch->second);
      i += len;
    }
  }
}

std::vector<uint32_t> Tokenizer::Encode(std::string_view text) const {
  std::vector<uint32_t> ids;
  auto encode_plain = [&](std::string_view plain) {
    for (std::string_view word : PreTokenize(plain)) EncodeWord(word, ids);
  };
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, uint32_t>* hit = nullptr;
    for (const auto& a : added_) {
      if (text.compare(i, a.first.size(), a.first) == 0) {
        hit = &a;
        break;  // Longest first.
      }
    }
    if (hit == nullptr) {
      ++i;
      continue;
    }
    encode_plain(text.substr(start, i - start));
    ids.push_back(hit->second);
    i += hit->first.size();
    start = i;
  }
  encode_plain(text.substr(start));
  return ids;
}

std::string Tokenizer::Decode(std::span<const uint32_t> ids) const {
  std::string out;
  for (uint32_t id : ids) {
    if (id < id_bytes_.size()) out += id_bytes_[id];
  }
  return out;
}

int64_t Tokenizer::TokenId(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  return it == vocab_.end() ? int64_t{-1} : int64_t{it->second};
}

std::string Tokenizer::TokenBytes(uint32_t id) const {
  return id < id_bytes_.size() ? id_bytes_[id] : std::string();
}

std::string Tokenizer::StreamDecoder::Push(uint32_t id) {
  pending_ += tokenizer_.TokenBytes(id);
  std::string out;
  pending_.erase(0, AppendCompleteUtf8(pending_, out));
  return out;
}

std::string Tokenizer::StreamDecoder::Flush() {
  std::string out;
  const size_t used = AppendCompleteUtf8(pending_, out);
  if (used < pending_.size()) out += "\xef\xbf\xbd";
  pending_.clear();
  return out;
}

}  // namespace wafer::host

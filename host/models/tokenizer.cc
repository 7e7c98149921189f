#include "host/models/tokenizer.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "host/models/internal/pre_tokenizer.h"
#include "host/models/internal/utf8.h"
#include "host/models/safetensors_file.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;
using internal::Utf8SequenceLength;
using internal::Utf8ValidFollower;

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
    size_t len = Utf8SequenceLength(static_cast<unsigned char>(s[i]));
    if (len == 0 || i + len > s.size()) len = 1;
    const std::string ch(s.substr(i, len));
    auto it = table.find(ch);
    if (it != table.end()) out.push_back(static_cast<char>(it->second));
    else out += ch;
    i += len;
  }
  return out;
}

Error Fail(std::string message) {
  return Error{StatusCode::kInvalidArgument, std::move(message)};
}

std::string MergeKey(std::string_view a, std::string_view b) {
  std::string key(a);
  key.push_back('\0');
  key.append(b);
  return key;
}

// The "type" of a pre_tokenizer step; empty when it has none.
std::string TypeOf(const Json& step) {
  if (!step.is_object()) return "";
  auto type = step.find("type");
  return type != step.end() && type->is_string() ? type->get<std::string>() : "";
}

// The steps of a pre_tokenizer, Sequences flattened, in the order they run.
void FlattenPreTokenizer(const Json& pre, std::vector<const Json*>& steps) {
  auto inner = pre.is_object() ? pre.find("pretokenizers") : pre.end();
  if (TypeOf(pre) == "Sequence" && inner != pre.end() && inner->is_array()) {
    for (const Json& step : *inner) FlattenPreTokenizer(step, steps);
  } else {
    steps.push_back(&pre);
  }
}

// A step as the error message names it: its type and, for the two kinds Waferd knows, the
// fields that decide the split.
std::string DescribeStep(const Json& step) {
  const std::string type = TypeOf(step);
  if (type.empty()) return step.dump();
  if (type == "Split") {
    return "Split{pattern: " + step.value("pattern", Json()).dump() +
           ", behavior: " + step.value("behavior", Json()).dump() +
           ", invert: " + step.value("invert", Json(false)).dump() + "}";
  }
  if (type == "ByteLevel") {
    return "ByteLevel{add_prefix_space: " + step.value("add_prefix_space", Json()).dump() +
           ", use_regex: " + step.value("use_regex", Json(true)).dump() + "}";
  }
  return type;
}

// Whether `step` is ByteLevel{add_prefix_space: false} with use_regex (default true) as given.
bool IsByteLevel(const Json& step, bool use_regex) {
  if (TypeOf(step) != "ByteLevel" || step.value("add_prefix_space", Json()) != Json(false)) {
    return false;
  }
  return step.value("use_regex", Json(true)) == Json(use_regex);
}

// The pattern of a Split{pattern: {Regex: ...}, behavior: "Isolated", invert: false} step when
// the regex is one PreTokenize implements.
std::optional<PreTokenizer> KnownSplit(const Json& step) {
  if (TypeOf(step) != "Split" || step.value("behavior", Json()) != Json("Isolated") ||
      step.value("invert", Json(false)) != Json(false)) {
    return std::nullopt;
  }
  const Json pattern = step.value("pattern", Json());
  if (!pattern.is_object() || pattern.size() != 1 || !pattern.contains("Regex") ||
      !pattern["Regex"].is_string()) {
    return std::nullopt;
  }
  const std::string regex = pattern["Regex"].get<std::string>();
  if (regex == internal::kGpt2Pattern) return PreTokenizer::kGpt2;
  if (regex == internal::kLlama3Pattern) return PreTokenizer::kLlama3;
  return std::nullopt;
}

// Which split a tokenizer.json's pre_tokenizer declares (`pre` is null when it has none). Only
// the forms that PreTokenize reproduces exactly are accepted; anything else would tokenize
// differently from the model's training, so it is refused rather than approximated.
HostResult<PreTokenizer> ParsePreTokenizer(const Json* pre, const std::string& where) {
  static constexpr char kSupported[] =
      "; supported are ByteLevel{add_prefix_space: false, use_regex: true} (GPT-2 split) and "
      "Sequence[Split{pattern: {Regex: <the GPT-2 or Llama 3 pattern>}, behavior: \"Isolated\"}, "
      "ByteLevel{add_prefix_space: false, use_regex: false}]";
  if (pre == nullptr || pre->is_null()) {
    return Fail(where + "no pre_tokenizer (text would not be split)" + kSupported);
  }
  std::vector<const Json*> steps;
  FlattenPreTokenizer(*pre, steps);
  if (steps.size() == 1 && IsByteLevel(*steps[0], /*use_regex=*/true)) return PreTokenizer::kGpt2;
  if (steps.size() == 2 && IsByteLevel(*steps[1], /*use_regex=*/false)) {
    if (auto pattern = KnownSplit(*steps[0])) return *pattern;
  }
  std::string described;
  for (const Json* step : steps) described += (described.empty() ? "" : ", ") + DescribeStep(*step);
  if (steps.size() != 1) described = "Sequence[" + described + "]";
  return Fail(where + "pre_tokenizer " + described + " is not supported" + kSupported);
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

std::vector<std::string_view> PreTokenize(std::string_view text, PreTokenizer pattern) {
  switch (pattern) {
    case PreTokenizer::kGpt2:
      return internal::SplitGpt2(text);
    case PreTokenizer::kLlama3:
      return internal::SplitLlama3(text);
  }
  return {};  // Unreachable for a valid enumerator.
}

size_t AppendCompleteUtf8(std::string_view bytes, std::string& out) {
  static constexpr char kReplacement[] = "\xef\xbf\xbd";
  size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    const size_t len = Utf8SequenceLength(lead);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    const size_t avail = std::min(len, bytes.size() - i);
    bool valid = true;
    for (size_t k = 1; k < avail && valid; ++k) {
      valid = Utf8ValidFollower(lead, k, static_cast<unsigned char>(bytes[i + k]));
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

HostResult<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view json_text,
                                                           std::string_view source) {
  const std::string where = std::string(source) + ": ";
  const Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Fail(where + "not a JSON object");
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  try {
    auto model = j.find("model");
    if (model == j.end() || !model->is_object()) return Fail(where + "no 'model' object");
    if (auto type = model->find("type"); type != model->end() &&
                                         (!type->is_string() || type->get<std::string>() != "BPE")) {
      return Fail(where + "model.type " + type->dump() + " is not \"BPE\"");
    }
    auto vocab = model->find("vocab");
    if (vocab == model->end() || !vocab->is_object()) {
      return Fail(where + "model.vocab must be an object");
    }
    uint64_t max_id = 0;
    for (const auto& [token, id] : vocab->items()) {
      if (!id.is_number_unsigned() || id.get<uint64_t>() >= (1u << 24)) {
        return Fail(where + "model.vocab['" + token + "'] is not an id below 2^24");
      }
      max_id = std::max<uint64_t>(max_id, id.get<uint64_t>() + 1);
    }
    std::vector<std::pair<std::string, uint32_t>> added;
    if (auto at = j.find("added_tokens"); at != j.end() && !at->is_null()) {
      if (!at->is_array()) return Fail(where + "added_tokens must be an array");
      for (const Json& t : *at) {
        if (!t.is_object() || !t.contains("id") || !t["id"].is_number_unsigned() ||
            t["id"].get<uint64_t>() >= (1u << 24) || !t.contains("content") ||
            !t["content"].is_string() || t["content"].get<std::string>().empty()) {
          return Fail(where + "added token " + t.dump() + " needs an id and content");
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
      if (used[id]) return Fail(where + "model.vocab gives id " + std::to_string(id) + " twice");
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
      if (!merges->is_array()) return Fail(where + "model.merges must be an array");
      uint32_t rank = 0;
      for (const Json& m : *merges) {
        std::string a, b;
        if (m.is_string()) {
          const std::string s = m.get<std::string>();
          const size_t space = s.find(' ');
          if (space == std::string::npos || space == 0 || space + 1 >= s.size() ||
              s.find(' ', space + 1) != std::string::npos) {
            return Fail(where + "merge " + m.dump() + " is not \"a b\"");
          }
          a = s.substr(0, space);
          b = s.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
          a = m[0].get<std::string>();
          b = m[1].get<std::string>();
        } else {
          return Fail(where + "merge " + m.dump() + " is neither \"a b\" nor [a, b]");
        }
        if (!tok->vocab_.contains(a) || !tok->vocab_.contains(b) || !tok->vocab_.contains(a + b)) {
          return Fail(where + "merge " + m.dump() + " uses or makes a token not in the vocab");
        }
        tok->merge_rank_.emplace(MergeKey(a, b), rank++);
      }
    }
    auto pre = j.find("pre_tokenizer");
    WAFER_HOST_ASSIGN_OR_RETURN(tok->pre_tokenizer_,
                                ParsePreTokenizer(pre == j.end() ? nullptr : &*pre, where));
  } catch (const std::exception& e) {
    return Fail(where + "malformed: " + e.what());
  }
  return tok;
}

HostResult<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  WAFER_HOST_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  return FromJson(text, path);
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
      size_t len = Utf8SequenceLength(static_cast<unsigned char>(s[i]));
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
    for (std::string_view word : PreTokenize(plain, pre_tokenizer_)) EncodeWord(word, ids);
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

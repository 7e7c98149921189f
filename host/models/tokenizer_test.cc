#include "host/models/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "host/models/internal/unicode_tables.h"
#include "host/models/mkmodel.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;

using Strings = std::vector<std::string>;

Strings Pieces(std::string_view text, PreTokenizer pattern = PreTokenizer::kGpt2) {
  Strings out;
  for (std::string_view p : PreTokenize(text, pattern)) out.emplace_back(p);
  return out;
}
Strings Llama3(std::string_view text) { return Pieces(text, PreTokenizer::kLlama3); }

// Expected splits below follow from the regexes in tokenizer.h, matched leftmost-first with
// backtracking; they were also cross-checked against Python's `re` running the same patterns with
// \p{L}, \p{N} and \s spelled out as explicit classes from unicodedata.

TEST(PreTokenizeTest, SplitsLikeGpt2ForCommonText) {
  EXPECT_EQ(Pieces("Hello world, 42 times!"),
            (Strings{"Hello", " world", ",", " 42", " times", "!"}));
  EXPECT_EQ(Pieces("a  b\nc"), (Strings{"a", " ", " b", "\n", "c"}));
  // The whitespace run before "x" gives its last space to "x" (`\s+(?!\S)` backs off one).
  EXPECT_EQ(Pieces("Hello world's  test123456 ok\n\n  x"),
            (Strings{"Hello", " world", "'s", " ", " test", "123456", " ok", "\n\n ", " x"}));
  EXPECT_TRUE(Pieces("").empty());
}

TEST(PreTokenizeTest, Gpt2ContractionsAreLowercaseOnly) {
  EXPECT_EQ(Pieces("DON'T don't we're I'll"),
            (Strings{"DON", "'", "T", " don", "'t", " we", "'re", " I", "'ll"}));
  EXPECT_EQ(Pieces("'sure"), (Strings{"'s", "ure"}));  // The first alternative wins.
  EXPECT_EQ(Pieces("it's '' 's"), (Strings{"it", "'s", " ''", " '", "s"}));
  EXPECT_EQ(Pieces("'\xc5\xbf"), (Strings{"'", "\xc5\xbf"}));  // U+017F only folds under (?i).
}

TEST(PreTokenizeTest, Gpt2DigitsAndSpaces) {
  EXPECT_EQ(Pieces("1234567 x"), (Strings{"1234567", " x"}));  // No limit on a digit run.
  EXPECT_EQ(Pieces(" 12"), (Strings{" 12"}));
  EXPECT_EQ(Pieces("x   "), (Strings{"x", "   "}));  // At the end the whole run stays together.
  EXPECT_EQ(Pieces("a   b"), (Strings{"a", "  ", " b"}));
  // Only ' ' joins a word; a lone tab before a letter is matched by the last `\s+`.
  EXPECT_EQ(Pieces("a \tb"), (Strings{"a", " ", "\t", "b"}));
  EXPECT_EQ(Pieces("\tx"), (Strings{"\t", "x"}));
  EXPECT_EQ(Pieces("a\n\nb"), (Strings{"a", "\n", "\n", "b"}));
  EXPECT_EQ(Pieces("a\r\nb"), (Strings{"a", "\r", "\n", "b"}));
  EXPECT_EQ(Pieces("x  \n  y"), (Strings{"x", "  \n ", " y"}));
  EXPECT_EQ(Pieces("a.\n\nb"), (Strings{"a", ".", "\n", "\n", "b"}));
}

TEST(PreTokenizeTest, Llama3Contractions) {
  EXPECT_EQ(Llama3("DON'T"), (Strings{"DON", "'T"}));
  EXPECT_EQ(Llama3("DON'T don't we're I'll"),
            (Strings{"DON", "'T", " don", "'t", " we", "'re", " I", "'ll"}));
  EXPECT_EQ(Llama3("We'RE I'Ll 'sure"), (Strings{"We", "'RE", " I", "'Ll", " '", "sure"}));
  EXPECT_EQ(Llama3("'sure"), (Strings{"'s", "ure"}));
  EXPECT_EQ(Llama3("it's '' 's"), (Strings{"it", "'s", " ''", " '", "s"}));
  // U+017F LATIN SMALL LETTER LONG S case-folds to 's'.
  EXPECT_EQ(Llama3("'\xc5\xbf 'S"), (Strings{"'\xc5\xbf", " '", "S"}));
}

TEST(PreTokenizeTest, Llama3DigitsInGroupsOfThree) {
  EXPECT_EQ(Llama3("Hello world's  test123456 ok\n\n  x"),
            (Strings{"Hello", " world", "'s", " ", " test", "123", "456", " ok", "\n\n", " ", " x"}));
  EXPECT_EQ(Llama3("1234567 x"), (Strings{"123", "456", "7", " x"}));
  EXPECT_EQ(Llama3(" 12"), (Strings{" ", "12"}));  // Digits take no leading space.
}

TEST(PreTokenizeTest, Llama3SpacesNewlinesAndPunctuation) {
  EXPECT_EQ(Llama3("x   "), (Strings{"x", "   "}));
  EXPECT_EQ(Llama3("a   b"), (Strings{"a", "  ", " b"}));
  // Any one non-letter, non-digit character other than CR and LF may lead a word.
  EXPECT_EQ(Llama3("a \tb"), (Strings{"a", " ", "\tb"}));
  EXPECT_EQ(Llama3("\tx"), (Strings{"\tx"}));
  EXPECT_EQ(Llama3("(hello)"), (Strings{"(hello", ")"}));
  // `\s*[\r\n]+` ends at the run's last line break; punctuation keeps the line breaks after it.
  EXPECT_EQ(Llama3("a\n\nb"), (Strings{"a", "\n\n", "b"}));
  EXPECT_EQ(Llama3("a\r\nb"), (Strings{"a", "\r\n", "b"}));
  EXPECT_EQ(Llama3("x  \n  y"), (Strings{"x", "  \n", " ", " y"}));
  EXPECT_EQ(Llama3("a.\n\nb"), (Strings{"a", ".\n\n", "b"}));
  EXPECT_TRUE(Llama3("").empty());
}

TEST(PreTokenizeTest, UnicodeLettersNumbersAndSpaces) {
  for (PreTokenizer p : {PreTokenizer::kGpt2, PreTokenizer::kLlama3}) {
    EXPECT_EQ(Pieces("naïve café", p), (Strings{"naïve", " café"}));
    EXPECT_EQ(Pieces("日本語", p), (Strings{"日本語"}));
    EXPECT_EQ(Pieces("Привет, мир!", p), (Strings{"Привет", ",", " мир", "!"}));
    // Emoji and math symbols are "other"; U+00B2 SUPERSCRIPT TWO is a number (No).
    EXPECT_EQ(Pieces("I ❤ 🚀🔥! ∑x²", p), (Strings{"I", " ❤", " 🚀🔥!", " ∑", "x", "²"}));
    // U+3000 IDEOGRAPHIC SPACE is \s but only U+0020 may lead a word.
    EXPECT_EQ(Pieces("a\u3000 b", p), (Strings{"a", "\u3000", " b"}));
  }
  EXPECT_EQ(Pieces("∑x"), (Strings{"∑", "x"}));
  EXPECT_EQ(Llama3("∑x"), (Strings{"∑x"}));
  // U+00A0 NO-BREAK SPACE is \s; U+001C is not (although Python's isspace() says so).
  EXPECT_EQ(Pieces("a\u00a0b"), (Strings{"a", "\u00a0", "b"}));
  EXPECT_EQ(Llama3("a\u00a0b"), (Strings{"a", "\u00a0b"}));
  EXPECT_EQ(Pieces("a\x1c" "b"), (Strings{"a", "\x1c", "b"}));
  EXPECT_EQ(Llama3("a\x1c" "b"), (Strings{"a", "\x1c" "b"}));
  // Letters and numbers beyond Latin: Arabic-Indic three (Nd), Roman twelve (Nl), one half (No).
  EXPECT_EQ(Llama3("x٣Ⅻ½5"), (Strings{"x", "٣Ⅻ½", "5"}));
  EXPECT_EQ(Pieces("x٣Ⅻ½5"), (Strings{"x", "٣Ⅻ½5"}));
}

TEST(PreTokenizeTest, InvalidUtf8BytesAreOtherCharacters) {
  EXPECT_EQ(Pieces("a\xff" "b \x80\x80" "c"), (Strings{"a", "\xff", "b", " \x80\x80", "c"}));
  EXPECT_EQ(Llama3("a\xff" "b \x80\x80" "c"), (Strings{"a", "\xff" "b", " \x80\x80", "c"}));
  // A truncated sequence is one "other" character per byte, also at the very end.
  EXPECT_EQ(Pieces("caf\xc3"), (Strings{"caf", "\xc3"}));
  EXPECT_EQ(Llama3("caf\xc3"), (Strings{"caf", "\xc3"}));
  EXPECT_EQ(Llama3("\xe6\x97" "A"), (Strings{"\xe6\x97", "A"}));
  EXPECT_EQ(Llama3("\xff" "A"), (Strings{"\xff" "A"}));
  // Encoded surrogates and overlong forms are not letters either.
  EXPECT_EQ(Pieces("x\xed\xa0\x80\xc0\xaf"), (Strings{"x", "\xed\xa0\x80\xc0\xaf"}));
}

TEST(PreTokenizeTest, PiecesCoverArbitraryBytes) {
  std::mt19937 rng(7);
  const std::string alphabet[] = {"a", "Z", "7", " ", "\n", "\r", "\t", "'", "s", "T", ",",
                                  "é", "日", "²", "\u00a0", "🚀", "\xff", "\xe6\x97", "\xf0"};
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int length = static_cast<int>(rng() % 24);
    for (int i = 0; i < length; ++i) {
      text += rng() % 4 == 0 ? std::string(1, static_cast<char>(rng() % 256))
                             : alphabet[rng() % std::size(alphabet)];
    }
    for (PreTokenizer p : {PreTokenizer::kGpt2, PreTokenizer::kLlama3}) {
      std::string joined;
      for (std::string_view piece : PreTokenize(text, p)) {
        EXPECT_FALSE(piece.empty());
        joined.append(piece);
      }
      EXPECT_EQ(joined, text);
    }
  }
}

TEST(UnicodeTablesTest, RangesAreSortedAndClassifyKnownCodePoints) {
  using internal::InRanges;
  for (auto table : {internal::LetterRanges(), internal::NumberRanges(),
                     internal::WhiteSpaceRanges()}) {
    ASSERT_FALSE(table.empty());
    for (size_t i = 0; i < table.size(); ++i) {
      EXPECT_LE(table[i].first, table[i].last);
      if (i > 0) {
        EXPECT_GT(table[i].first, table[i - 1].last + 1);  // Disjoint and merged.
      }
    }
  }
  EXPECT_TRUE(InRanges(internal::LetterRanges(), U'é'));
  EXPECT_TRUE(InRanges(internal::LetterRanges(), U'日'));
  EXPECT_TRUE(InRanges(internal::LetterRanges(), U'ж'));
  EXPECT_FALSE(InRanges(internal::LetterRanges(), U'1'));
  EXPECT_FALSE(InRanges(internal::LetterRanges(), 0x0301));  // Combining acute accent (Mn).
  EXPECT_TRUE(InRanges(internal::NumberRanges(), U'٣'));
  EXPECT_TRUE(InRanges(internal::NumberRanges(), U'Ⅻ'));
  EXPECT_TRUE(InRanges(internal::NumberRanges(), U'½'));
  EXPECT_FALSE(InRanges(internal::NumberRanges(), U'x'));
  // White_Space has exactly 25 code points.
  size_t spaces = 0;
  for (auto r : internal::WhiteSpaceRanges()) spaces += r.last - r.first + 1;
  EXPECT_EQ(spaces, 25u);
  EXPECT_FALSE(InRanges(internal::WhiteSpaceRanges(), 0x1c));
  EXPECT_FALSE(InRanges(internal::WhiteSpaceRanges(), 0x180e));  // Not since Unicode 6.3.
  EXPECT_FALSE(InRanges(internal::WhiteSpaceRanges(), 0x200b));  // Zero width space (Cf).
  EXPECT_FALSE(internal::UnicodeTablesVersion().empty());
}

TEST(ByteToUnicodeTest, MatchesGpt2Table) {
  const auto& t = ByteToUnicode();
  EXPECT_EQ(t['A'], "A");
  EXPECT_EQ(t[' '], "\xc4\xa0");   // U+0120 'Ġ'
  EXPECT_EQ(t['\n'], "\xc4\x8a");  // U+010A 'Ċ'
  EXPECT_EQ(t[0], "\xc4\x80");     // U+0100
  EXPECT_EQ(t[0xad], "\xc5\x83");  // U+0143, the last remapped byte
  EXPECT_EQ(std::set<std::string>(t.begin(), t.end()).size(), 256u);
}

// The pre_tokenizer of GPT-2's tokenizer.json (and of wafer-mkmodel's).
const Json kGpt2PreTokenizer = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                {"trim_offsets", true}, {"use_regex", true}};

// The pre_tokenizer of Llama 3's tokenizer.json, spelled as in the file; `regex` replaces the
// pattern (raw JSON string contents, backslashes escaped) when given.
Json Llama3PreTokenizer(std::string regex = "") {
  if (regex.empty()) {
    regex = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| )"
            R"(?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+)";
  }
  return Json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": ")" + regex + R"("}, "behavior": "Isolated",
       "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})");
}

// A tokenizer with all 256 byte tokens (id = byte) and one merge, two newlines "Ċ Ċ" -> 256.
std::string ByteTokenizer(const Json& pre_tokenizer) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteToUnicode()[b]] = b;
  const std::string newline = ByteToUnicode()['\n'];
  vocab[newline + newline] = 256;
  Json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {newline + " " + newline}}}}};
  if (!pre_tokenizer.is_null()) j["pre_tokenizer"] = pre_tokenizer;
  return j.dump();
}

TEST(TokenizerTest, UsesThePreTokenizerTheFileDeclares) {
  auto gpt2 = Tokenizer::FromJson(ByteTokenizer(kGpt2PreTokenizer), "gpt2.json");
  ASSERT_TRUE(gpt2.ok()) << gpt2.error().ToString();
  EXPECT_EQ((*gpt2)->pre_tokenizer(), PreTokenizer::kGpt2);
  // GPT-2 splits "\n\n" before a word into two pieces, so the newline merge cannot apply...
  EXPECT_EQ((*gpt2)->Encode("a\n\nb"), (std::vector<uint32_t>{'a', '\n', '\n', 'b'}));
  EXPECT_EQ((*gpt2)->Encode("1234"), (std::vector<uint32_t>{'1', '2', '3', '4'}));

  auto llama = Tokenizer::FromJson(ByteTokenizer(Llama3PreTokenizer()), "llama.json");
  ASSERT_TRUE(llama.ok()) << llama.error().ToString();
  EXPECT_EQ((*llama)->pre_tokenizer(), PreTokenizer::kLlama3);
  // ...while Llama 3 keeps it whole.
  EXPECT_EQ((*llama)->Encode("a\n\nb"), (std::vector<uint32_t>{'a', 256, 'b'}));

  // The GPT-2 regex as an explicit Split, and a Sequence around the lone ByteLevel, are GPT-2 too.
  Json split_gpt2 = Llama3PreTokenizer(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+)");
  const Json wrapped = {{"type", "Sequence"}, {"pretokenizers", Json::array({kGpt2PreTokenizer})}};
  for (const Json& pre : {split_gpt2, wrapped}) {
    auto tok = Tokenizer::FromJson(ByteTokenizer(pre), "gpt2.json");
    ASSERT_TRUE(tok.ok()) << tok.error().ToString();
    EXPECT_EQ((*tok)->pre_tokenizer(), PreTokenizer::kGpt2) << pre.dump();
  }
}

TEST(TokenizerTest, RefusesPreTokenizersItCannotReproduce) {
  Json apply_regex_twice = Llama3PreTokenizer();
  apply_regex_twice["pretokenizers"][1]["use_regex"] = true;
  Json removed = Llama3PreTokenizer();
  removed["pretokenizers"][0]["behavior"] = "Removed";
  Json string_pattern = Llama3PreTokenizer();
  string_pattern["pretokenizers"][0]["pattern"] = {{"String", " "}};
  Json prefix_space = kGpt2PreTokenizer;
  prefix_space["add_prefix_space"] = true;
  Json no_regex = kGpt2PreTokenizer;
  no_regex["use_regex"] = false;
  // Qwen 2's pattern: like Llama 3's but single digits.
  const Json qwen2 = Llama3PreTokenizer(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+)"
      R"([\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+)");
  const std::vector<std::pair<Json, std::vector<std::string>>> cases = {
      {Json(), {"no pre_tokenizer"}},
      {{{"type", "Metaspace"}, {"replacement", "\u2581"}}, {"pre_tokenizer Metaspace is not"}},
      {{{"type", "Whitespace"}}, {"pre_tokenizer Whitespace is not"}},
      {qwen2, {"pre_tokenizer Sequence[Split{pattern: {\"Regex\":", R"(\\p{N}| ?[^)"}},
      {string_pattern, {R"(Split{pattern: {"String":" "})"}},
      {removed, {R"(behavior: "Removed")"}},
      {apply_regex_twice, {"Sequence[Split", "use_regex: true"}},
      {prefix_space, {"pre_tokenizer ByteLevel{add_prefix_space: true, use_regex: true}"}},
      {no_regex, {"pre_tokenizer ByteLevel{add_prefix_space: false, use_regex: false}"}},
  };
  for (const auto& [pre, mentions] : cases) {
    auto tok = Tokenizer::FromJson(ByteTokenizer(pre), "bad.json");
    EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument) << pre.dump();
    const std::string detail = tok.ok() ? std::string() : tok.error().message;
    EXPECT_NE(detail.find("bad.json"), std::string::npos) << detail;
    EXPECT_NE(detail.find("supported are ByteLevel"), std::string::npos) << detail;
    for (const std::string& mention : mentions) {
      EXPECT_NE(detail.find(mention), std::string::npos) << mention << " not in " << detail;
    }
  }
}

// A hand-built tokenizer: bytes for 'a', 'b', ' ', plus merges "a b" -> "ab", "Ġ ab" -> "Ġab".
std::string HandTokenizer(bool pair_merges) {
  Json vocab = {{"a", 0}, {"b", 1}, {"\xc4\xa0", 2}, {"ab", 3}, {"\xc4\xa0" "ab", 4}};
  Json merges = pair_merges ? Json::array({Json::array({"a", "b"}), Json::array({"\xc4\xa0", "ab"})})
                            : Json{"a b", "\xc4\xa0 ab"};
  Json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
            {"added_tokens", {{{"id", 5}, {"content", "<s>"}}}},
            {"pre_tokenizer", kGpt2PreTokenizer}};
  return j.dump();
}

TEST(TokenizerTest, AppliesMergesInRankOrderAndAddedTokens) {
  for (bool pairs : {false, true}) {
    auto tok = Tokenizer::FromJson(HandTokenizer(pairs), "tok.json");
    ASSERT_TRUE(tok.ok()) << tok.error().ToString();
    EXPECT_EQ((*tok)->vocab_size(), 6u);
    EXPECT_EQ((*tok)->Encode("ab ab<s>ba"), (std::vector<uint32_t>{3, 4, 5, 1, 0}));
    const std::vector<uint32_t> ids = {3, 4, 5, 1, 0};
    EXPECT_EQ((*tok)->Decode(ids), "ab ab<s>ba");
    EXPECT_EQ((*tok)->TokenId("<s>"), 5);
    EXPECT_EQ((*tok)->TokenId("zz"), -1);
  }
}

TEST(TokenizerTest, RefusesBadJsonWithDetail) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[]", "not a JSON object"},
      {R"({"model":{"type":"WordPiece","vocab":{}}})", "is not \"BPE\""},
      {R"({"model":{"type":"BPE","vocab":{"a":0,"b":0}}})", "id 0 twice"},
      {R"({"model":{"type":"BPE","vocab":{"a":0},"merges":["a a"]}})", "not in the vocab"},
      {R"({"model":{"type":"BPE","vocab":{"a":0},"merges":["aa"]}})", "is not \"a b\""},
      {R"({"model":{"type":"BPE","vocab":{"a":-1}}})", "not an id"},
  };
  for (const auto& [json, mention] : cases) {
    auto tok = Tokenizer::FromJson(json, "bad.json");
    EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument) << json;
    const std::string detail = tok.ok() ? std::string() : tok.error().message;
    EXPECT_NE(detail.find(mention), std::string::npos) << detail;
    EXPECT_NE(detail.find("bad.json"), std::string::npos) << detail;
  }
}

class TrainedTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = Tokenizer::FromJson(TrainTokenizerJson(256), "trained");
    ASSERT_TRUE(tok.ok()) << tok.error().ToString();
    tok_ = std::move(tok).value();
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(TrainedTokenizerTest, MkmodelDeclaresTheGpt2Split) {
  EXPECT_EQ(tok_->pre_tokenizer(), PreTokenizer::kGpt2);
  const Json j = Json::parse(TrainTokenizerJson(16));
  EXPECT_EQ(j["pre_tokenizer"], kGpt2PreTokenizer);
}

TEST_F(TrainedTokenizerTest, RoundTripsAsciiAndUtf8) {
  const std::vector<std::string> texts = {
      "The quick brown fox jumps over the lazy dog.",
      "int main() { return 0; }\n\tx  =  y;   ",
      "Ünïcödé: naïve café, 日本語のテキスト, emoji 🚀🔥 and math ∑x²",
      std::string("bytes \x01\x02\x7f and a NUL \0 inside", 28),
      "<|begin_of_text|>Hello<|end_of_text|>",
      "",
  };
  for (const std::string& s : texts) {
    const auto ids = tok_->Encode(s);
    EXPECT_EQ(tok_->Decode(ids), s);
    for (uint32_t id : ids) EXPECT_LT(id, tok_->vocab_size());
  }
  // Merges compress familiar text well below one token per byte.
  const std::string familiar = "the model learns from the text that the host reads";
  EXPECT_LT(tok_->Encode(familiar).size(), familiar.size() / 2);
  const auto special = tok_->Encode("<|begin_of_text|>Hi");
  ASSERT_FALSE(special.empty());
  EXPECT_EQ(special[0], tok_->TokenId("<|begin_of_text|>"));
}

TEST_F(TrainedTokenizerTest, StreamDecoderEmitsOnlyCompleteUtf8) {
  const std::string text = "naïve 日本 🚀!";
  // Feed byte tokens one at a time so that characters arrive split.
  Tokenizer::StreamDecoder dec(*tok_);
  std::string out;
  for (unsigned char c : text) {
    const std::string piece = dec.Push(static_cast<uint32_t>(tok_->TokenId(ByteToUnicode()[c])));
    std::string check;
    EXPECT_EQ(AppendCompleteUtf8(piece, check), piece.size());
    EXPECT_EQ(check, piece);  // Every emitted piece is complete, valid UTF-8.
    out += piece;
    if (c == 0xf0) {
      EXPECT_TRUE(piece.empty());  // The rocket's first byte is held back.
    }
  }
  out += dec.Flush();
  EXPECT_EQ(out, text);
  // The same through real tokens.
  out.clear();
  for (uint32_t id : tok_->Encode(text)) out += dec.Push(id);
  EXPECT_EQ(out + dec.Flush(), text);
}

TEST_F(TrainedTokenizerTest, StreamDecoderReplacesInvalidBytes) {
  Tokenizer::StreamDecoder dec(*tok_);
  auto byte = [&](unsigned char c) {
    return static_cast<uint32_t>(tok_->TokenId(ByteToUnicode()[c]));
  };
  EXPECT_EQ(dec.Push(byte(0xff)), "\xef\xbf\xbd");         // Never valid.
  EXPECT_EQ(dec.Push(byte(0xe6)), "");                     // Lead of a 3-byte sequence...
  EXPECT_EQ(dec.Push(byte('A')), "\xef\xbf\xbd" "A");      // ...broken by ASCII.
  EXPECT_EQ(dec.Push(byte(0xe6)), "");
  EXPECT_EQ(dec.Flush(), "\xef\xbf\xbd");                  // Incomplete at the end.
  EXPECT_EQ(dec.Push(byte(0xed)), "");
  EXPECT_EQ(dec.Push(byte(0xa0)), "\xef\xbf\xbd\xef\xbf\xbd");  // A surrogate is refused.
}

}  // namespace
}  // namespace wafer::host

#include "host/models/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "host/models/mkmodel.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;

std::vector<std::string> Pieces(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view p : PreTokenize(text)) out.emplace_back(p);
  return out;
}

TEST(PreTokenizeTest, SplitsLikeGpt2ForCommonText) {
  EXPECT_EQ(Pieces("Hello world, 42 times!"),
            (std::vector<std::string>{"Hello", " world", ",", " 42", " times", "!"}));
  EXPECT_EQ(Pieces("a  b\nc"), (std::vector<std::string>{"a", " ", " b", "\n", "c"}));
  EXPECT_EQ(Pieces("x   "), (std::vector<std::string>{"x", "   "}));
  EXPECT_EQ(Pieces("héllo wörld"), (std::vector<std::string>{"héllo", " wörld"}));
  EXPECT_TRUE(Pieces("").empty());
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

// A hand-built tokenizer: bytes for 'a', 'b', ' ', plus merges "a b" -> "ab", "Ġ ab" -> "Ġab".
std::string HandTokenizer(bool pair_merges) {
  Json vocab = {{"a", 0}, {"b", 1}, {"\xc4\xa0", 2}, {"ab", 3}, {"\xc4\xa0" "ab", 4}};
  Json merges = pair_merges ? Json::array({Json::array({"a", "b"}), Json::array({"\xc4\xa0", "ab"})})
                            : Json{"a b", "\xc4\xa0 ab"};
  Json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
            {"added_tokens", {{{"id", 5}, {"content", "<s>"}}}}};
  return j.dump();
}

TEST(TokenizerTest, AppliesMergesInRankOrderAndAddedTokens) {
  for (bool pairs : {false, true}) {
    std::string detail;
    auto tok = Tokenizer::FromJson(HandTokenizer(pairs), "tok.json", &detail);
    ASSERT_TRUE(tok.ok()) << detail;
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
    std::string detail;
    auto tok = Tokenizer::FromJson(json, "bad.json", &detail);
    EXPECT_EQ(tok.status().code(), StatusCode::kInvalidArgument) << json;
    EXPECT_NE(detail.find(mention), std::string::npos) << detail;
    EXPECT_NE(detail.find("bad.json"), std::string::npos) << detail;
  }
}

class TrainedTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string detail;
    auto tok = Tokenizer::FromJson(TrainTokenizerJson(256), "trained", &detail);
    ASSERT_TRUE(tok.ok()) << detail;
    tok_ = std::move(tok).value();
  }
  std::unique_ptr<Tokenizer> tok_;
};

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

#include "common/log/log.h"

#include <cstdio>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/log/internal/line_format.h"

namespace wafer::log {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

// Points the logger at a temporary file for one test and back at stderr afterwards.
class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = std::tmpfile();
    ASSERT_NE(file_, nullptr);
  }
  void TearDown() override {
    Configure(Options{});
    std::fclose(file_);
  }

  void Use(Level level, Format format) { Configure(Options{level, format, file_}); }

  // Everything written so far.
  std::string Written() {
    std::fflush(file_);
    std::rewind(file_);
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) text.append(buf, n);
    std::fseek(file_, 0, SEEK_END);
    return text;
  }

  std::vector<std::string> Lines() {
    std::vector<std::string> lines;
    std::istringstream in(Written());
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  std::FILE* file_ = nullptr;
};

TEST_F(LogTest, LinesBelowTheLevelAreNotWritten) {
  Use(Level::kWarn, Format::kText);
  Debug("store", "debug {}", 1);
  Info("store", "info {}", 2);
  Warn("store", "warn {}", 3);
  Error("store", "error {}", 4);
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u) << Written();
  EXPECT_THAT(lines[0], HasSubstr("WARN  [store] warn 3"));
  EXPECT_THAT(lines[1], HasSubstr("ERROR [store] error 4"));
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarn));
}

TEST_F(LogTest, TraceWritesEveryLevelAndOffWritesNone) {
  Use(Level::kTrace, Format::kText);
  Trace("sim", "t");
  Debug("sim", "d");
  Info("sim", "i");
  Warn("sim", "w");
  Error("sim", "e");
  EXPECT_EQ(Lines().size(), 5u) << Written();
  Use(Level::kOff, Format::kText);
  Error("sim", "not written");
  EXPECT_EQ(Lines().size(), 5u) << Written();
  EXPECT_FALSE(Enabled(Level::kError));
}

// A type whose formatting is counted: a disabled level must not pay for it.
struct Counted {
  int* formatted;
};

}  // namespace
}  // namespace wafer::log

template <>
struct fmt::formatter<wafer::log::Counted> : fmt::formatter<int> {
  auto format(const wafer::log::Counted& c, fmt::format_context& ctx) const {
    return fmt::formatter<int>::format(++*c.formatted, ctx);
  }
};

namespace wafer::log {
namespace {

TEST_F(LogTest, ArgumentsOfADisabledLevelAreNotFormatted) {
  Use(Level::kInfo, Format::kText);
  int formatted = 0;
  Debug("store", "{}", Counted{&formatted});
  EXPECT_EQ(formatted, 0);
  Info("store", "{}", Counted{&formatted});
  EXPECT_EQ(formatted, 1);
  EXPECT_THAT(Written(), HasSubstr("[store] 1\n"));
}

TEST_F(LogTest, TextLinesCarryTimestampLevelAndComponent) {
  Use(Level::kInfo, Format::kText);
  Info(BoardComponent(2), "drained: {}", "operator");
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                                     "\\.[0-9]{3}Z INFO  \\[board\\[2\\]\\] drained: operator"));
}

TEST_F(LogTest, AMessageWithANewlineStaysOneTextLine) {
  Use(Level::kInfo, Format::kText);
  Warn("frontend", "model \"a\nb\" \x01 done\\");
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 1u) << Written();
  EXPECT_THAT(lines[0], HasSubstr("[frontend] model \"a\\nb\" \\x01 done\\"));
}

TEST_F(LogTest, JsonLinesParseAndCarryEveryField) {
  Use(Level::kDebug, Format::kJson);
  Debug("scheduler", "step {} of {}", 3, "tiny");
  Error(BoardComponent(0), "lost");
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u) << Written();
  const auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["level"], "debug");
  EXPECT_EQ(first["component"], "scheduler");
  EXPECT_EQ(first["msg"], "step 3 of tiny");
  EXPECT_THAT(first["ts"].get<std::string>(),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z"));
  const auto second = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(second["level"], "error");
  EXPECT_EQ(second["component"], "board[0]");
  EXPECT_EQ(second["msg"], "lost");
}

TEST_F(LogTest, JsonEscapesQuotesBackslashesControlsAndNonAscii) {
  Use(Level::kInfo, Format::kJson);
  // Well-formed UTF-8 (2, 3 and 4 bytes) comes back as itself.
  const std::string text = "say \"hi\" \\ path\\to\n\r\t\b\f\x01\x1f\x7f end caf\xc3\xa9 \xe2\x82\xac "
                           "\xf0\x9f\x98\x80";
  Info("store", "{}", text);
  // Bytes that are not UTF-8 each become U+FFFD: a lone continuation byte, 0xff, a truncated
  // sequence, an overlong encoding and an encoded surrogate.
  Info("store", "{}", std::string("a\x80 b\xff c\xe2\x82 d\xc0\xaf e\xed\xa0\x80 f"));
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), 2u) << Written();
  for (const std::string& line : lines) {
    for (char c : line) EXPECT_LT(static_cast<unsigned char>(c), 0x80) << line;  // ASCII only.
  }
  EXPECT_EQ(nlohmann::json::parse(lines[0])["msg"], text);
  const std::string r = "\xef\xbf\xbd";  // U+FFFD
  EXPECT_EQ(nlohmann::json::parse(lines[1])["msg"],
            "a" + r + " b" + r + " c" + r + r + " d" + r + r + " e" + r + r + r + " f");
}

TEST_F(LogTest, LinesOfManyThreadsNeverInterleave) {
  Use(Level::kInfo, Format::kJson);
  constexpr int kThreads = 8, kLines = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) {
        Info(BoardComponent(t), "line {} of thread {}: {}", i, t, std::string(100, 'x'));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const auto lines = Lines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  std::vector<int> per_thread(kThreads);
  for (const std::string& line : lines) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    const std::string component = j["component"];
    ++per_thread[std::stoi(component.substr(6))];
  }
  for (int count : per_thread) EXPECT_EQ(count, kLines);
}

TEST(LogNamesTest, LevelsAndFormatsParseByName) {
  for (Level level : {Level::kTrace, Level::kDebug, Level::kInfo, Level::kWarn, Level::kError,
                      Level::kOff}) {
    auto parsed = ParseLevel(LevelName(level));
    ASSERT_TRUE(parsed.ok()) << LevelName(level);
    EXPECT_EQ(*parsed, level);
  }
  for (Format format : {Format::kText, Format::kJson}) {
    auto parsed = ParseFormat(FormatName(format));
    ASSERT_TRUE(parsed.ok()) << FormatName(format);
    EXPECT_EQ(*parsed, format);
  }
}

TEST(LogNamesTest, AnUnknownNameIsAnInvalidArgumentListingTheAcceptedOnes) {
  auto level = ParseLevel("verbose");
  ASSERT_FALSE(level.ok());
  EXPECT_EQ(level.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(level.error().message,
            "'verbose' is not a log level (trace, debug, info, warn, error or off)");
  EXPECT_FALSE(ParseLevel("INFO").ok());  // Names are lower case, as --help spells them.
  auto format = ParseFormat("xml");
  ASSERT_FALSE(format.ok());
  EXPECT_EQ(format.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(format.error().message, "'xml' is not a log format (text or json)");
}

TEST(LineFormatTest, TimestampsAreUtcWithMilliseconds) {
  EXPECT_EQ(internal::Timestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(internal::Timestamp(1796636923123), "2026-12-07T09:48:43.123Z");
  EXPECT_EQ(internal::Timestamp(1796636923007), "2026-12-07T09:48:43.007Z");
}

TEST(LineFormatTest, LinesAreByteForByte) {
  EXPECT_EQ(internal::TextLine(0, Level::kWarn, "store", "a\tb"),
            "1970-01-01T00:00:00.000Z WARN  [store] a\\tb\n");
  EXPECT_EQ(internal::JsonLine(0, Level::kWarn, "store", "a\tb\"\xc3\xa9"),
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"warn\",\"component\":\"store\","
            "\"msg\":\"a\\tb\\\"\\u00e9\"}\n");
  EXPECT_EQ(internal::JsonEscape("\xf0\x9f\x98\x80"), "\\ud83d\\ude00");
  EXPECT_THAT(internal::JsonEscape("\x7f"), Not(HasSubstr("\x7f")));
}

}  // namespace
}  // namespace wafer::log

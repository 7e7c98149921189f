// The parts of `waferctl firmware` that need no daemon: signature files and the progress bar.
#include "host/ctl/firmware_command.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

TEST(FirmwareCommandTest, SignatureFilesAreRawOrHex) {
  const std::string raw(64, '\x5a');
  ASSERT_TRUE(ParseSignatureFile(raw).has_value());
  EXPECT_EQ(ParseSignatureFile(raw)->at(0), 0x5a);
  std::string hex;
  for (int i = 0; i < 64; ++i) hex += "a1";
  std::optional<std::vector<uint8_t>> parsed = ParseSignatureFile(hex + "\n");
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->size(), 64u);
  EXPECT_EQ(parsed->at(63), 0xa1);
  EXPECT_FALSE(ParseSignatureFile("").has_value());
  EXPECT_FALSE(ParseSignatureFile(hex.substr(2)).has_value());      // 63 bytes.
  EXPECT_FALSE(ParseSignatureFile(hex.substr(2) + "zz").has_value());  // Not hex.
  EXPECT_FALSE(ParseSignatureFile(std::string(65, 'x')).has_value());
}

TEST(FirmwareCommandTest, ProgressBar) {
  EXPECT_EQ(ProgressBar(0, 100, 10), "[>         ]   0.0%");
  EXPECT_EQ(ProgressBar(50, 100, 10), "[=====>    ]  50.0%");
  EXPECT_EQ(ProgressBar(100, 100, 10), "[==========] 100.0%");
  EXPECT_EQ(ProgressBar(0, 0, 4), "[====] 100.0%");
}

}  // namespace
}  // namespace wafer::host

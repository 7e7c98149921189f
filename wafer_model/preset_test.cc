#include "wafer_model/preset.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace wafer::wafer_model {
namespace {

std::string ReadMini() {
  std::ifstream in(std::string(WAFER_PRESET_DIR_FOR_TEST) + "/mini.yaml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The message of a failed result, or "" for a value.
std::string Why(const HostResult<Preset>& p) { return p.ok() ? "" : p.error().message; }

TEST(PresetTest, ShippedPresetsLoad) {
  for (const char* name : {"mini", "wse2", "wse3"}) {
    HostResult<Preset> p = LoadPreset(name, WAFER_PRESET_DIR_FOR_TEST);
    ASSERT_TRUE(p.ok()) << name << ": " << Why(p);
    EXPECT_EQ(p->name, name);
    EXPECT_EQ(p->sram_per_pe_bytes, 48u * 1024);
    EXPECT_DOUBLE_EQ(p->round_trip_us, 200);
  }
  HostResult<Preset> wse3 = LoadPreset("wse3", WAFER_PRESET_DIR_FOR_TEST);
  ASSERT_TRUE(wse3.ok());
  EXPECT_EQ(wse3->usable_pes(), 893064u);
  EXPECT_EQ(wse3->simd_width, 8u);
  EXPECT_EQ(wse3->regions(), 84u);
  HostResult<Preset> wse2 = LoadPreset("wse2", WAFER_PRESET_DIR_FOR_TEST);
  ASSERT_TRUE(wse2.ok());
  EXPECT_EQ(wse2->usable_pes(), 753972u);
  EXPECT_EQ(wse2->simd_width, 4u);
}

TEST(PresetTest, MissingFileIsNotFound) {
  HostResult<Preset> p = LoadPreset("no-such-preset", WAFER_PRESET_DIR_FOR_TEST);
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_NE(Why(p).find("no-such-preset"), std::string::npos);
}

void ExpectError(const std::string& text, const std::string& names) {
  HostResult<Preset> p = ParsePreset(text);
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(Why(p).find(names), std::string::npos) << Why(p);
}

TEST(PresetTest, BadPresetsNameTheKey) {
  const std::string mini = ReadMini();
  ASSERT_FALSE(mini.empty());
  HostResult<Preset> parsed = ParsePreset(mini);
  ASSERT_TRUE(parsed.ok()) << Why(parsed);

  std::string unknown = mini;
  unknown.replace(unknown.find("  simd_width"), 12, "  simd_widht");
  ExpectError(unknown, "wafer.simd_widht");
  ExpectError(unknown, "line");

  std::string missing = mini;
  missing.replace(missing.find("  router_cycles: 3"), 18, "");
  ExpectError(missing, "fabric.router_cycles");

  std::string wrong_type = mini;
  wrong_type.replace(wrong_type.find("physical_cols: 132"), 18, "physical_cols: wide");
  ExpectError(wrong_type, "wafer.physical_cols");

  std::string impossible = mini;
  impossible.replace(impossible.find("idle_w: 75"), 10, "idle_w: 900");
  ExpectError(impossible, "power.idle_w");

  ExpectError("name: [unclosed", "YAML");
  ExpectError("bogus: 1\n", "bogus");
}

TEST(PresetTest, InterWaferLinkIsTheHundredGbePortsThroughOneSwitch) {
  for (const char* name : {"mini", "wse2", "wse3"}) {
    HostResult<Preset> p = LoadPreset(name, WAFER_PRESET_DIR_FOR_TEST);
    ASSERT_TRUE(p.ok()) << name << ": " << Why(p);
    // A few microseconds per hop (NICs + one switch), at the host I/O's 12 x 100 GbE.
    EXPECT_DOUBLE_EQ(p->interwafer_hop_latency_us, 3) << name;
    EXPECT_DOUBLE_EQ(p->interwafer_bytes_per_s, 150e9) << name;
    EXPECT_DOUBLE_EQ(p->interwafer_bytes_per_s, p->io_bytes_per_s) << name;
  }
}

TEST(PresetTest, InterWaferKeysAreRequiredAndChecked) {
  const std::string mini = ReadMini();
  ASSERT_FALSE(mini.empty());
  const std::string latency = "  hop_latency_us: 3\n";
  const std::string bandwidth = "  bytes_per_s: 150.0e9\n";
  ASSERT_NE(mini.find(latency), std::string::npos);
  ASSERT_NE(mini.find(bandwidth), std::string::npos);

  std::string text = mini;
  text.erase(text.find(latency), latency.size());
  ExpectError(text, "missing key 'interwafer.hop_latency_us'");
  text = mini;
  text.erase(text.find(bandwidth), bandwidth.size());
  ExpectError(text, "missing key 'interwafer.bytes_per_s'");
  text = mini.substr(0, mini.find("interwafer:"));  // The whole section.
  ExpectError(text, "missing key 'interwafer.");

  text = mini;
  text.replace(text.find(latency), latency.size(), "  hop_latency_us: -1\n");
  ExpectError(text, "interwafer.hop_latency_us");
  text = mini;
  text.replace(text.find(bandwidth), bandwidth.size(), "  bytes_per_s: 0\n");
  ExpectError(text, "interwafer.bytes_per_s");
  text = mini;
  text.replace(text.find(bandwidth), bandwidth.size(), "  bytes_per_s: fast\n");
  ExpectError(text, "wrong type for 'interwafer.bytes_per_s'");
  text = mini;
  text.replace(text.find(bandwidth), bandwidth.size(), bandwidth + "  hops: 2\n");
  ExpectError(text, "unknown key 'interwafer.hops'");
}

}  // namespace
}  // namespace wafer::wafer_model

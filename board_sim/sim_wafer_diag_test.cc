// SimWafer's built-in self-tests driven directly through hal::Wafer: latent faults stay silent
// until a test finds them, the tests cover what they say, RetirePe and RemapPe leave a healthy
// rectangle, and the known-answer kernel sums exactly. Counts only, never timings.
#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <sstream>
#include <vector>

#include "board_sim/sim_wafer.h"
#include "common/clock.h"

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;

// mini without manufacturing defects: a 128 x 128 usable rectangle, 4 spares per row, 2 x 2
// die regions of 64 x 64 PEs.
wafer_model::Preset MiniNoDefects() {
  std::ifstream in(std::string(WAFER_PRESET_DIR_FOR_TEST) + "/mini.yaml");
  std::stringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  const std::string from = "defect_rate: 0.002";
  text.replace(text.find(from), from.size(), "defect_rate: 0.0");
  HostResult<wafer_model::Preset> p = wafer_model::ParsePreset(text);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return p.ok() ? *p : wafer_model::Preset{};
}

constexpr uint32_t kSide = 128;
constexpr uint64_t kPerPe = hal::KnownAnswerPerPe();

class SimWaferDiagTest : public ::testing::Test {
 protected:
  SimWaferDiagTest() : wafer_(MiniNoDefects(), clock_, SimWaferOptions{}) {}

  // Keeps every physical row, as the firmware's harvest does on a board without defects.
  void Harvest() {
    std::vector<uint32_t> rows(kSide);
    for (uint32_t r = 0; r < kSide; ++r) rows[r] = r;
    ASSERT_TRUE(wafer_.ProgramHarvest(rows).ok());
  }
  Status Inject(hal::FaultKind kind, uint32_t row, uint32_t pe, double value) {
    return wafer_.InjectFault(hal::FaultSpec{kind, 0, row, pe, value});
  }
  hal::DiagRun Sram(uint32_t first, uint32_t count, bool unused_only = false) {
    hal::DiagRun run;
    EXPECT_TRUE(wafer_.TestSram(first, count, unused_only, hits_, run).ok());
    return run;
  }
  hal::DiagRun Links(uint32_t first, uint32_t count) {
    hal::DiagRun run;
    EXPECT_TRUE(wafer_.TestFabricLinks(first, count, hits_, run).ok());
    return run;
  }
  uint64_t Answer(uint32_t region, uint64_t* pes_out = nullptr) {
    uint64_t answer = 0, pes = 0;
    int64_t ns = 0;
    EXPECT_TRUE(wafer_.RunKnownAnswer(region, answer, pes, ns).ok());
    EXPECT_GT(ns, 0);
    if (pes_out != nullptr) *pes_out = pes;
    return answer;
  }
  // Every region answers pes * KnownAnswerPerPe().
  bool AllRegionsPass() {
    bool pass = true;
    for (uint32_t region = 0; region < 4; ++region) {
      uint64_t pes = 0;
      pass &= Answer(region, &pes) == pes * kPerPe;
    }
    return pass;
  }

  FakeClock clock_;
  SimWafer wafer_;
  std::array<hal::DiagHit, 8> hits_{};
};

TEST_F(SimWaferDiagTest, LatentFaultsNeedAHarvestAndValidCoordinates) {
  EXPECT_EQ(Inject(hal::FaultKind::kSramStuckBit, 0, 0, 0).code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(Inject(hal::FaultKind::kFabricLink, 0, 0, 0).code(), StatusCode::kFailedPrecondition);
  hal::DiagRun run;
  EXPECT_EQ(wafer_.TestSram(0, 1, false, hits_, run).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(wafer_.RetirePe(0, 0).code(), StatusCode::kFailedPrecondition);
  Harvest();
  const double sram = wafer_.Info().sram_per_pe;
  EXPECT_EQ(Inject(hal::FaultKind::kSramStuckBit, kSide, 0, 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Inject(hal::FaultKind::kSramStuckBit, 0, kSide, 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Inject(hal::FaultKind::kSramStuckBit, 0, 0, sram).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 0, 0, sram - 1).ok());
  EXPECT_EQ(Inject(hal::FaultKind::kFabricLink, 0, 0, 2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Inject(hal::FaultKind::kFabricLink, 0, 0, 0.5).code(), StatusCode::kInvalidArgument);
  // No link east of the last column or south of the last row.
  EXPECT_EQ(Inject(hal::FaultKind::kFabricLink, 0, kSide - 1, 0).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Inject(hal::FaultKind::kFabricLink, kSide - 1, 0, 1).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(Inject(hal::FaultKind::kFabricLink, kSide - 1, 0, 0).ok());
  EXPECT_TRUE(Inject(hal::FaultKind::kFabricLink, 0, kSide - 1, 1).ok());
  EXPECT_EQ(wafer_.TestSram(kSide, 1, false, hits_, run).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(wafer_.TestFabricLinks(kSide, 1, hits_, run).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(wafer_.RetirePe(0, kSide).code(), StatusCode::kOutOfRange);
  uint64_t answer, pes;
  int64_t ns;
  EXPECT_EQ(wafer_.RunKnownAnswer(4, answer, pes, ns).code(), StatusCode::kOutOfRange);
}

TEST_F(SimWaferDiagTest, LatentFaultsAreInvisibleInNormalOperation) {
  Harvest();
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 3, 4, 100).ok());
  ASSERT_TRUE(Inject(hal::FaultKind::kFabricLink, 3, 4, 1).ok());
  std::array<hal::HwEvent, 4> events;
  EXPECT_EQ(wafer_.PollEvents(events), 0u);
  hal::SensorReadout s;
  wafer_.ReadSensors(s);
  EXPECT_EQ(s.ecc_correctable, 0u);
  EXPECT_EQ(s.ecc_uncorrectable, 0u);
  EXPECT_FALSE(wafer_.fabric().IsDead(3, 4));
  EXPECT_EQ(wafer_.fabric().spares_left(3), 4u);
  EXPECT_FALSE(wafer_.TakeLinkCrcError());
}

TEST_F(SimWaferDiagTest, SramAndLinkTestsFindTheFaultsInTheirRows) {
  Harvest();
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 70, 100, 1003).ok());  // Word 1000.
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 70, 100, 2000).ok());  // Same PE.
  ASSERT_TRUE(Inject(hal::FaultKind::kFabricLink, 10, 20, 1).ok());

  hal::DiagRun run = Sram(0, kSide);
  EXPECT_EQ(run.rows, kSide);
  EXPECT_EQ(run.units, uint64_t{kSide} * kSide);
  EXPECT_EQ(run.failures, 1u);  // One PE, however many of its words fail.
  ASSERT_EQ(run.hit_count, 1u);
  EXPECT_EQ(hits_[0].row, 70u);
  EXPECT_EQ(hits_[0].col, 100u);
  EXPECT_EQ(hits_[0].detail, 1000u);  // The lowest failing word.
  EXPECT_EQ(hits_[0].region, 3u);     // Bottom right of 2 x 2.
  EXPECT_EQ(hits_[0].region, wafer_.RegionOf(70, 100));
  EXPECT_FALSE(hits_[0].failed_before);
  EXPECT_GT(run.device_ns, 0);

  // Clipped to the rectangle; rows without the fault find nothing.
  run = Sram(100, 1000);
  EXPECT_EQ(run.rows, 28u);
  EXPECT_EQ(run.units, 28u * kSide);
  EXPECT_EQ(run.failures, 0u);
  EXPECT_EQ(Sram(70, 1).failures, 1u);
  EXPECT_EQ(Sram(0, 0).units, 0u);

  run = Links(0, kSide);
  // East: 127 per row; south: 128 per row but the last.
  EXPECT_EQ(run.units, uint64_t{kSide} * (kSide - 1) + uint64_t{kSide - 1} * kSide);
  EXPECT_EQ(run.failures, 1u);
  ASSERT_EQ(run.hit_count, 1u);
  EXPECT_EQ(hits_[0].row, 10u);
  EXPECT_EQ(hits_[0].col, 20u);
  EXPECT_EQ(hits_[0].detail, 1u);  // South.
  EXPECT_EQ(hits_[0].region, 0u);
  run = Links(kSide - 1, 1);  // The last row has no south links.
  EXPECT_EQ(run.units, kSide - 1u);
  EXPECT_EQ(Links(11, 5).failures, 0u);
}

TEST_F(SimWaferDiagTest, MoreFailuresThanHitsAreCountedAndTheFirstReportedInOrder) {
  Harvest();
  for (uint32_t i = 0; i < 10; ++i) {
    ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 20 - i, i, 8.0 * i).ok());
  }
  const hal::DiagRun run = Sram(0, kSide);
  EXPECT_EQ(run.failures, 10u);
  ASSERT_EQ(run.hit_count, hits_.size());
  for (size_t k = 1; k < run.hit_count; ++k) EXPECT_LT(hits_[k - 1].row, hits_[k].row);
  EXPECT_EQ(hits_[0].row, 11u);
}

TEST_F(SimWaferDiagTest, UnusedOnlySkipsThePesAModelHolds) {
  Harvest();
  // A shape-only model: one tensor on PEs (0, 0..3), its KV cache on all of row 1.
  hal::TensorSpec tensor;
  tensor.rank = 1;
  tensor.dtype = DType::kF32;
  tensor.shape[0] = 1000;
  tensor.byte_size = 4000;
  tensor.placement = {0, 0, 4, 1};
  const hal::KvRegion kv{0, {0, 1, kSide, 1}, 1};
  hal::ModelManifest m;
  m.model_id = 1;
  m.arch = {4, 4, 4, 1, 1, 1, 2};
  m.tensors = std::span(&tensor, 1);
  m.kv_regions = std::span(&kv, 1);
  m.slots = 3;
  m.context_length = 5;
  m.shape_only = true;
  ASSERT_TRUE(wafer_.BeginModel(m).ok());
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 0, 2, 64).ok());   // Holds model bytes.
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 0, 50, 64).ok());  // Unused.

  hal::DiagRun run = Sram(0, 2, /*unused_only=*/true);
  EXPECT_EQ(run.units, kSide - 4u);  // Row 1 is all KV cache.
  EXPECT_EQ(run.failures, 1u);
  ASSERT_EQ(run.hit_count, 1u);
  EXPECT_EQ(hits_[0].col, 50u);
  run = Sram(0, 2);  // The transparent test covers every PE.
  EXPECT_EQ(run.units, 2u * kSide);
  EXPECT_EQ(run.failures, 2u);
}

TEST_F(SimWaferDiagTest, RetireThenRemapLeavesAHealthyRectangle) {
  Harvest();
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 5, 7, 8).ok());
  ASSERT_TRUE(Inject(hal::FaultKind::kFabricLink, 5, 7, 0).ok());
  const uint32_t fuses = wafer_.ReadRowFuses(5);

  ASSERT_TRUE(wafer_.RetirePe(5, 7).ok());
  EXPECT_TRUE(wafer_.fabric().IsDead(5, 7));
  EXPECT_EQ(wafer_.ReadRowFuses(5), fuses + 1);  // In the defect map for the next boot.
  // Until a spare takes its place, the dead PE fails both tests, flagged as already failed.
  hal::DiagRun run = Sram(0, kSide);
  EXPECT_EQ(run.failures, 1u);
  ASSERT_EQ(run.hit_count, 1u);
  EXPECT_TRUE(hits_[0].failed_before);
  EXPECT_EQ(hits_[0].detail, 0u);
  run = Links(0, kSide);
  EXPECT_EQ(run.failures, 4u);  // East, south, and its west and north neighbours' links.
  for (size_t k = 0; k < run.hit_count; ++k) EXPECT_TRUE(hits_[k].failed_before);
  EXPECT_FALSE(AllRegionsPass());  // It contributes nothing to its region's sum.

  ASSERT_TRUE(wafer_.RemapPe(5, 7).ok());
  EXPECT_FALSE(wafer_.fabric().IsDead(5, 7));
  EXPECT_EQ(Sram(0, kSide).failures, 0u);
  EXPECT_EQ(Links(0, kSide).failures, 0u);
  EXPECT_TRUE(AllRegionsPass());

  // A remap alone (after an uncorrectable ECC error, say) also leaves the faults behind.
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 9, 9, 16).ok());
  ASSERT_TRUE(wafer_.RemapPe(9, 9).ok());
  EXPECT_EQ(Sram(0, kSide).failures, 0u);
}

TEST_F(SimWaferDiagTest, LatentFaultsSurviveAPowerCycle) {
  Harvest();
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 40, 41, 800).ok());
  wafer_.PowerCycle();
  Harvest();
  const hal::DiagRun run = Sram(0, kSide);
  EXPECT_EQ(run.failures, 1u);
  EXPECT_EQ(hits_[0].row, 40u);
}

TEST_F(SimWaferDiagTest, KnownAnswerIsExactOnAHealthyBoardAndWrongWithAFault) {
  Harvest();
  uint64_t total_pes = 0;
  for (uint32_t region = 0; region < 4; ++region) {
    uint64_t pes = 0;
    EXPECT_EQ(Answer(region, &pes), 64u * 64 * kPerPe);
    EXPECT_EQ(pes, 64u * 64);
    total_pes += pes;
  }
  EXPECT_EQ(total_pes, uint64_t{kSide} * kSide);

  // A link between two regions is in neither's reduction.
  ASSERT_TRUE(Inject(hal::FaultKind::kFabricLink, 0, 63, 0).ok());
  EXPECT_TRUE(AllRegionsPass());
  // A stuck bit flips one bit of its PE's result (the answer is even: it adds 1).
  ASSERT_TRUE(Inject(hal::FaultKind::kSramStuckBit, 10, 70, 0).ok());
  EXPECT_EQ(wafer_.RegionOf(10, 70), 1u);
  EXPECT_EQ(Answer(1), 64u * 64 * kPerPe + 1);
  EXPECT_EQ(Answer(0), 64u * 64 * kPerPe);
  // A failing link inside a region corrupts its reduction.
  ASSERT_TRUE(Inject(hal::FaultKind::kFabricLink, 100, 10, 1).ok());
  EXPECT_NE(Answer(2), 64u * 64 * kPerPe);
  EXPECT_EQ(Answer(3), 64u * 64 * kPerPe);
}

TEST_F(SimWaferDiagTest, NothingRunsWhileTheClocksAreStopped) {
  Harvest();
  wafer_.Halt();
  uint64_t answer = 1, pes = 1;
  int64_t ns = 1;
  EXPECT_EQ(wafer_.RunKnownAnswer(0, answer, pes, ns).code(), StatusCode::kUnavailable);
  hal::DiagRun run;
  EXPECT_EQ(wafer_.TestSram(0, 1, false, hits_, run).code(), StatusCode::kUnavailable);
  EXPECT_EQ(wafer_.TestFabricLinks(0, 1, hits_, run).code(), StatusCode::kUnavailable);
  wafer_.PowerCycle();
  Harvest();
  EXPECT_TRUE(AllRegionsPass());
}

}  // namespace
}  // namespace wafer::sim

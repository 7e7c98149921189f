// The firmware core driving a SimWafer: defect harvesting, sensors and throttling, thermal trip,
// and runtime PE faults with their re-staging reports. Time comes only from a FakeClock.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "board_sim/fabric_map.h"
#include "board_sim/sim_wafer.h"
#include "common/clock.h"
#include "firmware/command_processor.h"
#include "firmware/testing/fake_firmware_flash.h"

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;
constexpr int64_t kSecond = 1'000'000'000;

std::string MiniText() {
  std::ifstream in(std::string(WAFER_PRESET_DIR_FOR_TEST) + "/mini.yaml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

wafer_model::Preset MiniWith(const std::string& from, const std::string& to) {
  std::string text = MiniText();
  if (!from.empty()) text.replace(text.find(from), from.size(), to);
  HostResult<wafer_model::Preset> p = wafer_model::ParsePreset(text);
  EXPECT_TRUE(p.ok()) << p.error().ToString();
  return p.ok() ? *p : wafer_model::Preset{};
}

// A board: SimWafer + firmware core, with a FakeClock.
struct Board {
  explicit Board(wafer_model::Preset preset, uint64_t seed = 1, FaultPlan plan = {})
      : clock(100 * kSecond),
        wafer(std::move(preset), clock, [&] {
          SimWaferOptions o;
          o.seed = seed;
          o.faults = std::move(plan);
          return o;
        }()),
        processor(std::make_unique<fw::CommandProcessor>(
            fw::Platform{wafer, flash, verifier, clock})),
        reply(std::make_unique<fw::Reply>()) {}

  fw::Reply& Do(fw::Command cmd) {
    processor->Handle(cmd, *reply);
    return *reply;
  }
  fw::Reply& Do(fw::CommandKind kind) {
    fw::Command cmd;
    cmd.kind = kind;
    return Do(cmd);
  }
  fw::Reply& Inject(hal::FaultKind kind, uint32_t row, uint32_t pe, double value,
                    uint32_t region = 0) {
    fw::Command cmd;
    cmd.kind = fw::CommandKind::kInjectFault;
    cmd.fault = hal::FaultSpec{kind, region, row, pe, value};
    return Do(cmd);
  }
  bool LogHas(fw::LogCode code, fw::Severity severity) const {
    std::array<fw::LogRecord, 256> out;
    const fw::LogReadResult r = processor->error_log().Read(0, out);
    for (size_t i = 0; i < r.count; ++i) {
      if (out[i].code == code && out[i].severity == severity) return true;
    }
    return false;
  }

  FakeClock clock;
  fw::testing::FakeFirmwareFlash flash;
  fw::testing::FakeSignatureVerifier verifier;
  SimWafer wafer;
  std::unique_ptr<fw::CommandProcessor> processor;
  std::unique_ptr<fw::Reply> reply;
};

TEST(FabricMapTest, DefectsAreSeededAndNearTheRate) {
  HostResult<wafer_model::Preset> big = wafer_model::LoadPreset("wse3", WAFER_PRESET_DIR_FOR_TEST);
  ASSERT_TRUE(big.ok()) << big.error().ToString();
  const FabricMap a(*big, 42), b(*big, 42), c(*big, 43);
  EXPECT_EQ(a.fused_defects(), b.fused_defects());
  bool same_rows = true;
  for (uint32_t r = 0; r < big->physical_rows; ++r) same_rows &= a.Defects(r) == b.Defects(r);
  EXPECT_TRUE(same_rows);
  bool differs = false;
  for (uint32_t r = 0; r < big->physical_rows; ++r) differs |= a.Defects(r) != c.Defects(r);
  EXPECT_TRUE(differs);
  const double rate = double(a.fused_defects()) / double(big->physical_pes);
  EXPECT_NEAR(rate, big->defect_rate, big->defect_rate * 0.1);
  // ~7% spares on wse3, fewer on wse2.
  EXPECT_NEAR(double(big->spare_cols_per_row) / big->physical_cols, 0.07, 0.01);
  HostResult<wafer_model::Preset> wse2 = wafer_model::LoadPreset("wse2", WAFER_PRESET_DIR_FOR_TEST);
  ASSERT_TRUE(wse2.ok()) << wse2.error().ToString();
  EXPECT_LT(double(wse2->spare_cols_per_row) / wse2->physical_cols, 0.02);
}

TEST(FabricMapTest, ProgramChecksSparesAndRemapUsesThemUp) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  FabricMap map(p, 0);
  std::vector<uint32_t> rows(p.physical_rows);
  for (uint32_t r = 0; r < rows.size(); ++r) rows[r] = r;
  rows[5] = 7;  // Not numbered in order.
  EXPECT_EQ(map.Program(rows).code(), StatusCode::kInvalidArgument);
  rows[5] = 5;
  ASSERT_TRUE(map.Program(rows).ok());
  for (uint32_t i = 0; i < p.spare_cols_per_row; ++i) EXPECT_TRUE(map.Remap(3, i).ok());
  EXPECT_EQ(map.Remap(3, 10).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(map.spares_left(3), 0u);
  EXPECT_EQ(map.spares_left(4), p.spare_cols_per_row);
  EXPECT_EQ(map.Remap(p.physical_rows, 0).code(), StatusCode::kOutOfRange);
}

TEST(WaferHealthTest, BootHarvestsRowsAndSramFollowsUsablePes) {
  // About 4 defects per 132-PE row against 4 spares: many rows are dropped.
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.03");
  Board board(p, 9);
  fw::Reply& before = board.Do(fw::CommandKind::kIdentify);
  EXPECT_FALSE(before.geometry.harvested);
  EXPECT_EQ(before.info.fabric_height, 128u);

  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  const fw::GeometrySummary g = board.Do(fw::CommandKind::kIdentify).geometry;
  ASSERT_TRUE(g.harvested);
  EXPECT_EQ(g.usable_width, 128u);
  EXPECT_LT(g.usable_height, 128u);
  EXPECT_GT(g.usable_height, 0u);
  EXPECT_EQ(g.usable_pes, uint64_t{g.usable_width} * g.usable_height);
  EXPECT_EQ(g.physical_pes, 128u * 132);
  EXPECT_EQ(g.failed_pes, board.wafer.fabric().fused_defects());
  EXPECT_EQ(g.healthy_pes + g.failed_pes, g.physical_pes);
  EXPECT_EQ(g.spare_pes, g.healthy_pes - g.usable_pes);

  fw::Reply& geo = board.Do(fw::CommandKind::kReadGeometry);
  ASSERT_EQ(geo.row_failed.size(), 128u);
  EXPECT_EQ(geo.dropped_rows.size(), 128u - g.usable_height);
  uint64_t failed = 0;
  for (uint16_t f : geo.row_failed) failed += f;
  EXPECT_EQ(failed, g.failed_pes);
  for (uint32_t r : geo.dropped_rows) EXPECT_GT(geo.row_failed[r], p.spare_cols_per_row);

  fw::Reply& t = board.Do(fw::CommandKind::kReadTelemetry);
  EXPECT_EQ(t.sensors.sram_total_bytes, g.usable_pes * p.sram_per_pe_bytes);
  EXPECT_TRUE(board.LogHas(fw::LogCode::kFabricHarvested, fw::Severity::kInfo));

  // The same seed gives the same board.
  Board twin(p, 9);
  ASSERT_EQ(twin.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  EXPECT_EQ(twin.Do(fw::CommandKind::kIdentify).geometry.usable_height, g.usable_height);
}

// Stages a shape-only model whose manifest lists `n` tensors of `bytes` each (reserved in SRAM,
// never written): tensor i on the two PEs at columns i and i + 1 of row 0, so neighbours share
// a PE; each of the two layers' KV cache on a full row below.
struct ManifestStorage {  // What a staged manifest's spans point into.
  std::vector<hal::TensorSpec> specs;
  std::vector<hal::KvRegion> kv;
};

fw::Reply& StageShapeOnly(Board& board, uint32_t id, ManifestStorage& storage, size_t n,
                          uint64_t bytes) {
  std::vector<hal::TensorSpec>& specs = storage.specs;
  specs.assign(n, hal::TensorSpec{});
  for (size_t i = 0; i < n; ++i) {
    hal::TensorSpec& s = specs[i];
    s.dtype = DType::kF16;
    s.rank = 1;
    s.shape[0] = bytes / 2;
    s.byte_size = bytes;
    s.placement = {static_cast<uint32_t>(i), 0, 2, 1};
  }
  const uint32_t width = board.Do(fw::CommandKind::kIdentify).geometry.usable_width;
  // 2 slots x 64 tokens x 2 (K, V) x 2 kv heads x 16 dims x 2 bytes = 16 KB per layer.
  const uint64_t kv_per_pe = 16384 / width + 1;
  storage.kv = {{0, {0, 1, width, 1}, kv_per_pe}, {1, {0, 2, width, 1}, kv_per_pe}};
  fw::Command begin;
  begin.kind = fw::CommandKind::kBeginModel;
  begin.manifest.model_id = id;
  begin.manifest.arch = ModelArch{64, 64, 128, 2, 4, 2, 16};
  begin.manifest.tensors = specs;
  begin.manifest.kv_regions = storage.kv;
  begin.manifest.slots = 2;
  begin.manifest.context_length = 64;
  begin.manifest.shape_only = true;
  EXPECT_EQ(board.Do(begin).code, StatusCode::kOk);
  fw::Command commit;
  commit.kind = fw::CommandKind::kCommitModel;
  commit.model_id = id;
  return board.Do(commit);
}

fw::Reply& Step(Board& board, uint32_t model, std::vector<hal::SeqStepView>& seqs,
                std::vector<uint32_t>& tokens) {
  tokens = {1, 2, 3};
  seqs.assign(1, hal::SeqStepView{});
  seqs[0].slot = 0;
  seqs[0].reset = true;
  seqs[0].input_tokens = tokens;
  seqs[0].generate = 4;
  fw::Command cmd;
  cmd.kind = fw::CommandKind::kStep;
  cmd.step.model_id = model;
  cmd.step.seqs = seqs;
  return board.Do(cmd);
}

TEST(WaferHealthTest, StoppedPeIsRemappedAndItsTensorsReported) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  Board board(p);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  ManifestStorage specs;
  // 4 tensors of 64 KiB: tensor i spans PEs [i * 4/3, ...): PE 1 holds tensors 0 and 1.
  ASSERT_EQ(StageShapeOnly(board, 5, specs, 4, 32 << 10).code, StatusCode::kOk);

  ASSERT_EQ(board.Inject(hal::FaultKind::kPeStop, 0, 1, 0).code, StatusCode::kOk);
  fw::Reply& faults = board.Do(fw::CommandKind::kReadFaults);
  ASSERT_EQ(faults.faults.size(), 1u);
  const fw::FaultRecord& f = faults.faults[0];
  EXPECT_EQ(f.kind, hal::FaultKind::kPeStop);
  EXPECT_TRUE(f.remapped);
  EXPECT_EQ(f.model_id, 5u);
  ASSERT_EQ(f.tensor_count, 2u);
  EXPECT_EQ(f.tensors[0], 0u);
  EXPECT_EQ(f.tensors[1], 1u);
  EXPECT_TRUE(board.LogHas(fw::LogCode::kPeFailed, fw::Severity::kError));

  fw::Reply& id = board.Do(fw::CommandKind::kIdentify);
  EXPECT_EQ(id.geometry.failed_pes, 1u);
  EXPECT_EQ(id.geometry.runtime_remaps, 1u);
  EXPECT_EQ(id.geometry.usable_height, 128u);  // A spare took its place.

  // The model's weights are gone until it is re-staged.
  std::vector<hal::SeqStepView> seqs;
  std::vector<uint32_t> tokens;
  EXPECT_EQ(Step(board, 5, seqs, tokens).code, StatusCode::kDataLoss);
}

TEST(WaferHealthTest, ShapeOnlyModelIsRepairedByCommitUnlessASpareRanOut) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  Board board(p);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  ManifestStorage specs;
  ASSERT_EQ(StageShapeOnly(board, 5, specs, 4, 32 << 10).code, StatusCode::kOk);
  fw::Command commit;
  commit.kind = fw::CommandKind::kCommitModel;
  commit.model_id = 5;
  std::vector<hal::SeqStepView> seqs;
  std::vector<uint32_t> tokens;

  // A spare takes the stopped PE's place: committing the model again repairs it (a shape-only
  // model has no bytes to rewrite).
  ASSERT_EQ(board.Inject(hal::FaultKind::kPeStop, 0, 1, 0).code, StatusCode::kOk);
  EXPECT_EQ(Step(board, 5, seqs, tokens).code, StatusCode::kDataLoss);
  ASSERT_EQ(board.Do(commit).code, StatusCode::kOk);
  EXPECT_TRUE(board.LogHas(fw::LogCode::kModelRepaired, fw::Severity::kInfo));
  EXPECT_EQ(Step(board, 5, seqs, tokens).code, StatusCode::kOk);

  // Row 2 holds layer 1's KV cache: once its spares are used up, a PE lost there leaves a hole
  // in the placement that no repair in place can fill.
  for (uint32_t i = 0; i <= p.spare_cols_per_row; ++i) {
    ASSERT_EQ(board.Inject(hal::FaultKind::kEccUncorrectable, 2, i, 0).code, StatusCode::kOk);
  }
  fw::Reply& faults = board.Do(fw::CommandKind::kReadFaults);
  ASSERT_EQ(faults.faults.size(), p.spare_cols_per_row + 2u);
  EXPECT_TRUE(faults.faults.back().kv_cache_lost);
  EXPECT_FALSE(faults.faults.back().remapped);
  fw::Reply& refused = board.Do(commit);
  EXPECT_EQ(refused.code, StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(refused.detail).find("no spare"), std::string::npos) << refused.detail;
  EXPECT_EQ(Step(board, 5, seqs, tokens).code, StatusCode::kDataLoss);
}

TEST(WaferHealthTest, EccErrorsAreCountedOrRemapped) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  Board board(p);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  ASSERT_EQ(board.Inject(hal::FaultKind::kEccCorrectable, 2, 2, 5).code, StatusCode::kOk);
  EXPECT_EQ(board.Do(fw::CommandKind::kReadTelemetry).sensors.ecc_correctable, 5u);
  EXPECT_TRUE(board.LogHas(fw::LogCode::kEccCorrected, fw::Severity::kWarning));
  EXPECT_EQ(board.Do(fw::CommandKind::kReadFaults).faults.size(), 0u);

  // Use up row 3's spares: the last uncorrectable error finds none.
  for (uint32_t i = 0; i <= p.spare_cols_per_row; ++i) {
    ASSERT_EQ(board.Inject(hal::FaultKind::kEccUncorrectable, 3, i, 0).code, StatusCode::kOk);
  }
  fw::Reply& faults = board.Do(fw::CommandKind::kReadFaults);
  ASSERT_EQ(faults.faults.size(), p.spare_cols_per_row + 1u);
  EXPECT_TRUE(faults.faults[0].remapped);
  EXPECT_FALSE(faults.faults[p.spare_cols_per_row].remapped);
  EXPECT_EQ(faults.faults[0].model_id, 0u);  // Nothing lived there.
  EXPECT_EQ(board.Do(fw::CommandKind::kReadTelemetry).sensors.ecc_uncorrectable,
            p.spare_cols_per_row + 1u);
  EXPECT_EQ(board.Inject(hal::FaultKind::kEccUncorrectable, 999, 0, 0).code,
            StatusCode::kInvalidArgument);
}

TEST(WaferHealthTest, ThrottlingSlowsStepsAndPowerCapLowersTheClock) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  Board cool(p), hot(p);
  ManifestStorage specs;
  std::vector<hal::SeqStepView> seqs;
  std::vector<uint32_t> tokens;
  for (Board* b : {&cool, &hot}) {
    ASSERT_EQ(b->Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
    ASSERT_EQ(StageShapeOnly(*b, 1, specs, 1, 1024).code, StatusCode::kOk);
  }
  // Idle mini: ~37 C; cooling x4 on region 1 -> ~25 + 75 * 0.16 * 4 + rise = ~73 C at idle is
  // not enough; x6 -> ~97 C: above warn (85), below critical (105).
  ASSERT_EQ(hot.Inject(hal::FaultKind::kThermalRunaway, 0, 0, 6, 1).code, StatusCode::kOk);
  hot.clock.Advance(300 * kSecond);
  cool.clock.Advance(300 * kSecond);
  fw::Reply& t = hot.Do(fw::CommandKind::kReadTelemetry);
  EXPECT_GT(t.sensors.region_temp_c[1], p.warn_c);
  EXPECT_LT(t.sensors.region_temp_c[1], p.critical_c);
  EXPECT_TRUE(t.sensors.throttled);
  EXPECT_LT(t.sensors.region_clock_hz[1], p.clock_hz);
  EXPECT_DOUBLE_EQ(t.sensors.region_clock_hz[0], p.clock_hz);
  EXPECT_TRUE(hot.LogHas(fw::LogCode::kThermalThrottle, fw::Severity::kWarning));
  EXPECT_EQ(hot.processor->state(), fw::BootState::kReady);

  const int64_t cool_ns = Step(cool, 1, seqs, tokens).device_time.compute_ns;
  const int64_t hot_ns = Step(hot, 1, seqs, tokens).device_time.compute_ns;
  EXPECT_GT(hot_ns, cool_ns);

  ASSERT_EQ(cool.Inject(hal::FaultKind::kPowerCap, 0, 0, 150).code, StatusCode::kOk);
  fw::Reply& capped = cool.Do(fw::CommandKind::kReadTelemetry);
  EXPECT_LT(capped.sensors.clock_hz, p.clock_hz);
  EXPECT_FLOAT_EQ(capped.sensors.power_cap_w, 150);
  EXPECT_TRUE(cool.LogHas(fw::LogCode::kPowerCapped, fw::Severity::kWarning));
  EXPECT_GT(Step(cool, 1, seqs, tokens).device_time.compute_ns, cool_ns);
  ASSERT_EQ(cool.Inject(hal::FaultKind::kPowerCap, 0, 0, 0).code, StatusCode::kOk);
  EXPECT_DOUBLE_EQ(cool.Do(fw::CommandKind::kReadTelemetry).sensors.clock_hz, p.clock_hz);
}

TEST(WaferHealthTest, PowerFollowsActivityAcrossRails) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  Board board(p);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  board.clock.Advance(10 * kSecond);
  const hal::SensorReadout idle = board.Do(fw::CommandKind::kReadTelemetry).sensors;
  EXPECT_NEAR(idle.power_w, p.idle_w, 1e-3);
  EXPECT_NEAR(idle.core_power_w + idle.sram_power_w + idle.io_power_w, idle.power_w, 1e-3);
  EXPECT_FLOAT_EQ(idle.coolant_flow_kg_s, static_cast<float>(p.coolant_flow_kg_s));

  ManifestStorage specs;
  std::vector<hal::SeqStepView> seqs;
  std::vector<uint32_t> tokens;
  ASSERT_EQ(StageShapeOnly(board, 1, specs, 1, 1024).code, StatusCode::kOk);
  // Busy half of the next interval: power sits halfway between idle and peak.
  int64_t busy = 0;
  while (busy < kSecond / 2) {
    const DeviceTime t = Step(board, 1, seqs, tokens).device_time;
    busy += t.compute_ns + t.fabric_ns;
  }
  board.clock.Advance(2 * busy);
  const hal::SensorReadout loaded = board.Do(fw::CommandKind::kReadTelemetry).sensors;
  EXPECT_NEAR(loaded.power_w, (p.idle_w + p.peak_w) / 2, (p.peak_w - p.idle_w) * 0.02);
  EXPECT_GT(loaded.core_power_w, idle.core_power_w);
  EXPECT_GT(loaded.coolant_out_c, idle.coolant_out_c);
}

TEST(WaferHealthTest, ThermalRunawayTripsTheBoard) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  Board board(p);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  ManifestStorage specs;
  ASSERT_EQ(StageShapeOnly(board, 1, specs, 1, 1024).code, StatusCode::kOk);
  ASSERT_EQ(board.Inject(hal::FaultKind::kThermalRunaway, 0, 0, 20, 3).code, StatusCode::kOk);
  EXPECT_EQ(board.Inject(hal::FaultKind::kThermalRunaway, 0, 0, 2, 99).code,
            StatusCode::kInvalidArgument);
  board.clock.Advance(300 * kSecond);
  board.processor->Poll();  // The superloop's idle health check.
  EXPECT_EQ(board.processor->state(), fw::BootState::kFaulted);
  EXPECT_TRUE(board.LogHas(fw::LogCode::kThermalTrip, fw::Severity::kFatal));
  fw::Reply& t = board.Do(fw::CommandKind::kReadTelemetry);
  EXPECT_TRUE(t.thermal_trip);
  EXPECT_EQ(t.sensors.region_clock_hz[3], 0);
  std::vector<hal::SeqStepView> seqs;
  std::vector<uint32_t> tokens;
  EXPECT_EQ(Step(board, 1, seqs, tokens).code, StatusCode::kFailedPrecondition);
  // Still too hot after a reset: the self-test refuses to boot.
  board.Do(fw::CommandKind::kReset);
  EXPECT_NE(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  // Cooling restored and given time: it boots again.
  ASSERT_EQ(board.Inject(hal::FaultKind::kThermalRunaway, 0, 0, 1, 3).code, StatusCode::kOk);
  board.clock.Advance(300 * kSecond);
  board.Do(fw::CommandKind::kReset);
  EXPECT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
}

TEST(WaferHealthTest, PlannedFaultsApplyAtBootAndPeFaultsNeedAHarvest) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  FaultPlan plan;
  plan.faults.push_back(hal::FaultSpec{hal::FaultKind::kPeStop, 0, 4, 4, 0});
  Board board(p, 1, plan);
  EXPECT_EQ(board.Inject(hal::FaultKind::kPeStop, 0, 0, 0).code,
            StatusCode::kFailedPrecondition);  // Not booted: no usable rectangle yet.
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  fw::Reply& faults = board.Do(fw::CommandKind::kReadFaults);
  ASSERT_EQ(faults.faults.size(), 1u);
  EXPECT_EQ(faults.faults[0].row, 4u);
  // The dead PE stays dead: the next boot's self-test finds it like a fused defect.
  board.Do(fw::CommandKind::kReset);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  EXPECT_EQ(board.Do(fw::CommandKind::kIdentify).geometry.failed_pes, 1u);
}


fw::Reply& Diagnose(Board& board, fw::DiagTest test, uint32_t first, uint32_t count) {
  fw::Command cmd;
  cmd.kind = fw::CommandKind::kRunDiagnostic;
  cmd.diagnostic = fw::DiagnosticArgs{test, first, count};
  return board.Do(cmd);
}

// Latent faults through the firmware: silent while the board serves, found by the level-3 tests,
// retired and remapped with a fault report the host repairs from, gone from the next sweep, and
// in the defect map after a reset.
TEST(WaferHealthTest, DiagnosticsFindRetireAndRemapLatentFaults) {
  const wafer_model::Preset p = MiniWith("defect_rate: 0.002", "defect_rate: 0.0");
  FaultPlan plan;  // Applied at the first harvest, like a PE stop.
  plan.faults.push_back(hal::FaultSpec{hal::FaultKind::kSramStuckBit, 0, 0, 1, 64});
  Board board(p, 1, plan);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  ManifestStorage specs;
  // PE (0, 1) holds tensors 0 and 1 of model 5.
  ASSERT_EQ(StageShapeOnly(board, 5, specs, 4, 32 << 10).code, StatusCode::kOk);
  ASSERT_EQ(board.Inject(hal::FaultKind::kFabricLink, 50, 5, 0).code, StatusCode::kOk);
  std::vector<hal::SeqStepView> seqs;
  std::vector<uint32_t> tokens;
  EXPECT_EQ(Step(board, 5, seqs, tokens).code, StatusCode::kOk);
  EXPECT_EQ(board.Do(fw::CommandKind::kReadFaults).faults.size(), 0u);
  EXPECT_EQ(board.Do(fw::CommandKind::kReadTelemetry).sensors.ecc_correctable, 0u);

  // Level 2 tests only the PEs no model uses, and retires nothing.
  fw::Reply& unused = Diagnose(board, fw::DiagTest::kSramUnused, 0, 1000);
  ASSERT_EQ(unused.kind, fw::ReplyKind::kDiagnostic) << unused.detail;
  EXPECT_EQ(unused.diagnostic.row_count, 128u);
  EXPECT_EQ(unused.diagnostic.units_tested, 128u * 128 - 5 - 2 * 128);  // Row 0: 5 PEs used.
  EXPECT_EQ(unused.diagnostic.failures, 0u);
  fw::Reply& kat = Diagnose(board, fw::DiagTest::kKnownAnswer, 0, 4);
  EXPECT_EQ(kat.diagnostic.units_tested, 4u);
  EXPECT_EQ(kat.diagnostic.failures, 1u);  // Region 0: the stuck bit and the link.
  ASSERT_EQ(kat.findings.size(), 1u);
  EXPECT_EQ(kat.findings[0].region, 0u);

  // Level 3: the stuck PE is retired, remapped and reported with what it held.
  fw::Reply& all = Diagnose(board, fw::DiagTest::kSramAll, 0, 128);
  ASSERT_EQ(all.kind, fw::ReplyKind::kDiagnostic);
  EXPECT_EQ(all.diagnostic.units_tested, 128u * 128);
  EXPECT_EQ(all.diagnostic.failures, 1u);
  ASSERT_EQ(all.findings.size(), 1u);
  EXPECT_EQ(all.findings[0].row, 0u);
  EXPECT_EQ(all.findings[0].pe, 1u);
  EXPECT_EQ(all.findings[0].detail, 64u);
  EXPECT_TRUE(all.findings[0].retired);
  EXPECT_TRUE(all.findings[0].remapped);
  fw::Reply& faults = board.Do(fw::CommandKind::kReadFaults);
  ASSERT_EQ(faults.faults.size(), 1u);
  EXPECT_EQ(faults.faults[0].kind, hal::FaultKind::kSramStuckBit);
  EXPECT_EQ(faults.faults[0].model_id, 5u);
  EXPECT_EQ(faults.faults[0].tensor_count, 2u);
  EXPECT_TRUE(faults.faults[0].remapped);
  EXPECT_EQ(Step(board, 5, seqs, tokens).code, StatusCode::kDataLoss);
  fw::Command commit;  // A shape-only model is repaired by committing it again.
  commit.kind = fw::CommandKind::kCommitModel;
  commit.model_id = 5;
  ASSERT_EQ(board.Do(commit).code, StatusCode::kOk);
  EXPECT_EQ(Step(board, 5, seqs, tokens).code, StatusCode::kOk);

  fw::Reply& links = Diagnose(board, fw::DiagTest::kFabricLinks, 0, 128);
  EXPECT_EQ(links.diagnostic.failures, 1u);
  ASSERT_EQ(links.findings.size(), 1u);
  EXPECT_EQ(links.findings[0].row, 50u);
  EXPECT_EQ(links.findings[0].pe, 5u);
  EXPECT_EQ(links.findings[0].detail, 0u);
  EXPECT_TRUE(links.findings[0].remapped);
  fw::Reply& faults2 = board.Do(fw::CommandKind::kReadFaults);
  ASSERT_EQ(faults2.faults.size(), 2u);
  EXPECT_EQ(faults2.faults[1].kind, hal::FaultKind::kFabricLink);
  EXPECT_EQ(faults2.faults[1].model_id, 0u);

  // The next sweep finds a healthy rectangle.
  EXPECT_EQ(Diagnose(board, fw::DiagTest::kSramAll, 0, 128).diagnostic.failures, 0u);
  EXPECT_EQ(Diagnose(board, fw::DiagTest::kFabricLinks, 0, 128).diagnostic.failures, 0u);
  EXPECT_EQ(Diagnose(board, fw::DiagTest::kKnownAnswer, 0, 4).diagnostic.failures, 0u);
  const fw::GeometrySummary g = board.Do(fw::CommandKind::kIdentify).geometry;
  EXPECT_EQ(g.failed_pes, 2u);
  EXPECT_EQ(g.runtime_remaps, 2u);
  EXPECT_EQ(g.usable_height, 128u);
  EXPECT_TRUE(board.LogHas(fw::LogCode::kDiagnosticRun, fw::Severity::kWarning));
  EXPECT_FALSE(board.LogHas(fw::LogCode::kDiagnosticRun, fw::Severity::kInfo));  // Clean: none.

  // Both retired PEs are in the defect map the next boot reads.
  board.Do(fw::CommandKind::kReset);
  ASSERT_EQ(board.Do(fw::CommandKind::kBoot).code, StatusCode::kOk);
  EXPECT_EQ(board.Do(fw::CommandKind::kIdentify).geometry.failed_pes, 2u);
  EXPECT_EQ(Diagnose(board, fw::DiagTest::kSramAll, 0, 128).diagnostic.failures, 0u);
}

}  // namespace
}  // namespace wafer::sim

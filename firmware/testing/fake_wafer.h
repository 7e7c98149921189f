// A scripted hal::Wafer for firmware tests: records what the firmware asked of it, stores written
// bytes in a fixed buffer, and fails on command.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/wafer.h"

namespace wafer::fw::testing {

class FakeWafer final : public hal::Wafer {
 public:
  static constexpr size_t kStoreBytes = 1 << 16;

  hal::WaferInfo Info() const override {
    hal::WaferInfo info;
    info.board_id = "fake-0";
    info.preset = "fake";
    info.physical_pes = 100;
    info.fabric_width = 8;
    info.fabric_height = 8;
    info.sram_per_pe = 48 * 1024;
    info.clock_hz = 1e9;
    info.max_slots = 4;
    return info;
  }
  Status SelfTest() override {
    ++self_tests;
    if (self_test_fails) return Internal();
    // Simulates a firmware image that cannot boot: fails while `failing_slot` runs.
    if (flash != nullptr && failing_slot >= 0 &&
        flash->ReadBootControl().active_slot == static_cast<uint32_t>(failing_slot)) {
      return Internal();
    }
    return OkStatus();
  }
  Status BeginModel(const hal::ModelManifest& m) override {
    ++begin_calls;
    if (!begin_status.ok()) return begin_status;
    last_model_id = m.model_id;
    last_stage = m.stage;
    return OkStatus();
  }
  Status WriteTensor(uint32_t, uint32_t tensor_index, uint64_t offset,
                     std::span<const std::byte> data) override {
    ++write_calls;
    bytes_written += data.size();
    // Tensor i lives at i * 4096 in the store (tests keep tensors small).
    const size_t at = tensor_index * 4096 + offset;
    if (at + data.size() <= kStoreBytes) std::memcpy(store.data() + at, data.data(), data.size());
    return OkStatus();
  }
  Status CommitModel(uint32_t) override {
    ++commit_calls;
    return OkStatus();
  }
  Status UnloadModel(uint32_t) override {
    ++unload_calls;
    return OkStatus();
  }
  Status RunStep(const hal::StepRequest& req, std::span<hal::SeqOutcome> outcomes,
                 DeviceTime& time) override {
    ++step_calls;
    if (!step_status.ok()) return step_status;
    for (size_t i = 0; i < req.seqs.size(); ++i) {
      // Generates slot*100 + k, so tests can tell sequences apart.
      for (uint32_t k = 0; k < req.seqs[i].generate; ++k) {
        outcomes[i].token_buffer[k] = req.seqs[i].slot * 100 + k;
      }
      outcomes[i].token_count = req.seqs[i].generate;
      outcomes[i].context_tokens =
          static_cast<uint32_t>(req.seqs[i].input_tokens.size()) + req.seqs[i].generate;
      // Fills the whole hidden buffer (a stage without the head) with slot + k / 4.
      std::span<float> hidden = outcomes[i].hidden_buffer;
      for (size_t k = 0; k < hidden.size(); ++k) {
        hidden[k] = static_cast<float>(req.seqs[i].slot) + static_cast<float>(k) / 4;
      }
      outcomes[i].hidden_count = static_cast<uint32_t>(hidden.size());
      hidden_in_values += req.seqs[i].hidden_in.size();
    }
    time.total_ns = 1000;
    time.compute_ns = 1000;
    return OkStatus();
  }
  void ReadSensors(hal::SensorReadout& out) override {
    out = hal::SensorReadout{};
    out.region_count = 2;
    out.region_temp_c[0] = 30;
    out.region_temp_c[1] = 31;
    if (hot_region_c > 0) out.region_temp_c[0] = hot_region_c;
    out.power_w = 100;
  }
  void PowerCycle() override {
    ++power_cycles;
    halted = false;
  }
  hal::PhysicalGeometry Geometry() const override { return geometry; }
  uint32_t ReadRowFuses(uint32_t row) const override {
    return row < row_fuses.size() ? row_fuses[row] : 0;
  }
  Status ProgramHarvest(std::span<const uint32_t> row_map) override {
    ++harvests;
    programmed_rows = row_map.size();
    for (size_t i = 0; i < row_map.size() && i < last_row_map.size(); ++i) {
      last_row_map[i] = row_map[i];
    }
    return OkStatus();
  }
  Status RemapPe(uint32_t, uint32_t) override {
    ++remaps;
    return OkStatus();
  }
  hal::PeContents ContentsOfPe(uint32_t, uint32_t, std::span<uint32_t> tensors) const override {
    for (size_t i = 0; i < pe_tensor_count && i < tensors.size(); ++i) {
      tensors[i] = static_cast<uint32_t>(i) * 2 + 1;  // 1, 3, 5, ...
    }
    hal::PeContents c;
    c.has_model = pe_model_id != 0;
    c.model_id = pe_model_id;
    c.tensor_count = pe_tensor_count;
    return c;
  }
  size_t PollEvents(std::span<hal::HwEvent> out) override {
    size_t n = 0;
    while (n < out.size() && event_count > 0) {
      out[n++] = events[--event_count];
    }
    return n;
  }
  void Halt() override { halted = true; }
  Status InjectFault(const hal::FaultSpec& fault) override {
    last_fault = fault;
    return inject_status;
  }
  bool TakeLinkCrcError() override {
    if (link_crc_pending == 0) return false;
    --link_crc_pending;
    return true;
  }

  // Self-tests over the 8-row usable rectangle: the configured hits whose row is in range fail
  // (sram_hits for TestSram, link_hits for TestFabricLinks); every PE (link) of the rows counts.
  Status TestSram(uint32_t first_row, uint32_t row_count, bool unused_only,
                  std::span<hal::DiagHit> hits, hal::DiagRun& run) override {
    ++sram_tests;
    last_unused_only = unused_only;
    return ScriptedTest(first_row, row_count, sram_hits, sram_hit_count, 8, hits, run);
  }
  Status TestFabricLinks(uint32_t first_row, uint32_t row_count, std::span<hal::DiagHit> hits,
                         hal::DiagRun& run) override {
    ++link_tests;
    return ScriptedTest(first_row, row_count, link_hits, link_hit_count, 15, hits, run);
  }
  // kKatRegions regions of kKatPes PEs; region r answers kKatPes * KnownAnswerPerPe() plus
  // kat_error[r], and UNAVAILABLE when it is kat_stopped_region.
  Status RunKnownAnswer(uint32_t region, uint64_t& answer, uint64_t& pes,
                        int64_t& device_ns) override {
    ++kat_runs;
    if (region >= kKatRegions) return OutOfRange();
    if (static_cast<int>(region) == kat_stopped_region) return Unavailable();
    pes = kKatPes;
    answer = kKatPes * hal::KnownAnswerPerPe() + kat_error[region];
    device_ns = 100;
    return OkStatus();
  }
  Status RetirePe(uint32_t row, uint32_t col) override {
    ++retires;
    last_retired_row = row;
    last_retired_col = col;
    return retire_status;
  }

  bool self_test_fails = false;
  const hal::FirmwareFlash* flash = nullptr;  // Optional; see failing_slot.
  int failing_slot = -1;
  int self_tests = 0;
  Status begin_status;
  Status step_status;  // RunStep fails with this when not OK.
  uint32_t last_model_id = 0;
  ModelStage last_stage;        // Of the last BeginModel that succeeded.
  size_t hidden_in_values = 0;  // hidden_in values over every RunStep so far.
  int begin_calls = 0, write_calls = 0, commit_calls = 0, unload_calls = 0, step_calls = 0;
  int power_cycles = 0;
  size_t bytes_written = 0;
  std::array<std::byte, kStoreBytes> store{};
  // Geometry: 8 rows of 10 PEs, 2 spares each (the 8 x 8 usable rectangle of Info() when no
  // row drops).
  hal::PhysicalGeometry geometry{8, 10, 2};
  std::array<uint32_t, 10> row_fuses{};
  std::array<uint32_t, 10> last_row_map{};
  size_t programmed_rows = 0;
  int harvests = 0, remaps = 0;
  uint32_t pe_model_id = 0;      // What ContentsOfPe reports.
  uint32_t pe_tensor_count = 0;
  std::array<hal::HwEvent, 8> events{};  // Queued (a stack) for PollEvents.
  size_t event_count = 0;
  bool halted = false;
  hal::FaultSpec last_fault;
  Status inject_status;
  int link_crc_pending = 0;
  float hot_region_c = 0;  // When > 0, region 0 reads this temperature.

  // Diagnostics.
  static constexpr uint32_t kKatRegions = 2;
  static constexpr uint64_t kKatPes = 32;
  std::array<hal::DiagHit, 8> sram_hits{};
  size_t sram_hit_count = 0;
  std::array<hal::DiagHit, 8> link_hits{};
  size_t link_hit_count = 0;
  std::array<uint64_t, kKatRegions> kat_error{};
  int kat_stopped_region = -1;
  int sram_tests = 0, link_tests = 0, kat_runs = 0, retires = 0;
  bool last_unused_only = false;
  uint32_t last_retired_row = 0, last_retired_col = 0;
  Status retire_status;

 private:
  static Status ScriptedTest(uint32_t first_row, uint32_t row_count,
                             const std::array<hal::DiagHit, 8>& script, size_t script_count,
                             uint64_t units_per_row, std::span<hal::DiagHit> hits,
                             hal::DiagRun& run) {
    constexpr uint32_t kRows = 8;
    run = hal::DiagRun{};
    if (first_row >= kRows) return OutOfRange();
    const uint32_t end = first_row + (row_count < kRows - first_row ? row_count : kRows - first_row);
    run.rows = end - first_row;
    run.units = uint64_t{run.rows} * units_per_row;
    for (size_t i = 0; i < script_count; ++i) {
      if (script[i].row < first_row || script[i].row >= end) continue;
      if (run.hit_count < hits.size()) hits[run.hit_count++] = script[i];
      ++run.failures;
    }
    run.device_ns = 1000;
    return OkStatus();
  }
};

}  // namespace wafer::fw::testing

// The simulated wafer: implements the firmware's hal::Wafer with exact per-PE SRAM accounting
// (each tensor and KV region on the PEs the host placed it), weight
// storage in host memory, functional (LlamaEngine) or shape-only execution of a whole model or
// of one stage of a model split by layers over several wafers, modeled device time and a thermal
// model driven by the injected Clock.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "board_sim/fabric_map.h"
#include "board_sim/functional_model.h"
#include "board_sim/latent_faults.h"
#include "wafer_model/preset.h"
#include "board_sim/sram_map.h"
#include "board_sim/thermal_model.h"
#include "wafer_model/timing_model.h"
#include "common/clock.h"
#include "firmware/hal/firmware_flash.h"
#include "firmware/hal/wafer.h"

namespace wafer::sim {

// Fault switches tests flip.
struct FaultPlan {
  bool fail_self_test = false;
  // The self-test fails while a new firmware image is on trial (its first boot after a Reset),
  // so the firmware rolls back to the previous slot.
  bool fail_trial_boot = false;
  // Faults present from power-on, as InjectFault would switch them: thermal runaway, power cap
  // and link CRC at once; PE stops and ECC errors once the first boot has harvested the fabric.
  // kFirmwareHang is the board runner's (the firmware hangs after its first reply); kProcessCrash
  // is refused here (inject it on a running wafer-sim).
  std::vector<fw::hal::FaultSpec> faults;
};

struct SimWaferOptions {
  std::string board_id = "sim-0";
  // Mixed into shape-only models' synthetic tokens (functional sampling uses only the
  // sequence's own seed, so it matches LlamaEngine run directly).
  uint64_t seed = 0;
  FaultPlan faults;
  // Optional, outlives the wafer: the self-test fails while the running image carries
  // kFailSelfTestMarker (or is on trial, with FaultPlan::fail_trial_boot).
  const fw::hal::FirmwareFlash* firmware = nullptr;
  // Real-time pacing: a Step returns no sooner than its modeled device time after it began, as
  // the real wafer would, so tokens reach clients at the modeled rate. Off: as fast as the host
  // can simulate. Needs a clock that moves by itself (not a FakeClock).
  bool realtime = false;
  // Set only by wafer-sim: called for an injected kProcessCrash; must not return (it _Exits).
  // Without it (an embedded board) kProcessCrash is UNIMPLEMENTED.
  std::function<void()> crash;
};

// Runtime PE faults lose data for real. A tensor's bytes lie over its placement row-major,
// ceil(byte_size / PEs) on each PE in turn; when a PE stops or reports an uncorrectable ECC
// error, the share of every tensor it held (of the model ContentsOfPe names) becomes NaN: in the
// functional engine (LlamaEngine::PoisonTensor), and in bytes staged but not yet committed. The
// NaN spreads through the next forward pass, so a model stepped without repair samples wrong
// tokens (greedy: token 0). KV caches are left intact: the firmware reports kv_cache_lost and
// the host prefills those sequences again, which the simulated cache does not need.
//
// Repair: WriteTensor on a committed functional model stages a tensor's new bytes, and
// CommitModel on a committed model installs every tensor so staged (LlamaEngine::ReplaceTensor);
// the firmware decides when both are allowed. On a shape-only model a repair has nothing to
// install.
//
// Host memory follows the commands, not the model (see FunctionalModel): WriteTensor converts
// each chunk into the engine's layout as it arrives, CommitModel converts nothing and takes no
// KV cache, and each slot's KV cache is taken by the first step that uses the slot. SRAM is
// accounted as before: all of it, weights and KV regions, at BeginModel. A shape-only model takes
// no host memory for weights or KV cache at all.

// Not thread-safe; driven by the firmware's superloop thread.
class SimWafer final : public fw::hal::Wafer {
 public:
  // `clock` outlives this.
  SimWafer(wafer_model::Preset preset, const Clock& clock, SimWaferOptions options);
  ~SimWafer() override;

  fw::hal::WaferInfo Info() const override;
  Status SelfTest() override;
  Status BeginModel(const fw::hal::ModelManifest& manifest) override;
  // Beyond hal::Wafer's codes: RESOURCE_EXHAUSTED when the host has no memory for the tensor,
  // FAILED_PRECONDITION on a shape-only model.
  Status WriteTensor(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                     std::span<const std::byte> data) override;
  // INVALID_ARGUMENT also when a tensor of a functional model is not fully written;
  // RESOURCE_EXHAUSTED when the engine cannot be built.
  Status CommitModel(uint32_t model_id) override;
  Status UnloadModel(uint32_t model_id) override;
  Status RunStep(const fw::hal::StepRequest& request, std::span<fw::hal::SeqOutcome> outcomes,
                 DeviceTime& time) override;
  void ReadSensors(fw::hal::SensorReadout& out) override;
  void PowerCycle() override;
  fw::hal::PhysicalGeometry Geometry() const override { return fabric_.geometry(); }
  uint32_t ReadRowFuses(uint32_t row) const override { return fabric_.Defects(row); }
  Status ProgramHarvest(std::span<const uint32_t> row_map) override;
  Status RemapPe(uint32_t row, uint32_t col) override;
  fw::hal::PeContents ContentsOfPe(uint32_t row, uint32_t col,
                                   std::span<uint32_t> tensors) const override;
  size_t PollEvents(std::span<fw::hal::HwEvent> out) override;
  void Halt() override { thermal_.SetHalted(true); }
  // kSramStuckBit and kFabricLink add a latent fault (see LatentFaults): FAILED_PRECONDITION
  // before the harvest, INVALID_ARGUMENT for coordinates outside the rectangle, an address not
  // below sram_per_pe (it is rounded down to its 8-byte word) or a link that does not exist
  // (value other than 0 east or 1 south, east of the last column, south of the last row).
  Status InjectFault(const fw::hal::FaultSpec& fault) override;
  bool TakeLinkCrcError() override;

  // Built-in self-tests (sim_wafer_diag.cc). Beyond hal::Wafer's codes: FAILED_PRECONDITION
  // before the harvest; UNAVAILABLE for TestSram and TestFabricLinks while the clocks are halted.
  // Failures are latent faults, and dead PEs without a spare (FabricMap::IsDead: their hits say
  // failed_before, a link's too when either end is such a PE). Device time is modeled from the
  // preset at the slowest region's clock; nothing sleeps.
  Status TestSram(uint32_t first_row, uint32_t row_count, bool unused_only,
                  std::span<fw::hal::DiagHit> hits, fw::hal::DiagRun& run) override;
  Status TestFabricLinks(uint32_t first_row, uint32_t row_count,
                         std::span<fw::hal::DiagHit> hits, fw::hal::DiagRun& run) override;
  // Region r covers usable rows [ceil(ry * H / dies_y), ceil((ry + 1) * H / dies_y)) and columns
  // likewise over dies_x, with ry = r / dies_x (row-major, as the thermal model numbers them). A PE
  // with a stuck bit adds KnownAnswerPerPe() ^ 1, a dead PE 0, and a failing link with both ends
  // in the region flips bit 63 of the sum (once).
  Status RunKnownAnswer(uint32_t region, uint64_t& answer, uint64_t& pes,
                        int64_t& device_ns) override;
  // FAILED_PRECONDITION before the harvest. Also forgets the PE's latent faults.
  Status RetirePe(uint32_t row, uint32_t col) override;
  // Die region of usable PE (row, col) under the split RunKnownAnswer describes.
  uint32_t RegionOf(uint32_t row, uint32_t col) const;

  // SRAM the usable PEs hold: usable PEs * sram_per_pe (the nominal rectangle until harvested).
  uint64_t sram_total_bytes() const;
  const FabricMap& fabric() const { return fabric_; }
  const ThermalModel& thermal() const { return thermal_; }
  const LatentFaults& latent_faults() const { return latent_; }

  // Host memory the simulation holds for its models (not their SRAM: see sram_used_bytes), and
  // the weight bytes converted into the engine's layout so far (by WriteTensor; CommitModel
  // converts none). Over the models loaded now.
  struct HostUsage {
    uint64_t weight_bytes = 0;
    uint64_t kv_bytes = 0;
    uint64_t weight_bytes_converted = 0;
  };
  HostUsage host_usage() const;
  // Host bytes of slot `slot`'s KV cache in model `model_id`: 0 until a step uses the slot (and
  // for a shape-only model, an unknown model or slot).
  uint64_t kv_host_bytes(uint32_t model_id, uint32_t slot) const;

  // Bytes a firmware image can carry to make the simulated self-test fail when it runs: a
  // stand-in for an image that crashes on boot.
  static constexpr std::string_view kFailSelfTestMarker = "WAFERFW:FAIL-SELF-TEST";

  // KV-cache bytes a model reserves: slots * context * layers * 2 (K, V) * kv_heads * head_dim
  // * 2 bytes (16-bit KV).
  static uint64_t KvCacheBytes(const ModelArch& arch, uint32_t slots, uint32_t context);
  uint64_t sram_used_bytes() const { return sram_.used_bytes(); }
  const SramMap& sram() const { return sram_; }
  const wafer_model::Preset& preset() const { return preset_; }

 private:
  struct Model;
  struct SeqRun;
  wafer_model::WaferStages StagesOf(const Model& model,
                                    std::span<const fw::hal::KvRegion> kv) const;
  Status RunSeqs(Model& model, std::span<SeqRun> runs, DeviceTime& time);
  // Sizes the SRAM map to the usable rectangle, empty.
  void ResetSram();
  Status ApplyFault(const fw::hal::FaultSpec& fault);
  // The model with a tensor or KV region on usable PE (row, col) (the first by id), or nullptr:
  // the model ContentsOfPe reports.
  Model* OwnerOfPe(uint32_t row, uint32_t col) const;
  // The PE's SRAM is gone: its share of every tensor of OwnerOfPe that it held reads NaN.
  void LoseSram(uint32_t row, uint32_t col);
  // The usable rows [first_row, end) a self-test covers after clipping, or its refusal.
  Status DiagRows(uint32_t first_row, uint32_t row_count, uint32_t& end);
  // Nanoseconds `cycles` take at the slowest region's clock.
  int64_t CyclesToNs(double cycles) const;

  wafer_model::Preset preset_;
  const Clock& clock_;
  SimWaferOptions options_;
  wafer_model::TimingModel timing_;
  ThermalModel thermal_;
  FabricMap fabric_;
  LatentFaults latent_;  // Survives PowerCycle: the faults are in the hardware.
  std::map<uint32_t, std::unique_ptr<Model>> models_;
  SramMap sram_;  // Per-PE occupancy of the usable rectangle.
  std::deque<fw::hal::HwEvent> events_;
  uint64_t link_crc_pending_ = 0;
  uint64_t ecc_correctable_ = 0;
  uint64_t ecc_uncorrectable_ = 0;
  bool plan_pe_faults_applied_ = false;
};

}  // namespace wafer::sim

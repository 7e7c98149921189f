// The simulated wafer: implements the firmware's hal::Wafer with exact SRAM accounting, weight
// storage in host memory, functional (LlamaEngine) or shape-only execution, modeled device time
// and a thermal model driven by the injected Clock.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "board_sim/llama/llama_engine.h"
#include "board_sim/preset.h"
#include "board_sim/thermal_model.h"
#include "board_sim/timing_model.h"
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
};

// Not thread-safe; driven by the firmware's superloop thread.
class SimWafer final : public fw::hal::Wafer {
 public:
  // `clock` outlives this.
  SimWafer(Preset preset, const Clock& clock, SimWaferOptions options);
  ~SimWafer() override;

  fw::hal::WaferInfo Info() const override;
  Status SelfTest() override;
  Status BeginModel(const fw::hal::ModelManifest& manifest) override;
  Status WriteTensor(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                     std::span<const std::byte> data) override;
  Status CommitModel(uint32_t model_id) override;
  Status UnloadModel(uint32_t model_id) override;
  Status RunStep(const fw::hal::StepRequest& request, std::span<fw::hal::SeqOutcome> outcomes,
                 fw::hal::DeviceTime& time) override;
  void ReadSensors(fw::hal::SensorReadout& out) override;
  void PowerCycle() override;

  // Bytes a firmware image can carry to make the simulated self-test fail when it runs: a
  // stand-in for an image that crashes on boot.
  static constexpr std::string_view kFailSelfTestMarker = "WAFERFW:FAIL-SELF-TEST";

  // KV-cache bytes a model reserves: slots * context * layers * 2 (K, V) * kv_heads * head_dim
  // * 2 bytes (16-bit KV).
  static uint64_t KvCacheBytes(const fw::hal::ModelArch& arch, uint32_t slots, uint32_t context);
  uint64_t sram_used_bytes() const { return sram_used_; }
  const Preset& preset() const { return preset_; }

 private:
  struct Model;
  struct SeqRun;
  Status RunSeqs(Model& model, std::span<SeqRun> runs, fw::hal::DeviceTime& time);

  Preset preset_;
  const Clock& clock_;
  SimWaferOptions options_;
  TimingModel timing_;
  ThermalModel thermal_;
  std::map<uint32_t, std::unique_ptr<Model>> models_;
  uint64_t sram_used_ = 0;
};

}  // namespace wafer::sim

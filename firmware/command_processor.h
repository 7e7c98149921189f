// The firmware core: applies one decoded command to the boot state machine, the weight-staging
// bookkeeping and the wafer, and fills in the reply. No heap, no exceptions, no FlatBuffers.
#pragma once

#include <array>
#include <cstdint>

#include "common/fixed_vector.h"
#include "firmware/boot_state_machine.h"
#include "firmware/command.h"
#include "firmware/error_log.h"
#include "firmware/firmware_slots.h"
#include "firmware/hal/wafer.h"
#include "firmware/platform.h"

namespace wafer::fw {

// Not thread-safe; owned by the superloop. Large (fixed buffers for a step's tokens and hidden
// states, over 1 MB): allocate it once at init.
class CommandProcessor {
 public:
  // Every device of `platform` outlives this.
  explicit CommandProcessor(const Platform& platform)
      : wafer_(platform.wafer), log_(platform.clock),
        slots_(platform.flash, platform.verifier, log_), clock_(platform.clock) {}

  // Handles `cmd` and fills `reply` (kind, code, detail and payload). Never fails: every error
  // becomes a reply code. Commands not allowed in the boot state get FAILED_PRECONDITION.
  void Handle(const Command& cmd, Reply& reply);

  // Health work between commands: drains the wafer's hardware events (stopped PEs, ECC) into
  // the error log and the fault reports, and watches the temperatures (throttle warning, trip at
  // the critical one: clocks halted, state Faulted, a kFatal record). Handle() runs it first.
  // Does nothing while the firmware is hung.
  void Poll();

  // Asks the link PHY whether the frame just received failed its CRC; when it did, counts and
  // logs it and returns true (the frame must not be decoded).
  bool FrameFailedCrc();

  // True after an injected firmware hang: the superloop must answer nothing but a Reset, which
  // models the board's reset line (see FirmwareLoop).
  bool hung() const { return hung_; }

  // Where model `model_id` hands its hidden states on (BeginModel.next_stage).
  struct NextStageInfo {
    std::span<const char> endpoint;
    uint32_t stages = 0;
    uint32_t timeout_ms = 0;
    ModelStage stage;  // This board's stage of the model.
    bool shape_only = false;
  };
  // True, with `out` filled, when `model_id` is committed and has a next stage on another board:
  // a Step of it then runs through the pipeline (see StagePipeline).
  bool NextStageOf(uint32_t model_id, NextStageInfo& out) const;

  // Runs `step` on this board's stage alone, as Handle runs a Step (the same checks, boot state
  // included, and the same failures logged), without building a reply: `outcomes` then holds
  // one entry per seq, valid until the next Step.
  Status RunStage(const hal::StepRequest& step, std::span<const hal::SeqOutcome>& outcomes,
                  DeviceTime& time, const char*& detail);

  BootState state() const { return boot_.state(); }
  GeometrySummary Geometry() const;
  uint64_t steps() const { return steps_; }
  const ErrorLog& error_log() const { return log_; }
  uint32_t active_firmware_slot() const { return slots_.active_slot(); }

 private:
  // A tensor a PE fault destroyed, and how much of it has been rewritten since (in order from
  // offset 0, as in staging).
  struct RestageTensor {
    uint32_t index = 0;
    uint64_t byte_size = 0;
    uint64_t written = 0;
  };
  // What the firmware keeps of each model: enough to check a Step against the model's stage,
  // and to repair it in place after a PE fault (see HandleRepair in the .cc).
  struct ModelEntry {
    uint32_t id = 0;
    bool committed = false;
    bool data_lost = false;  // A PE holding its data failed: Step fails until re-staged.
    bool shape_only = false;
    uint32_t hidden_size = 0;
    ModelStage stage;
    // BeginModel.next_stage (next_endpoint_bytes 0: none).
    std::array<char, kMaxEndpointBytes> next_endpoint{};
    uint32_t next_endpoint_bytes = 0;
    uint32_t stages = 0;
    uint32_t next_timeout_ms = 0;
    uint32_t tensor_count = 0;
    std::array<uint64_t, kMaxTensors> tensor_bytes{};  // Byte size of each manifest tensor.
    // The tensors lost since the last repair (none for a shape-only model: nothing is written).
    uint32_t restage_count = 0;
    std::array<RestageTensor, kMaxRestageTensors> restage{};
    // Reasons a repair in place is impossible (the model must be unloaded and loaded again):
    // more lost tensors than `restage` holds, or a PE under it failed without a spare.
    bool restage_overflow = false;
    bool unremapped_pe = false;
  };
  // Bytes written so far of each tensor of the model being staged. Chunks of one tensor arrive
  // in order; a chunk may repeat bytes already written (a retry) but may not leave a gap.
  struct TensorProgress {
    uint64_t byte_size = 0;
    uint64_t written = 0;
  };

  // Boots from PowerOn through the stages to Ready or Faulted, rebooting into the other firmware
  // slot when the image that ran failed (see RunBootStages and FirmwareSlots).
  void HandleBoot(Reply& reply);
  // Applies a boot event and logs the edge (or the rejection).
  Status StepBoot(BootEvent event);
  // REQUIRES: state SelfTest. Runs the boot stages in order, stepping the machine through each:
  // the wafer self-test, the running image's verification (FirmwareSlots::VerifyRunning) and the
  // defect remap (Harvest). Stops at the first failure, which is logged (kError) and takes the
  // machine to Faulted. Returns the state whose stage failed (kSelfTest, kVerifyImage, kRemap),
  // or kReady; `detail` names the failure.
  BootState RunBootStages(const char*& detail);
  void HandleReadErrorLog(const Command& cmd, Reply& reply);
  void LogStepFailure(const hal::StepRequest& step, Status status);
  Status HandleBeginModel(const hal::ModelManifest& manifest, const char*& detail);
  Status HandleWriteWeights(const WriteWeightsArgs& write, const char*& detail);
  Status HandleCommit(uint32_t model_id, const char*& detail);
  // CommitModel of a committed model that lost data: checks that every lost tensor was fully
  // rewritten, has the wafer install them and clears data_lost. Returns OK,
  // FAILED_PRECONDITION (a tensor not fully rewritten, or a loss that cannot be repaired in
  // place) or the wafer's code, with `detail` saying why.
  Status HandleRepair(ModelEntry& model, const char*& detail);
  // Records that `model` lost the tensors of `rec` (remapped or not).
  void MarkLost(ModelEntry& model, const FaultRecord& rec, uint32_t tensors_on_pe);
  // The entry of tensor `index` in `model`'s lost tensors, or nullptr.
  static RestageTensor* FindRestage(ModelEntry& model, uint32_t index);
  Status HandleUnload(uint32_t model_id, const char*& detail);
  Status HandleStep(const hal::StepRequest& step, Reply& reply, const char*& detail);
  // Checks every seq of `step` against the stage rules of `model` (see HandleStep in the .cc)
  // and sets up `outcomes_` with token and hidden buffers for the first step.seqs.size() seqs.
  // Returns OK, INVALID_ARGUMENT or RESOURCE_EXHAUSTED, with `detail` saying why.
  Status PrepareOutcomes(const ModelEntry& model, const hal::StepRequest& step,
                         const char*& detail);
  void HandleReset();
  // The defect remap: reads the fuses, drops rows whose defects exceed the spares and programs
  // the row shifters. `detail` names a failure.
  // Returns:
  //   OK                 - harvested; Geometry() reports the usable rectangle.
  //   INTERNAL           - the wafer reports an impossible geometry.
  //   RESOURCE_EXHAUSTED - no usable row: every row has more defects than spares.
  //   (ProgramHarvest's code) - the row shifters could not be programmed.
  Status Harvest(const char*& detail);
  // A PE failed (stopped, lost its data, or retired by a diagnostic): remaps it onto a spare when
  // one is left, counts it, marks its model's tensors lost, logs kPeFailed and records a fault
  // report. Returns true when a spare took its place.
  bool HandlePeFault(hal::FaultKind kind, uint32_t row, uint32_t col);
  void HandleHwEvent(const hal::HwEvent& event);
  void CheckThermal();
  void HandleInjectFault(const hal::FaultSpec& fault, Reply& reply);
  void HandleReadFaults(uint64_t from_sequence, Reply& reply);
  // Diagnostics (command_processor_diag.cc). Runs one test and fills reply.diagnostic and
  // reply.findings; retires the failing PEs of kSramAll and kFabricLinks through HandlePeFault.
  // Returns:
  //   OK                  - the test ran (failures are in the reply, not the code).
  //   FAILED_PRECONDITION - the board is not Ready and harvested.
  //   INVALID_ARGUMENT    - test kNone or row_count 0.
  //   OUT_OF_RANGE        - first_row (first region) is past the board's last.
  //   (the wafer's code)  - the wafer could not run it (UNAVAILABLE: clocks stopped).
  Status HandleRunDiagnostic(const DiagnosticArgs& args, Reply& reply, const char*& detail);
  // kSramUnused, kSramAll or kFabricLinks over rows; returns the findings written.
  Status RunPeDiagnostic(const DiagnosticArgs& args, DiagnosticSummary& out, size_t& found);
  // kKnownAnswer over regions; returns the findings written.
  Status RunKnownAnswerDiagnostic(const DiagnosticArgs& args, DiagnosticSummary& out,
                                  size_t& found);
  ModelEntry* FindModel(uint32_t id);
  const ModelEntry* FindModel(uint32_t id) const;

  hal::Wafer& wafer_;
  ErrorLog log_;
  FirmwareSlots slots_;
  BootStateMachine boot_;
  FixedVector<ModelEntry, kMaxModels> models_;
  bool staging_ = false;
  uint32_t staging_id_ = 0;
  FixedVector<TensorProgress, kMaxTensors> progress_;
  std::array<hal::SeqOutcome, kMaxSeqsPerStep> outcomes_{};
  std::array<uint32_t, kMaxStepTokens> tokens_{};
  std::array<float, kMaxStepHiddenValues> hidden_{};  // Hidden states out of a non-head stage.
  std::array<LogRecord, kMaxLogRecordsPerReply> log_out_{};
  uint64_t steps_ = 0;

  // Harvest state (valid while harvested_).
  bool harvested_ = false;
  hal::PhysicalGeometry phys_{};
  uint32_t usable_height_ = 0;
  uint64_t failed_pes_ = 0;
  uint64_t runtime_failed_ = 0;
  uint64_t runtime_remaps_ = 0;
  std::array<uint32_t, hal::kMaxFabricRows> row_map_{};        // Physical -> usable row.
  std::array<uint32_t, hal::kMaxFabricRows> usable_to_phys_{};  // Usable -> physical row.
  std::array<uint16_t, hal::kMaxFabricRows> row_failed_{};
  std::array<uint16_t, hal::kMaxFabricRows> spares_left_{};
  std::array<uint32_t, hal::kMaxFabricRows> dropped_{};
  uint32_t dropped_count_ = 0;

  // Fault reports: a ring of the newest kMaxFaultReports.
  std::array<FaultRecord, kMaxFaultReports> faults_{};
  size_t faults_head_ = 0;
  size_t faults_size_ = 0;
  uint64_t faults_next_sequence_ = 1;
  std::array<FaultRecord, kMaxFaultReports> faults_out_{};

  // Diagnostics: what the wafer's self-test found, and the reply's findings.
  std::array<hal::DiagHit, kMaxDiagFindings> diag_hits_{};
  std::array<DiagFinding, kMaxDiagFindings> diag_findings_{};

  hal::SensorReadout sensors_{};
  bool hung_ = false;
  bool tripped_ = false;
  bool throttle_logged_ = false;
  uint64_t link_crc_errors_ = 0;
  const Clock& clock_;
};

}  // namespace wafer::fw

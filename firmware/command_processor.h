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

// Not thread-safe; owned by the superloop. Large (fixed buffers for a step's tokens): allocate
// it once at init.
class CommandProcessor {
 public:
  // Every device of `platform` outlives this.
  explicit CommandProcessor(const Platform& platform)
      : wafer_(platform.wafer), log_(platform.clock),
        slots_(platform.flash, platform.verifier, log_) {}

  // Handles `cmd` and fills `reply` (kind, code, detail and payload). Never fails: every error
  // becomes a reply code. Commands not allowed in the boot state get FAILED_PRECONDITION.
  void Handle(const Command& cmd, Reply& reply);

  BootState state() const { return boot_.state(); }
  uint64_t steps() const { return steps_; }
  const ErrorLog& error_log() const { return log_; }
  uint32_t active_firmware_slot() const { return slots_.active_slot(); }

 private:
  struct ModelEntry {
    uint32_t id = 0;
    bool committed = false;
  };
  // Bytes written so far of each tensor of the model being staged. Chunks of one tensor arrive
  // in order; a chunk may repeat bytes already written (a retry) but may not leave a gap.
  struct TensorProgress {
    uint64_t byte_size = 0;
    uint64_t written = 0;
  };

  void HandleBoot(Reply& reply);
  // Applies a boot event and logs the edge (or the rejection).
  Status StepBoot(BootEvent event);
  // Runs the self-test and the edge it leads to. True when it passed.
  bool SelfTestAndSettle();
  void HandleReadErrorLog(const Command& cmd, Reply& reply);
  void LogStepFailure(const hal::StepRequest& step, Status status);
  Status HandleBeginModel(const hal::ModelManifest& manifest, const char*& detail);
  Status HandleWriteWeights(const WriteWeightsArgs& write, const char*& detail);
  Status HandleCommit(uint32_t model_id, const char*& detail);
  Status HandleUnload(uint32_t model_id, const char*& detail);
  Status HandleStep(const hal::StepRequest& step, Reply& reply, const char*& detail);
  void HandleReset();
  ModelEntry* FindModel(uint32_t id);

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
  std::array<LogRecord, kMaxLogRecordsPerReply> log_out_{};
  uint64_t steps_ = 0;
};

}  // namespace wafer::fw

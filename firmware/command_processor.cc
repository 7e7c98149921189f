#include "firmware/command_processor.h"

#include "common/crc32c.h"

namespace wafer::fw {

void CommandProcessor::Handle(const Command& cmd, Reply& reply) {
  reply = Reply{};
  reply.command_id = cmd.command_id;
  reply.kind = ReplyKind::kAck;
  if (!IsCommandAllowed(boot_.state(), cmd.kind)) {
    reply.code = StatusCode::kFailedPrecondition;
    reply.detail = "command not allowed in the current boot state";
    reply.state = boot_.state();
    return;
  }
  const char* detail = "";
  Status status;
  switch (cmd.kind) {
    case CommandKind::kIdentify:
      reply.kind = ReplyKind::kIdentify;
      reply.info = wafer_.Info();
      reply.state = boot_.state();
      reply.active_firmware_slot = slots_.active_slot();
      return;
    case CommandKind::kBoot:
      HandleBoot(reply);
      return;
    case CommandKind::kBeginModel:
      status = HandleBeginModel(cmd.manifest, detail);
      break;
    case CommandKind::kWriteWeights:
      status = HandleWriteWeights(cmd.write, detail);
      break;
    case CommandKind::kCommitModel:
      status = HandleCommit(cmd.model_id, detail);
      break;
    case CommandKind::kUnloadModel:
      status = HandleUnload(cmd.model_id, detail);
      break;
    case CommandKind::kStep:
      status = HandleStep(cmd.step, reply, detail);
      if (status.ok()) {
        reply.kind = ReplyKind::kStep;
        return;
      }
      LogStepFailure(cmd.step, status);
      break;
    case CommandKind::kReadTelemetry:
      reply.kind = ReplyKind::kTelemetry;
      reply.state = boot_.state();
      reply.steps = steps_;
      wafer_.ReadSensors(reply.sensors);
      return;
    case CommandKind::kReset:
      HandleReset();
      break;
    case CommandKind::kHeartbeat:
      reply.kind = ReplyKind::kHeartbeat;
      reply.heartbeat_sent_ns = cmd.heartbeat_sent_ns;
      return;
    case CommandKind::kReadErrorLog:
      HandleReadErrorLog(cmd, reply);
      return;
    case CommandKind::kBeginFirmwareImage:
      status = slots_.Begin(cmd.image, detail);
      break;
    case CommandKind::kWriteFirmwareChunk:
      status = slots_.WriteChunk(cmd.image_chunk, detail);
      break;
    case CommandKind::kCommitFirmwareImage:
      status = slots_.Commit(cmd.image_slot, detail);
      break;
  }
  reply.code = status.code();
  reply.detail = detail;
}

Status CommandProcessor::StepBoot(BootEvent event) {
  const BootState from = boot_.state();
  Status status = boot_.Step(event);
  if (status.ok()) {
    if (boot_.state() != from) {
      log_.Append(Severity::kInfo, LogCode::kBootTransition,
                  {static_cast<uint64_t>(from), static_cast<uint64_t>(boot_.state()),
                   static_cast<uint64_t>(event)});
    }
  } else {
    log_.Append(Severity::kWarning, LogCode::kBootRejected,
                {static_cast<uint64_t>(from), static_cast<uint64_t>(event)});
  }
  return status;
}

bool CommandProcessor::SelfTestAndSettle() {
  const Status self_test = wafer_.SelfTest();
  if (!self_test.ok()) {
    log_.Append(Severity::kError, LogCode::kSelfTestFailed,
                {static_cast<uint64_t>(self_test.code()), slots_.active_slot()});
  }
  StepBoot(self_test.ok() ? BootEvent::kSelfTestPassed : BootEvent::kSelfTestFailed)
      .IgnoreError();  // Always valid in SelfTest.
  return self_test.ok();
}

void CommandProcessor::HandleBoot(Reply& reply) {
  reply.kind = ReplyKind::kBoot;
  if (boot_.state() == BootState::kReady) {  // Idempotent.
    StepBoot(BootEvent::kBoot).IgnoreError();
    reply.self_test_passed = true;
    reply.state = boot_.state();
    return;
  }
  Status status = StepBoot(BootEvent::kBoot);
  if (!status.ok()) {
    reply.code = status.code();
    reply.detail = "boot not valid in this state";
    reply.state = boot_.state();
    return;
  }
  bool passed = SelfTestAndSettle();
  const char* detail = passed ? "" : "self-test failed";
  if (slots_.OnSelfTest(passed) == BootVerdict::kRolledBack) {
    // The new image failed its first boot: reboot into the previous one, once.
    HandleReset();
    StepBoot(BootEvent::kBoot).IgnoreError();  // PowerOn -> SelfTest is always valid.
    passed = SelfTestAndSettle();
    slots_.OnSelfTest(passed);  // Settled: the fallback is not on trial.
    detail = passed ? "new firmware image failed self-test; rolled back to the previous slot"
                    : "new firmware image failed self-test; the previous slot failed too";
  }
  reply.self_test_passed = passed;
  reply.code = passed ? StatusCode::kOk : StatusCode::kFailedPrecondition;
  reply.detail = detail;
  reply.state = boot_.state();
}

void CommandProcessor::LogStepFailure(const hal::StepRequest& step, Status status) {
  // A request the host got wrong is a warning; the wafer failing a valid step is an error.
  const bool host_error = status.code() == StatusCode::kInvalidArgument ||
                          status.code() == StatusCode::kNotFound ||
                          status.code() == StatusCode::kFailedPrecondition ||
                          status.code() == StatusCode::kResourceExhausted;
  log_.Append(host_error ? Severity::kWarning : Severity::kError, LogCode::kStepFailed,
              {step.model_id, static_cast<uint64_t>(status.code()), step.seqs.size()});
}

void CommandProcessor::HandleReadErrorLog(const Command& cmd, Reply& reply) {
  size_t max = log_out_.size();
  if (cmd.log_max_records != 0 && cmd.log_max_records < max) max = cmd.log_max_records;
  const LogReadResult r =
      log_.Read(cmd.log_from_sequence, std::span<LogRecord>(log_out_.data(), max));
  reply.kind = ReplyKind::kErrorLog;
  reply.log_records = std::span<const LogRecord>(log_out_.data(), r.count);
  reply.log_next_sequence = r.next_sequence;
  reply.log_dropped = r.dropped;
  reply.log_overwritten = log_.overwritten();
}

CommandProcessor::ModelEntry* CommandProcessor::FindModel(uint32_t id) {
  for (ModelEntry& m : models_) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

Status CommandProcessor::HandleBeginModel(const hal::ModelManifest& manifest,
                                          const char*& detail) {
  if (FindModel(manifest.model_id) != nullptr) {
    detail = "model id already on the board";
    return AlreadyExists();
  }
  if (staging_) {
    detail = "another model is being staged";
    return FailedPrecondition();
  }
  if (models_.full()) {
    detail = "too many models on the board";
    return ResourceExhausted();
  }
  if (manifest.tensors.size() > kMaxTensors) {
    detail = "too many tensors";
    return ResourceExhausted();
  }
  if (manifest.shape_only ? false : manifest.tensors.empty()) {
    detail = "a functional model needs tensors";
    return InvalidArgument();
  }
  Status status = wafer_.BeginModel(manifest);
  if (!status.ok()) {
    detail = status.code() == StatusCode::kResourceExhausted
                 ? "weights plus KV cache exceed the free SRAM or slots"
                 : "wafer rejected the manifest";
    return status;
  }
  progress_.clear();
  for (const hal::TensorSpec& t : manifest.tensors) {
    // Cannot fail: the size was checked above.
    progress_.push_back(TensorProgress{t.byte_size, manifest.shape_only ? t.byte_size : 0})
        .IgnoreError();
  }
  models_.push_back(ModelEntry{manifest.model_id, false}).IgnoreError();
  staging_ = true;
  staging_id_ = manifest.model_id;
  return OkStatus();
}

Status CommandProcessor::HandleWriteWeights(const WriteWeightsArgs& write, const char*& detail) {
  if (!staging_ || staging_id_ != write.model_id) {
    detail = "model is not being staged";
    return FailedPrecondition();
  }
  const auto out_of_range = [&](const char* why) {
    log_.Append(Severity::kWarning, LogCode::kChunkOutOfRange,
                {write.model_id, write.tensor_index, write.offset, write.data.size()});
    detail = why;
    return OutOfRange();
  };
  if (write.tensor_index >= progress_.size()) return out_of_range("tensor_index out of range");
  TensorProgress& t = progress_[write.tensor_index];
  if (write.data.empty() || write.data.size() > kMaxChunkBytes) {
    return out_of_range("chunk size out of range");
  }
  if (write.offset > t.byte_size || write.data.size() > t.byte_size - write.offset) {
    return out_of_range("chunk extends past the tensor's end");
  }
  const uint32_t actual = Crc32c(write.data);
  if (actual != write.crc32c) {
    log_.Append(Severity::kWarning, LogCode::kChunkCrcMismatch,
                {write.model_id, write.tensor_index, write.offset,
                 (uint64_t{write.crc32c} << 32) | actual});
    detail = "chunk CRC-32C mismatch; nothing written";
    return DataLoss();
  }
  if (write.offset > t.written) {
    detail = "chunk leaves a gap; tensors are written in order";
    return FailedPrecondition();
  }
  Status status = wafer_.WriteTensor(write.model_id, write.tensor_index, write.offset, write.data);
  if (!status.ok()) {
    detail = "wafer rejected the write";
    return status;
  }
  const uint64_t end = write.offset + write.data.size();
  if (end > t.written) t.written = end;
  return OkStatus();
}

Status CommandProcessor::HandleCommit(uint32_t model_id, const char*& detail) {
  ModelEntry* model = FindModel(model_id);
  if (model == nullptr) {
    detail = "unknown model";
    return NotFound();
  }
  if (model->committed) {
    detail = "model already committed";
    return FailedPrecondition();
  }
  for (const TensorProgress& t : progress_) {
    if (t.written != t.byte_size) {
      detail = "a tensor is not fully written";
      return FailedPrecondition();
    }
  }
  Status status = wafer_.CommitModel(model_id);
  if (!status.ok()) {
    detail = "wafer rejected the weights";
    return status;
  }
  model->committed = true;
  staging_ = false;
  progress_.clear();
  return OkStatus();
}

Status CommandProcessor::HandleUnload(uint32_t model_id, const char*& detail) {
  for (size_t i = 0; i < models_.size(); ++i) {
    if (models_[i].id != model_id) continue;
    wafer_.UnloadModel(model_id).IgnoreError();  // The firmware's record is authoritative.
    if (staging_ && staging_id_ == model_id) {
      staging_ = false;
      progress_.clear();
    }
    models_.swap_remove(i);
    return OkStatus();
  }
  detail = "unknown model";
  return NotFound();
}

Status CommandProcessor::HandleStep(const hal::StepRequest& step, Reply& reply,
                                    const char*& detail) {
  const ModelEntry* model = FindModel(step.model_id);
  if (model == nullptr) {
    detail = "unknown model";
    return NotFound();
  }
  if (!model->committed) {
    detail = "model is not committed";
    return FailedPrecondition();
  }
  if (step.seqs.empty()) {
    detail = "step has no sequences";
    return InvalidArgument();
  }
  if (step.seqs.size() > kMaxSeqsPerStep) {
    detail = "too many sequences in one step";
    return ResourceExhausted();
  }
  size_t used = 0;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const hal::SeqStepView& s = step.seqs[i];
    if (s.generate > kMaxStepTokens - used) {
      detail = "step generates too many tokens";
      return ResourceExhausted();
    }
    outcomes_[i] = hal::SeqOutcome{};
    outcomes_[i].slot = s.slot;
    outcomes_[i].token_buffer = std::span<uint32_t>(tokens_.data() + used, s.generate);
    used += s.generate;
  }
  std::span<hal::SeqOutcome> outcomes(outcomes_.data(), step.seqs.size());
  Status status = wafer_.RunStep(step, outcomes, reply.device_time);
  if (!status.ok()) {
    detail = status.code() == StatusCode::kInvalidArgument
                 ? "a slot is out of range or listed twice"
                 : "wafer failed the step";
    return status;
  }
  ++steps_;
  reply.outcomes = outcomes;
  return OkStatus();
}

void CommandProcessor::HandleReset() {
  log_.Append(Severity::kInfo, LogCode::kReset, {static_cast<uint64_t>(boot_.state())});
  StepBoot(BootEvent::kReset).IgnoreError();  // Valid in every state.
  slots_.OnReset();
  wafer_.PowerCycle();
  models_.clear();
  staging_ = false;
  progress_.clear();
  steps_ = 0;
}

}  // namespace wafer::fw

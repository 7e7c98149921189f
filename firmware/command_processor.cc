#include "firmware/command_processor.h"

#include "common/crc32c.h"

namespace wafer::fw {

void CommandProcessor::Handle(const Command& cmd, Reply& reply) {
  Poll();
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
      reply.geometry = Geometry();
      reply.info.fabric_width = reply.geometry.usable_width;
      reply.info.fabric_height = reply.geometry.usable_height;
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
      reply.thermal_trip = tripped_;
      reply.link_crc_errors = link_crc_errors_;
      reply.geometry = Geometry();
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
    case CommandKind::kReadFirmwareSlots:
      reply.kind = ReplyKind::kFirmwareSlots;
      slots_.Describe(reply.firmware_slots);
      return;
    case CommandKind::kRollbackFirmware:
      status = slots_.RequestRollback(detail);
      break;
    case CommandKind::kReadGeometry:
      reply.kind = ReplyKind::kGeometry;
      reply.geometry = Geometry();
      reply.row_failed = std::span<const uint16_t>(row_failed_.data(),
                                                   harvested_ ? phys_.rows : 0);
      reply.dropped_rows = std::span<const uint32_t>(dropped_.data(), dropped_count_);
      return;
    case CommandKind::kInjectFault:
      HandleInjectFault(cmd.fault, reply);
      return;
    case CommandKind::kReadFaults:
      HandleReadFaults(cmd.faults_from_sequence, reply);
      return;
    case CommandKind::kRunDiagnostic:
      status = HandleRunDiagnostic(cmd.diagnostic, reply, detail);
      if (status.ok()) {
        reply.kind = ReplyKind::kDiagnostic;
        return;
      }
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

BootState CommandProcessor::RunBootStages(const char*& detail) {
  // Every StepBoot below is the edge drawn for the state the machine is in: always valid.
  Status status = wafer_.SelfTest();
  if (!status.ok()) {
    log_.Append(Severity::kError, LogCode::kSelfTestFailed,
                {static_cast<uint64_t>(status.code()), slots_.active_slot()});
    StepBoot(BootEvent::kSelfTestFailed).IgnoreError();
    detail = "self-test failed";
    return BootState::kSelfTest;
  }
  StepBoot(BootEvent::kSelfTestPassed).IgnoreError();

  // Nothing else of the image runs before it is verified. VerifyRunning logs the reason.
  if (!slots_.VerifyRunning(detail).ok()) {
    StepBoot(BootEvent::kImageInvalid).IgnoreError();
    return BootState::kVerifyImage;
  }
  StepBoot(BootEvent::kImageVerified).IgnoreError();

  status = Harvest(detail);
  if (!status.ok()) {
    // board.fbs has no record of its own for a failed remap: it is logged as the self-test
    // failure it was part of before the remap became a state, with the status code that names
    // it (RESOURCE_EXHAUSTED: no usable row), and the transition record's event is kRemapFailed.
    log_.Append(Severity::kError, LogCode::kSelfTestFailed,
                {static_cast<uint64_t>(status.code()), slots_.active_slot()});
    StepBoot(BootEvent::kRemapFailed).IgnoreError();
    return BootState::kRemap;
  }
  StepBoot(BootEvent::kRemapDone).IgnoreError();
  return BootState::kReady;
}

namespace {

// The Boot reply's detail when the board reached Ready on the other slot after the image that
// ran first failed in `failed_in`.
const char* RolledBackDetail(BootState failed_in) {
  if (failed_in == BootState::kVerifyImage) {
    return "firmware image failed verification; rolled back to the other slot";
  }
  if (failed_in == BootState::kRemap) {
    return "new firmware image failed the defect remap; rolled back to the previous slot";
  }
  return "new firmware image failed self-test; rolled back to the previous slot";
}

}  // namespace

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
  const char* detail = "";
  BootState failed_in = RunBootStages(detail);
  BootState first_failure = BootState::kReady;
  // A rollback marks the slot that failed invalid, so this reboots at most once per slot; the
  // bound is a backstop.
  for (uint32_t boots = 1;; ++boots) {
    const BootVerdict verdict = failed_in == BootState::kVerifyImage
                                    ? slots_.OnImageInvalid()
                                    : slots_.OnBootResult(failed_in == BootState::kReady);
    if (verdict != BootVerdict::kRolledBack || boots > hal::kFirmwareSlots) break;
    if (first_failure == BootState::kReady) first_failure = failed_in;
    // The image failed: reboot into the other slot's, which goes through every stage too.
    HandleReset();
    StepBoot(BootEvent::kBoot).IgnoreError();  // PowerOn -> SelfTest is always valid.
    failed_in = RunBootStages(detail);
  }
  const bool ready = failed_in == BootState::kReady;
  if (ready && first_failure != BootState::kReady) detail = RolledBackDetail(first_failure);
  reply.self_test_passed = failed_in != BootState::kSelfTest;  // The last boot's self-test.
  reply.code = ready ? StatusCode::kOk : StatusCode::kFailedPrecondition;
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

const CommandProcessor::ModelEntry* CommandProcessor::FindModel(uint32_t id) const {
  for (const ModelEntry& m : models_) {
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
  if (manifest.tensors.empty()) {
    detail = "a model lists its tensors (a shape-only one too: their SRAM is reserved)";
    return InvalidArgument();
  }
  // The default stage is the whole model whatever the architecture says (the wafer checks the
  // architecture); a partial one must be a part of it. Whether the tensors and KV regions are
  // exactly the stage's is the wafer's check.
  if (!(manifest.stage == ModelStage{}) &&
      !StageIsValid(manifest.stage, manifest.arch.num_layers)) {
    detail = "stage not part of the model: no layer or past num_layers, embedding not at layer 0, "
             "or head not at the last layer";
    return InvalidArgument();
  }
  const hal::NextStage& next = manifest.next_stage;
  if (!next.endpoint.empty()) {
    if (next.endpoint.size() > kMaxEndpointBytes || next.stages < 2 ||
        next.stages > kMaxPipelineStages) {
      detail = "next_stage: endpoint longer than 255 bytes, or stages not 2..16";
      return InvalidArgument();
    }
    if (manifest.stage.has_head) {
      detail = "next_stage given to the stage with the head: it is the pipeline's last";
      return InvalidArgument();
    }
  }
  Status status = wafer_.BeginModel(manifest);
  if (!status.ok()) {
    detail = status.code() == StatusCode::kResourceExhausted
                 ? "a PE would hold more than its SRAM, or too many slots"
                 : "wafer rejected the manifest (shapes, placements, KV regions, stage tensors)";
    return status;
  }
  progress_.clear();
  // Built in place: an entry is large (its tensors' sizes), too large for a small stack.
  models_.emplace_back().IgnoreError();  // Cannot fail: fullness was checked above.
  ModelEntry& entry = models_[models_.size() - 1];
  entry.id = manifest.model_id;
  entry.shape_only = manifest.shape_only;
  entry.hidden_size = manifest.arch.hidden_size;
  entry.stage = manifest.stage;
  entry.next_endpoint_bytes = static_cast<uint32_t>(next.endpoint.size());
  for (size_t i = 0; i < next.endpoint.size(); ++i) entry.next_endpoint[i] = next.endpoint[i];
  entry.stages = next.stages;
  entry.next_timeout_ms = next.timeout_ms != 0 ? next.timeout_ms : 5000;
  entry.tensor_count = static_cast<uint32_t>(manifest.tensors.size());
  for (size_t i = 0; i < manifest.tensors.size(); ++i) {
    const hal::TensorSpec& t = manifest.tensors[i];
    entry.tensor_bytes[i] = t.byte_size;
    // Cannot fail: the size was checked above.
    progress_.push_back(TensorProgress{t.byte_size, manifest.shape_only ? t.byte_size : 0})
        .IgnoreError();
  }
  staging_ = true;
  staging_id_ = manifest.model_id;
  return OkStatus();
}

// WriteWeights goes to the model being staged or, to repair a committed model that lost data
// to a PE fault, to one of the tensors that model lost (the tensors its fault reports listed).
// A repair writes each lost tensor again from offset 0, in order, like staging; a chunk for a
// tensor the model did not lose is refused (FAILED_PRECONDITION): the model's other weights
// are intact and a repair must not touch them. Every other check is staging's.
Status CommandProcessor::HandleWriteWeights(const WriteWeightsArgs& write, const char*& detail) {
  const bool staging = staging_ && staging_id_ == write.model_id;
  ModelEntry* model = FindModel(write.model_id);
  const bool repairing = !staging && model != nullptr && model->committed && model->data_lost;
  if (!staging && !repairing) {
    detail = "model is not being staged, nor repaired after a PE fault";
    return FailedPrecondition();
  }
  const auto out_of_range = [&](const char* why) {
    log_.Append(Severity::kWarning, LogCode::kChunkOutOfRange,
                {write.model_id, write.tensor_index, write.offset, write.data.size()});
    detail = why;
    return OutOfRange();
  };
  const size_t tensors = staging ? progress_.size() : model->tensor_count;
  if (write.tensor_index >= tensors) return out_of_range("tensor_index out of range");
  RestageTensor* lost = repairing ? FindRestage(*model, write.tensor_index) : nullptr;
  if (repairing && lost == nullptr) {
    detail = model->shape_only
                 ? "a shape-only model has no weights to rewrite: CommitModel repairs it"
                 : "tensor was not lost to a PE fault: a repair rewrites only the tensors its "
                   "fault reports list";
    return FailedPrecondition();
  }
  // Staging's progress, or the repair's: bytes written in order from offset 0.
  const uint64_t byte_size = staging ? progress_[write.tensor_index].byte_size : lost->byte_size;
  uint64_t& written = staging ? progress_[write.tensor_index].written : lost->written;
  if (write.data.empty() || write.data.size() > kMaxChunkBytes) {
    return out_of_range("chunk size out of range");
  }
  if (write.offset > byte_size || write.data.size() > byte_size - write.offset) {
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
  if (write.offset > written) {
    detail = "chunk leaves a gap; tensors are written in order";
    return FailedPrecondition();
  }
  Status status = wafer_.WriteTensor(write.model_id, write.tensor_index, write.offset, write.data);
  if (!status.ok()) {
    detail = "wafer rejected the write";
    return status;
  }
  const uint64_t end = write.offset + write.data.size();
  if (end > written) written = end;
  return OkStatus();
}

Status CommandProcessor::HandleCommit(uint32_t model_id, const char*& detail) {
  ModelEntry* model = FindModel(model_id);
  if (model == nullptr) {
    detail = "unknown model";
    return NotFound();
  }
  if (model->committed) {
    if (model->data_lost) return HandleRepair(*model, detail);
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
  // A fault during staging leaves data_lost set: the model is repaired once committed.
  model->committed = true;
  staging_ = false;
  progress_.clear();
  return OkStatus();
}

// The repair completes when every tensor lost since the last repair (or the load) has been
// rewritten in full after the fault that destroyed it: a later fault on a tensor being
// rewritten starts it over. A shape-only model loses nothing that can be written, so its
// repair is this commit alone. KV caches are not the firmware's to restore: sequences whose
// cache lived on a failed PE must be prefilled again by the host (fault report kv_cache_lost).
Status CommandProcessor::HandleRepair(ModelEntry& model, const char*& detail) {
  if (model.unremapped_pe) {
    detail = "a PE under the model failed with no spare left in its row; unload the model and "
             "load it again";
    return FailedPrecondition();
  }
  if (model.restage_overflow) {
    detail = "the model lost more tensors than a repair tracks; unload and reload the model";
    return FailedPrecondition();
  }
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < model.restage_count; ++i) {
    const RestageTensor& t = model.restage[i];
    if (t.written != t.byte_size) {
      detail = "a tensor lost to a PE fault is not fully rewritten: write every tensor the "
               "model's fault reports list, then commit";
      return FailedPrecondition();
    }
    bytes += t.byte_size;
  }
  Status status = wafer_.CommitModel(model.id);
  if (!status.ok()) {
    detail = "wafer rejected the re-staged weights";
    return status;
  }
  log_.Append(Severity::kInfo, LogCode::kModelRepaired, {model.id, model.restage_count, bytes});
  model.data_lost = false;
  model.restage_count = 0;
  return OkStatus();
}

CommandProcessor::RestageTensor* CommandProcessor::FindRestage(ModelEntry& model,
                                                               uint32_t index) {
  for (uint32_t i = 0; i < model.restage_count; ++i) {
    if (model.restage[i].index == index) return &model.restage[i];
  }
  return nullptr;
}

void CommandProcessor::MarkLost(ModelEntry& model, const FaultRecord& rec,
                                uint32_t tensors_on_pe) {
  model.data_lost = true;
  if (!rec.remapped) model.unremapped_pe = true;
  if (model.shape_only) return;  // Its weights are synthetic: nothing to rewrite.
  // The report holds at most kMaxRestageTensors: a PE with more lost some the host is not told.
  if (tensors_on_pe > rec.tensor_count) model.restage_overflow = true;
  for (uint32_t i = 0; i < rec.tensor_count; ++i) {
    const uint32_t index = rec.tensors[i];
    if (index >= model.tensor_count) continue;  // Not the model's (the wafer is wrong).
    if (RestageTensor* t = FindRestage(model, index)) {
      t->written = 0;  // Lost again: rewritten bytes before this fault do not count.
      continue;
    }
    if (model.restage_count == model.restage.size()) {
      model.restage_overflow = true;
      continue;
    }
    model.restage[model.restage_count++] = RestageTensor{index, model.tensor_bytes[index], 0};
  }
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

bool CommandProcessor::NextStageOf(uint32_t model_id, NextStageInfo& out) const {
  const ModelEntry* model = FindModel(model_id);
  if (model == nullptr || !model->committed || model->next_endpoint_bytes == 0) return false;
  out.endpoint = std::span<const char>(model->next_endpoint.data(), model->next_endpoint_bytes);
  out.stages = model->stages;
  out.timeout_ms = model->next_timeout_ms;
  out.stage = model->stage;
  out.shape_only = model->shape_only;
  return true;
}

Status CommandProcessor::RunStage(const hal::StepRequest& step,
                                  std::span<const hal::SeqOutcome>& outcomes,
                                  DeviceTime& time, const char*& detail) {
  Poll();
  if (!IsCommandAllowed(boot_.state(), CommandKind::kStep)) {
    detail = "command not allowed in the current boot state";
    return FailedPrecondition();
  }
  Reply reply;
  Status status = HandleStep(step, reply, detail);
  if (!status.ok()) {
    LogStepFailure(step, status);
    return status;
  }
  outcomes = reply.outcomes;
  time = reply.device_time;
  return OkStatus();
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
  if (model->data_lost) {
    detail = "weights lost to a PE fault: rewrite the tensors ReadFaults lists and commit the "
             "model again (or unload and reload it)";
    return DataLoss();
  }
  if (step.seqs.empty()) {
    detail = "step has no sequences";
    return InvalidArgument();
  }
  if (step.seqs.size() > kMaxSeqsPerStep) {
    detail = "too many sequences in one step";
    return ResourceExhausted();
  }
  WAFER_RETURN_IF_ERROR(PrepareOutcomes(*model, step, detail));
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

// The stage rules, checked for every seq before the wafer sees any:
//   - a stage without the head generates nothing (generate 0): INVALID_ARGUMENT;
//   - a stage without the embedding generates at most 1 token (it cannot embed the token it
//     sampled to feed it back): INVALID_ARGUMENT;
//   - hidden_in holds input_tokens.size() * hidden_size values on a functional model's stage
//     without the embedding, and nothing anywhere else: INVALID_ARGUMENT;
//   - the generated tokens fit kMaxStepTokens, the hidden values in and out (each summed over
//     the seqs) kMaxStepHiddenValues: RESOURCE_EXHAUSTED.
// Each seq of a functional model's stage without the head gets a slice of hidden_ that holds its
// last-layer output, input_tokens.size() * hidden_size values.
Status CommandProcessor::PrepareOutcomes(const ModelEntry& model, const hal::StepRequest& step,
                                         const char*& detail) {
  const ModelStage& stage = model.stage;
  // A shape-only pipeline models the hops' time but carries no hidden states.
  const bool takes_hidden = !model.shape_only && !stage.has_embedding;
  const bool gives_hidden = !model.shape_only && !stage.has_head;
  size_t tokens_used = 0;
  size_t hidden_in = 0;
  size_t hidden_used = 0;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const hal::SeqStepView& s = step.seqs[i];
    if (s.generate > 0 && !stage.has_head) {
      detail = "a stage without the head generates no tokens: generate must be 0";
      return InvalidArgument();
    }
    if (s.generate > 1 && !stage.has_embedding) {
      detail = "a stage without the embedding generates at most 1 token per step";
      return InvalidArgument();
    }
    // Cannot overflow: the tokens arrived in one frame and hidden_size is 32 bits.
    const uint64_t row_values = uint64_t{s.input_tokens.size()} * model.hidden_size;
    if (s.hidden_in.size() != (takes_hidden ? row_values : 0)) {
      detail = takes_hidden
                   ? "hidden_in must hold hidden_size values for every input token"
                   : "hidden_in given to a stage with the embedding or to a shape-only model";
      return InvalidArgument();
    }
    if (s.generate > kMaxStepTokens - tokens_used) {
      detail = "step generates too many tokens";
      return ResourceExhausted();
    }
    const uint64_t out = gives_hidden ? row_values : 0;
    hidden_in += s.hidden_in.size();  // Bounded by the frame size.
    if (hidden_in > kMaxStepHiddenValues || out > kMaxStepHiddenValues - hidden_used) {
      detail = "step carries more hidden-state values in or out than Identify's limit";
      return ResourceExhausted();
    }
    outcomes_[i] = hal::SeqOutcome{};
    outcomes_[i].slot = s.slot;
    outcomes_[i].token_buffer = std::span<uint32_t>(tokens_.data() + tokens_used, s.generate);
    outcomes_[i].hidden_buffer =
        std::span<float>(hidden_.data() + hidden_used, static_cast<size_t>(out));
    tokens_used += s.generate;
    hidden_used += static_cast<size_t>(out);
  }
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
  harvested_ = false;
  runtime_failed_ = 0;
  runtime_remaps_ = 0;
  dropped_count_ = 0;
  hung_ = false;
  tripped_ = false;
  throttle_logged_ = false;
}

// --- Geometry, faults and health. ---

GeometrySummary CommandProcessor::Geometry() const {
  GeometrySummary g;
  const hal::PhysicalGeometry phys = harvested_ ? phys_ : wafer_.Geometry();
  g.physical_rows = phys.rows;
  g.physical_cols = phys.cols;
  g.spare_cols = phys.spare_cols;
  g.physical_pes = uint64_t{phys.rows} * phys.cols;
  g.usable_width = phys.cols > phys.spare_cols ? phys.cols - phys.spare_cols : 0;
  g.usable_height = harvested_ ? usable_height_ : phys.rows;
  g.usable_pes = uint64_t{g.usable_width} * g.usable_height;
  g.failed_pes = harvested_ ? failed_pes_ + runtime_failed_ : 0;
  g.healthy_pes = g.physical_pes - g.failed_pes;
  g.spare_pes = g.healthy_pes > g.usable_pes ? g.healthy_pes - g.usable_pes : 0;
  g.runtime_remaps = runtime_remaps_;
  g.runtime_failed = runtime_failed_;
  g.harvested = harvested_;
  return g;
}

Status CommandProcessor::Harvest(const char*& detail) {
  harvested_ = false;
  const hal::PhysicalGeometry phys = wafer_.Geometry();
  if (phys.rows == 0 || phys.rows > hal::kMaxFabricRows || phys.spare_cols >= phys.cols) {
    detail = "defect remap failed: the wafer reports an impossible fabric geometry";
    return Internal();
  }
  uint32_t kept = 0;
  uint64_t failed = 0;
  dropped_count_ = 0;
  for (uint32_t r = 0; r < phys.rows; ++r) {
    const uint32_t defects = wafer_.ReadRowFuses(r);
    failed += defects;
    row_failed_[r] = static_cast<uint16_t>(defects < 0xFFFF ? defects : 0xFFFF);
    if (defects > phys.spare_cols) {  // Not enough spares: the row leaves the rectangle.
      row_map_[r] = hal::kRowDropped;
      spares_left_[r] = 0;
      dropped_[dropped_count_++] = r;
      continue;
    }
    spares_left_[r] = static_cast<uint16_t>(phys.spare_cols - defects);
    usable_to_phys_[kept] = r;
    row_map_[r] = kept++;
  }
  if (kept == 0) {
    detail = "defect remap failed: no usable row (every row has more defects than spares)";
    return ResourceExhausted();
  }
  const Status programmed =
      wafer_.ProgramHarvest(std::span<const uint32_t>(row_map_.data(), phys.rows));
  if (!programmed.ok()) {
    detail = "defect remap failed: the row shifters could not be programmed";
    return programmed;
  }
  phys_ = phys;
  usable_height_ = kept;
  failed_pes_ = failed;
  runtime_failed_ = 0;
  runtime_remaps_ = 0;
  harvested_ = true;
  log_.Append(Severity::kInfo, LogCode::kFabricHarvested,
              {phys.cols - phys.spare_cols, kept, failed, dropped_count_});
  return OkStatus();
}

bool CommandProcessor::HandlePeFault(hal::FaultKind kind, uint32_t row, uint32_t col) {
  FaultRecord rec;
  rec.kind = kind;
  rec.row = row;
  rec.pe = col;
  rec.timestamp_ns = clock_.NowNanos();
  const hal::PeContents contents = wafer_.ContentsOfPe(row, col, rec.tensors);
  rec.model_id = contents.has_model ? contents.model_id : 0;
  rec.kv_cache_lost = contents.kv_cache;
  rec.tensor_count = contents.tensor_count < kMaxRestageTensors
                         ? contents.tensor_count
                         : static_cast<uint32_t>(kMaxRestageTensors);
  if (harvested_ && row < usable_height_) {
    const uint32_t phys_row = usable_to_phys_[row];
    if (spares_left_[phys_row] > 0 && wafer_.RemapPe(row, col).ok()) {
      --spares_left_[phys_row];
      ++runtime_remaps_;
      rec.remapped = true;
    }
    if (row_failed_[phys_row] < 0xFFFF) ++row_failed_[phys_row];
  }
  ++runtime_failed_;  // Stopped, or retired after losing its data.
  if (contents.has_model) {
    if (ModelEntry* m = FindModel(contents.model_id)) MarkLost(*m, rec, contents.tensor_count);
  }
  log_.Append(Severity::kError, LogCode::kPeFailed,
              {row, col, (uint64_t{static_cast<uint8_t>(kind)} << 32) | (rec.remapped ? 1u : 0u),
               contents.tensor_count});
  const size_t at = faults_size_ == faults_.size() ? faults_head_
                                                   : (faults_head_ + faults_size_) % faults_.size();
  if (faults_size_ == faults_.size()) {
    faults_head_ = (faults_head_ + 1) % faults_.size();
  } else {
    ++faults_size_;
  }
  rec.sequence = faults_next_sequence_++;
  faults_[at] = rec;
  return rec.remapped;
}

void CommandProcessor::HandleHwEvent(const hal::HwEvent& e) {
  switch (e.kind) {
    case hal::HwEventKind::kPeStopped:
      HandlePeFault(hal::FaultKind::kPeStop, e.row, e.col);
      return;
    case hal::HwEventKind::kEccUncorrectable:
      HandlePeFault(hal::FaultKind::kEccUncorrectable, e.row, e.col);
      return;
    case hal::HwEventKind::kEccCorrectable:
      log_.Append(Severity::kWarning, LogCode::kEccCorrected, {e.row, e.col, e.count});
      return;
  }
}

void CommandProcessor::CheckThermal() {
  if (tripped_) return;
  wafer_.ReadSensors(sensors_);
  const hal::WaferInfo info = wafer_.Info();
  uint32_t hottest = 0;
  for (uint32_t i = 1; i < sensors_.region_count; ++i) {
    if (sensors_.region_temp_c[i] > sensors_.region_temp_c[hottest]) hottest = i;
  }
  const float t = sensors_.region_count > 0 ? sensors_.region_temp_c[hottest] : 0;
  const uint64_t milli_c = t > 0 ? static_cast<uint64_t>(t * 1000) : 0;
  if (t > info.critical_c && boot_.state() == BootState::kReady) {
    tripped_ = true;
    wafer_.Halt();
    log_.Append(Severity::kFatal, LogCode::kThermalTrip, {hottest, milli_c});
    StepBoot(BootEvent::kFatalFault).IgnoreError();  // Valid in Ready.
    return;
  }
  if (t > info.warn_c) {
    if (!throttle_logged_) {
      throttle_logged_ = true;
      log_.Append(Severity::kWarning, LogCode::kThermalThrottle,
                  {hottest, milli_c,
                   static_cast<uint64_t>(sensors_.region_clock_hz[hottest] / 1000)});
    }
  } else {
    throttle_logged_ = false;
  }
}

void CommandProcessor::Poll() {
  if (hung_) return;
  std::array<hal::HwEvent, 8> events;
  // Bounded: a storm of events is drained over several polls, never forever in one.
  for (int round = 0; round < 16; ++round) {
    const size_t n = wafer_.PollEvents(events);
    for (size_t i = 0; i < n; ++i) HandleHwEvent(events[i]);
    if (n < events.size()) break;
  }
  CheckThermal();
}

bool CommandProcessor::FrameFailedCrc() {
  if (!wafer_.TakeLinkCrcError()) return false;
  ++link_crc_errors_;
  log_.Append(Severity::kWarning, LogCode::kLinkCrcError, {link_crc_errors_});
  return true;
}

void CommandProcessor::HandleInjectFault(const hal::FaultSpec& fault, Reply& reply) {
  reply.kind = ReplyKind::kAck;
  if (fault.kind == hal::FaultKind::kNone) {
    reply.code = StatusCode::kInvalidArgument;
    reply.detail = "fault kind kNone";
    return;
  }
  const uint64_t value =
      fault.value > 0 ? static_cast<uint64_t>(fault.value) : 0;
  if (fault.kind == hal::FaultKind::kFirmwareHang) {
    log_.Append(Severity::kInfo, LogCode::kFaultInjected,
                {static_cast<uint64_t>(fault.kind), fault.row, fault.pe, value});
    hung_ = true;  // This Ack is the last thing the firmware says until a Reset.
    return;
  }
  const Status status = wafer_.InjectFault(fault);
  if (!status.ok()) {
    reply.code = status.code();
    reply.detail = status.code() == StatusCode::kUnimplemented
                       ? "this board cannot simulate that fault"
                       : "fault coordinates or value out of range";
    return;
  }
  log_.Append(Severity::kInfo, LogCode::kFaultInjected,
              {static_cast<uint64_t>(fault.kind), fault.row, fault.pe, value});
  if (fault.kind == hal::FaultKind::kPowerCap) {
    wafer_.ReadSensors(sensors_);
    uint64_t min_khz = 0;
    for (uint32_t i = 0; i < sensors_.region_count; ++i) {
      const uint64_t khz = static_cast<uint64_t>(sensors_.region_clock_hz[i] / 1000);
      if (i == 0 || khz < min_khz) min_khz = khz;
    }
    log_.Append(Severity::kWarning, LogCode::kPowerCapped, {value, min_khz});
  }
  Poll();  // The hardware monitors see the fault at once.
}

void CommandProcessor::HandleReadFaults(uint64_t from_sequence, Reply& reply) {
  size_t n = 0;
  for (size_t i = 0; i < faults_size_; ++i) {
    const FaultRecord& rec = faults_[(faults_head_ + i) % faults_.size()];
    if (rec.sequence >= from_sequence) faults_out_[n++] = rec;
  }
  reply.kind = ReplyKind::kFaults;
  reply.faults = std::span<const FaultRecord>(faults_out_.data(), n);
  reply.faults_next_sequence = faults_next_sequence_;
}

}  // namespace wafer::fw

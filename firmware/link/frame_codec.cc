#include "firmware/link/frame_codec.h"

#include <algorithm>
#include <cstring>

#include "firmware/link/join_text.h"
#include "schemas/board_generated.h"
#include "schemas/vector_alignment.h"

namespace wafer::fw {
namespace {

namespace wire = ::wafer::wire;
namespace wb = ::wafer::wire::board;

// Token and hidden-state vectors are read in place. FlatBuffers aligns a vector's elements to
// their size and the verifier refuses a misaligned one, so in an 8-byte aligned frame a [float]
// is a valid float array.
static_assert(FLATBUFFERS_LITTLEENDIAN, "token and hidden-state vectors are read in place");
static_assert(sizeof(float) == 4, "[float] is IEEE binary32");
// The firmware's copies of the schema's enums end where the schema's do: InjectFault checks its
// kind against wb::FaultKind::MAX and casts it to hal::FaultKind, so a kind added to the schema
// must be added to the HAL too (and a DiagTest or LogCode likewise).
static_assert(static_cast<uint8_t>(hal::FaultKind::kFabricLink) ==
                  static_cast<uint8_t>(wb::FaultKind::MAX),
              "hal::FaultKind must match board.fbs FaultKind");
static_assert(static_cast<uint8_t>(DiagTest::kKnownAnswer) ==
                  static_cast<uint8_t>(wb::DiagTest::MAX),
              "fw::DiagTest must match board.fbs DiagTest");
static_assert(static_cast<uint16_t>(LogCode::kRollbackRequested) ==
                  static_cast<uint16_t>(wb::LogCode::MAX),
              "fw::LogCode must match board.fbs LogCode");

bool Fail(Reply& error, uint64_t command_id, LinkError code, const char* detail) {
  error = Reply{};
  error.kind = ReplyKind::kError;
  error.command_id = command_id;
  error.link_error = code;
  error.detail = detail;
  return false;
}

std::span<const char> Chars(const flatbuffers::String* s) {
  if (s == nullptr) return {};
  return {s->c_str(), s->size()};
}

template <typename T>
std::span<const T> Span(const flatbuffers::Vector<T>* v) {
  if (v == nullptr) return {};
  return {v->data(), v->size()};
}

wire::ErrorCode ToWire(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return wire::ErrorCode::kNone;
    case StatusCode::kCancelled: return wire::ErrorCode::kCancelled;
    case StatusCode::kInvalidArgument: return wire::ErrorCode::kInvalidArgument;
    case StatusCode::kOutOfRange: return wire::ErrorCode::kOutOfRange;
    case StatusCode::kDeadlineExceeded: return wire::ErrorCode::kDeadlineExceeded;
    case StatusCode::kNotFound: return wire::ErrorCode::kUnknownModel;
    case StatusCode::kAlreadyExists: return wire::ErrorCode::kAlreadyExists;
    case StatusCode::kResourceExhausted: return wire::ErrorCode::kResourceExhausted;
    case StatusCode::kFailedPrecondition: return wire::ErrorCode::kFailedPrecondition;
    case StatusCode::kUnimplemented: return wire::ErrorCode::kUnimplemented;
    case StatusCode::kUnavailable: return wire::ErrorCode::kBoardUnavailable;
    case StatusCode::kDataLoss: return wire::ErrorCode::kDataLoss;
    case StatusCode::kPermissionDenied: return wire::ErrorCode::kPermissionDenied;
    case StatusCode::kUnknown:
    case StatusCode::kAborted:
    case StatusCode::kInternal:
    case StatusCode::kUnauthenticated: return wire::ErrorCode::kInternal;
  }
  return wire::ErrorCode::kInternal;
}

wire::ErrorCode ToWire(LinkError e) {
  switch (e) {
    case LinkError::kMalformedMessage: return wire::ErrorCode::kMalformedMessage;
    case LinkError::kUnsupportedVersion: return wire::ErrorCode::kUnsupportedVersion;
    case LinkError::kWrongMessageType: return wire::ErrorCode::kWrongMessageType;
    case LinkError::kInvalidArgument: return wire::ErrorCode::kInvalidArgument;
    case LinkError::kFrameCrc: return wire::ErrorCode::kDataLoss;
  }
  return wire::ErrorCode::kMalformedMessage;
}

wb::BootState ToWire(BootState s) {
  switch (s) {
    case BootState::kPowerOn: return wb::BootState::kPowerOn;
    case BootState::kSelfTest: return wb::BootState::kSelfTest;
    case BootState::kVerifyImage: return wb::BootState::kVerifyImage;
    case BootState::kRemap: return wb::BootState::kRemap;
    case BootState::kReady: return wb::BootState::kReady;
    case BootState::kFaulted: return wb::BootState::kFaulted;
  }
  return wb::BootState::kFaulted;  // Unreachable: the switch is exhaustive.
}

wb::DiagTest ToWire(DiagTest t) {
  switch (t) {
    case DiagTest::kNone: return wb::DiagTest::kNone;
    case DiagTest::kSramUnused: return wb::DiagTest::kSramUnused;
    case DiagTest::kSramAll: return wb::DiagTest::kSramAll;
    case DiagTest::kFabricLinks: return wb::DiagTest::kFabricLinks;
    case DiagTest::kKnownAnswer: return wb::DiagTest::kKnownAnswer;
  }
  return wb::DiagTest::kNone;  // Unreachable: the switch is exhaustive.
}

hal::PeRect ToHal(const wb::PeRect& r) { return hal::PeRect{r.x(), r.y(), r.w(), r.h()}; }

bool DecodeBeginModel(const wb::BeginModel& m, FixedVector<hal::TensorSpec, kMaxTensors>& tensors,
                      FixedVector<hal::KvRegion, kMaxKvRegions>& kv_regions,
                      hal::ModelManifest& out, const char*& detail) {
  const wb::ModelArch* a = m.arch();
  if (a == nullptr) {
    detail = "BeginModel.arch missing";
    return false;
  }
  out.model_id = m.model_id();
  out.name = Chars(m.name());
  out.arch.vocab_size = a->vocab_size();
  out.arch.hidden_size = a->hidden_size();
  out.arch.intermediate_size = a->intermediate_size();
  out.arch.num_layers = a->num_layers();
  out.arch.num_heads = a->num_heads();
  out.arch.num_kv_heads = a->num_kv_heads();
  out.arch.head_dim = a->head_dim();
  out.arch.rope_theta = a->rope_theta();
  out.arch.rms_norm_eps = a->rms_norm_eps();
  out.arch.max_position = a->max_position();
  out.arch.tie_embeddings = a->tie_embeddings();
  if (const wb::RopeScaling* rs = a->rope_scaling()) {
    out.arch.rope_scaling.factor = rs->factor();
    out.arch.rope_scaling.low_freq_factor = rs->low_freq_factor();
    out.arch.rope_scaling.high_freq_factor = rs->high_freq_factor();
    out.arch.rope_scaling.original_max_position = rs->original_max_position();
  }
  out.slots = m.slots();
  out.context_length = m.context_length();
  out.shape_only = m.shape_only();
  out.stage = ModelStage{};  // Absent: the whole model.
  if (const wb::ModelStage* st = m.stage()) {
    out.stage = ModelStage{st->first_layer(), st->layer_count(), st->has_embedding(),
                           st->has_head()};
  }
  out.next_stage = hal::NextStage{};
  if (const wb::NextStage* ns = m.next_stage()) {
    out.next_stage.endpoint = Chars(ns->endpoint());
    out.next_stage.stages = ns->stages();
    out.next_stage.timeout_ms = ns->timeout_ms();
  }
  tensors.clear();
  if (const auto* ts = m.tensors()) {
    if (ts->size() > kMaxTensors) {
      detail = "BeginModel.tensors: too many tensors";
      return false;
    }
    for (const wb::TensorDesc* t : *ts) {
      if (t == nullptr) {
        detail = "BeginModel.tensors: null entry";
        return false;
      }
      hal::TensorSpec spec;
      spec.name = Chars(t->name());
      // Values read off the wire are checked against the known range.
      const auto role = static_cast<uint8_t>(t->role());
      const auto dtype = static_cast<uint8_t>(t->dtype());
      if (role > static_cast<uint8_t>(wb::TensorRole::MAX) ||
          dtype > static_cast<uint8_t>(wb::DType::MAX)) {
        detail = "TensorDesc.role or dtype out of range";
        return false;
      }
      spec.role = static_cast<TensorRole>(role);
      spec.dtype = static_cast<DType>(dtype);
      spec.layer = t->layer();
      const auto* shape = t->shape();
      if (shape == nullptr || shape->size() == 0 || shape->size() > hal::kMaxTensorRank) {
        detail = "TensorDesc.shape missing or rank above 4";
        return false;
      }
      if (!wire::ElementsAligned(shape)) {
        detail = "TensorDesc.shape: elements not 8-byte aligned";
        return false;
      }
      spec.rank = shape->size();
      for (uint32_t i = 0; i < spec.rank; ++i) spec.shape[i] = shape->Get(i);
      spec.byte_size = t->byte_size();
      if (t->placement() == nullptr) {
        detail = "TensorDesc.placement missing";
        return false;
      }
      spec.placement = ToHal(*t->placement());
      tensors.push_back(spec).IgnoreError();  // Bounded above.
    }
  }
  kv_regions.clear();
  if (const auto* kv = m.kv_regions()) {
    if (kv->size() > kMaxKvRegions) {
      detail = "BeginModel.kv_regions: too many regions";
      return false;
    }
    if (!wire::ElementsAligned(kv)) {
      detail = "BeginModel.kv_regions: elements not 8-byte aligned";
      return false;
    }
    for (const wb::KvRegion* r : *kv) {
      kv_regions.push_back(hal::KvRegion{r->layer(), ToHal(r->rect()), r->bytes_per_pe()})
          .IgnoreError();  // Bounded above.
    }
  }
  out.tensors = std::span<const hal::TensorSpec>(tensors.data(), tensors.size());
  out.kv_regions = std::span<const hal::KvRegion>(kv_regions.data(), kv_regions.size());
  return true;
}

bool DecodeStep(const wb::Step& s, std::array<hal::SeqStepView, kMaxSeqsPerStep>& seqs,
                hal::StepRequest& out, const char*& detail) {
  out.model_id = s.model_id();
  out.from_stage = s.from_stage();
  const auto* v = s.seqs();
  if (v == nullptr) {
    out.seqs = {};
    return true;
  }
  if (v->size() > kMaxSeqsPerStep) {
    detail = "Step.seqs: more than 256 sequences";
    return false;
  }
  for (uint32_t i = 0; i < v->size(); ++i) {
    const wb::SeqStep* q = v->Get(i);
    if (q == nullptr) {
      detail = "Step.seqs: null entry";
      return false;
    }
    hal::SeqStepView& view = seqs[i];
    view = hal::SeqStepView{};
    view.slot = q->slot();
    view.reset = q->reset();
    view.input_tokens = Span(q->input_tokens());
    view.generate = q->generate();
    view.stop_tokens = Span(q->stop_tokens());
    view.hidden_in = Span(q->hidden_in());
    if (const wb::SeqSampling* sp = q->sampling()) {
      view.sampling.temperature = sp->temperature();
      view.sampling.top_k = sp->top_k();
      view.sampling.top_p = sp->top_p();
      view.sampling.seed = sp->seed();
      view.sampled_before = sp->sampled_before();
      if (!(view.sampling.temperature >= 0) || !(view.sampling.top_p > 0) ||
          !(view.sampling.top_p <= 1)) {
        detail = "SeqSampling: temperature < 0 or top_p outside (0, 1]";
        return false;
      }
    }
  }
  out.seqs = std::span<const hal::SeqStepView>(seqs.data(), v->size());
  return true;
}

size_t Length(const char* s) { return s != nullptr ? std::strlen(s) : 0; }

}  // namespace

size_t ReplySizeBound(const Reply& r) {
  using fb_bound::Fields;
  using fb_bound::String;
  using fb_bound::Table;
  using fb_bound::Vector;
  // The envelope (its version struct is one of its fields) and the finished buffer.
  size_t bytes = Table(Fields(wb::BoardEnvelope::VT_MESSAGE)) + fb_bound::Finish();
  // Boot and Ack details: the status name and the detail, cut to 255 characters.
  constexpr size_t kText = 255;
  switch (r.kind) {
    case ReplyKind::kIdentify:
      bytes += Table(Fields(wb::IdentifyReply::VT_ATTACHED_WEIGHTS)) +
               String(Length(r.info.board_id)) + String(Length(r.info.preset)) +
               String(Length(kFirmwareVersion));
      break;
    case ReplyKind::kBoot:
      bytes += Table(Fields(wb::BootReply::VT_DETAIL)) + String(kText);
      break;
    case ReplyKind::kAck:
      bytes += Table(Fields(wb::Ack::VT_DETAIL)) + String(kText);
      break;
    case ReplyKind::kStep: {
      bytes += Table(Fields(wb::StepReply::VT_PIPELINE)) +
               Vector(r.outcomes.size(), sizeof(flatbuffers::uoffset_t)) +
               Table(Fields(wb::DeviceTime::VT_HOST_IO_NS));
      for (const hal::SeqOutcome& o : r.outcomes) {
        bytes += Table(Fields(wb::SeqResult::VT_HIDDEN_OUT)) +
                 Vector(o.token_count, sizeof(uint32_t)) + Vector(o.hidden_count, sizeof(float));
      }
      if (r.pipeline.present) {
        bytes += Table(Fields(wb::PipelineReport::VT_FAILED_DETAIL)) +
                 Vector(r.pipeline.stage_busy_ns.size(), sizeof(int64_t)) + String(kText);
      }
      break;
    }
    case ReplyKind::kTelemetry:
      bytes += Table(Fields(wb::Telemetry::VT_RUNTIME_FAILED_PES)) +
               Vector(r.sensors.region_count, sizeof(float)) +
               Vector(r.sensors.region_count, sizeof(double));
      break;
    case ReplyKind::kHeartbeat:
      bytes += Table(Fields(wire::Heartbeat::VT_IS_REPLY));
      break;
    case ReplyKind::kErrorLog: {
      const size_t n = std::min(r.log_records.size(), kMaxLogRecordsPerReply);
      bytes += Table(Fields(wb::ErrorLogReply::VT_OVERWRITTEN_TOTAL)) +
               Vector(n, sizeof(flatbuffers::uoffset_t));
      for (size_t i = 0; i < n; ++i) {
        bytes += Table(Fields(wb::ErrorRecord::VT_ARGS)) +
                 Vector(r.log_records[i].arg_count, sizeof(uint64_t));
      }
      break;
    }
    case ReplyKind::kGeometry:
      bytes += Table(Fields(wb::GeometryReply::VT_HARVESTED)) +
               Vector(r.row_failed.size(), sizeof(uint16_t)) +
               Vector(r.dropped_rows.size(), sizeof(uint32_t));
      break;
    case ReplyKind::kFirmwareSlots:
      bytes += Table(Fields(wb::FirmwareSlotsReply::VT_SLOTS)) +
               Vector(hal::kFirmwareSlots, sizeof(flatbuffers::uoffset_t)) +
               hal::kFirmwareSlots * (Table(Fields(wb::FirmwareSlot::VT_VERSION)) +
                                      Vector(hal::kSignatureBytes, 1) +
                                      String(kMaxImageVersionBytes));
      break;
    case ReplyKind::kFaults: {
      const size_t n = std::min(r.faults.size(), kMaxFaultReports);
      bytes += Table(Fields(wb::FaultReply::VT_NEXT_SEQUENCE)) +
               Vector(n, sizeof(flatbuffers::uoffset_t));
      for (size_t i = 0; i < n; ++i) {
        bytes += Table(Fields(wb::FaultReport::VT_KV_CACHE_LOST)) +
                 Vector(r.faults[i].tensor_count, sizeof(uint32_t));
      }
      break;
    }
    case ReplyKind::kDiagnostic: {
      const size_t n = std::min(r.findings.size(), kMaxDiagFindings);
      bytes += Table(Fields(wb::DiagnosticReply::VT_DEVICE_NS)) +
               Vector(n, sizeof(flatbuffers::uoffset_t)) +
               n * Table(Fields(wb::DiagFinding::VT_REMAPPED));
      break;
    }
    case ReplyKind::kError:
      bytes += Table(Fields(wire::ErrorReply::VT_REQUEST_TAG)) + String(Length(r.detail));
      break;
  }
  return bytes;
}

std::span<const std::byte> FrameCodec::Encode(const Reply& reply) {
  if (ReplySizeBound(reply) <= allocator_.capacity()) return EncodeReply(fbb_, reply);
  // Larger than a frame: say so instead of building past the arena (or dropping the reply).
  ++replies_exhausted_;
  Reply exhausted;
  exhausted.kind = ReplyKind::kAck;
  exhausted.command_id = reply.command_id;
  exhausted.code = StatusCode::kResourceExhausted;
  exhausted.detail = "the reply does not fit one frame";
  return EncodeReply(fbb_, exhausted);
}

// The builder's initial size is the whole arena: it takes it on first use and never asks for
// more, since Encode checks each reply's bound first.
FrameCodec::FrameCodec() : allocator_(arena_), fbb_(arena_.size(), &allocator_) {}

bool FrameCodec::Decode(std::span<const std::byte> frame, Command& cmd, Reply& error) {
  return Decode(frame, {}, cmd, error);
}

bool FrameCodec::Decode(std::span<const std::byte> frame, std::span<const std::byte> attachment,
                        Command& cmd, Reply& error) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(frame.data());
  if (frame.size() < 8 || frame.size() > kMaxFrameBytes) {
    return Fail(error, 0, LinkError::kMalformedMessage, "frame size out of range");
  }
  if (!wb::BoardEnvelopeBufferHasIdentifier(bytes)) {
    return Fail(error, 0, LinkError::kMalformedMessage, "wrong file identifier (want WBRD)");
  }
  flatbuffers::Verifier verifier(bytes, frame.size());
  if (!wb::VerifyBoardEnvelopeBuffer(verifier)) {
    return Fail(error, 0, LinkError::kMalformedMessage, "frame failed verification");
  }
  const wb::BoardEnvelope* env = wb::GetBoardEnvelope(bytes);
  const uint64_t id = env->command_id();
  if (env->version() == nullptr) {
    return Fail(error, id, LinkError::kMalformedMessage, "envelope version missing");
  }
  if (env->version()->major() != kProtocolMajor) {
    return Fail(error, id, LinkError::kUnsupportedVersion, "protocol major version is not 1");
  }
  // A union may carry its type without its table; every accessor would then return null.
  if (env->message() == nullptr) {
    return Fail(error, id, LinkError::kMalformedMessage, "message type without a message");
  }
  cmd = Command{};
  cmd.command_id = id;
  const char* detail = "";
  if (!attachment.empty() && env->message_type() != wb::BoardMessage::WriteWeights) {
    return Fail(error, id, LinkError::kInvalidArgument, "only WriteWeights takes an attachment");
  }
  switch (env->message_type()) {
    case wb::BoardMessage::Identify: cmd.kind = CommandKind::kIdentify; return true;
    case wb::BoardMessage::Boot: cmd.kind = CommandKind::kBoot; return true;
    case wb::BoardMessage::ReadTelemetry: cmd.kind = CommandKind::kReadTelemetry; return true;
    case wb::BoardMessage::Reset: cmd.kind = CommandKind::kReset; return true;
    case wb::BoardMessage::wafer_wire_Heartbeat:
      cmd.kind = CommandKind::kHeartbeat;
      cmd.heartbeat_sent_ns = env->message_as_wafer_wire_Heartbeat()->sent_ns();
      return true;
    case wb::BoardMessage::BeginModel:
      cmd.kind = CommandKind::kBeginModel;
      if (DecodeBeginModel(*env->message_as_BeginModel(), tensors_, kv_regions_, cmd.manifest,
                           detail)) {
        return true;
      }
      return Fail(error, id, LinkError::kInvalidArgument, detail);
    case wb::BoardMessage::WriteWeights: {
      const wb::WriteWeights* w = env->message_as_WriteWeights();
      cmd.kind = CommandKind::kWriteWeights;
      if (w->attached_size() != 0) {
        // The bytes are the message's second frame, handed over as they arrived.
        if (w->data() != nullptr) {
          return Fail(error, id, LinkError::kInvalidArgument,
                      "WriteWeights has both data and attached_size");
        }
        if (attachment.size() != w->attached_size()) {
          return Fail(error, id, LinkError::kInvalidArgument,
                      "WriteWeights attachment is not attached_size bytes");
        }
        cmd.write.data = attachment;
      } else {
        if (!attachment.empty()) {
          return Fail(error, id, LinkError::kInvalidArgument,
                      "WriteWeights has an attachment but no attached_size");
        }
        if (w->data() == nullptr) {
          return Fail(error, id, LinkError::kInvalidArgument, "WriteWeights.data missing");
        }
        cmd.write.data = std::as_bytes(Span(w->data()));
      }
      cmd.write.model_id = w->model_id();
      cmd.write.tensor_index = w->tensor_index();
      cmd.write.offset = w->offset();
      cmd.write.crc32c = w->crc32c();
      return true;
    }
    case wb::BoardMessage::CommitModel:
      cmd.kind = CommandKind::kCommitModel;
      cmd.model_id = env->message_as_CommitModel()->model_id();
      return true;
    case wb::BoardMessage::UnloadModel:
      cmd.kind = CommandKind::kUnloadModel;
      cmd.model_id = env->message_as_UnloadModel()->model_id();
      return true;
    case wb::BoardMessage::Step:
      cmd.kind = CommandKind::kStep;
      if (DecodeStep(*env->message_as_Step(), seqs_, cmd.step, detail)) return true;
      return Fail(error, id, LinkError::kInvalidArgument, detail);
    case wb::BoardMessage::ReadErrorLog: {
      const wb::ReadErrorLog* m = env->message_as_ReadErrorLog();
      cmd.kind = CommandKind::kReadErrorLog;
      cmd.log_from_sequence = m->from_sequence();
      cmd.log_max_records = m->max_records();
      return true;
    }
    case wb::BoardMessage::BeginFirmwareImage: {
      const wb::BeginFirmwareImage* m = env->message_as_BeginFirmwareImage();
      cmd.kind = CommandKind::kBeginFirmwareImage;
      if (m->signature() == nullptr || m->signature()->size() != hal::kSignatureBytes) {
        return Fail(error, id, LinkError::kInvalidArgument,
                    "BeginFirmwareImage.signature must be 64 bytes");
      }
      cmd.image.slot = m->slot();
      cmd.image.size = m->size();
      cmd.image.crc32c = m->crc32c();
      cmd.image.signature = std::as_bytes(Span(m->signature()));
      return true;
    }
    case wb::BoardMessage::WriteFirmwareChunk: {
      const wb::WriteFirmwareChunk* m = env->message_as_WriteFirmwareChunk();
      cmd.kind = CommandKind::kWriteFirmwareChunk;
      if (m->data() == nullptr) {
        return Fail(error, id, LinkError::kInvalidArgument, "WriteFirmwareChunk.data missing");
      }
      cmd.image_chunk.slot = m->slot();
      cmd.image_chunk.offset = m->offset();
      cmd.image_chunk.data = std::as_bytes(Span(m->data()));
      cmd.image_chunk.crc32c = m->crc32c();
      return true;
    }
    case wb::BoardMessage::CommitFirmwareImage:
      cmd.kind = CommandKind::kCommitFirmwareImage;
      cmd.image_slot = env->message_as_CommitFirmwareImage()->slot();
      return true;
    case wb::BoardMessage::ReadGeometry: cmd.kind = CommandKind::kReadGeometry; return true;
    case wb::BoardMessage::ReadFirmwareSlots:
      cmd.kind = CommandKind::kReadFirmwareSlots;
      return true;
    case wb::BoardMessage::RollbackFirmware:
      cmd.kind = CommandKind::kRollbackFirmware;
      return true;
    case wb::BoardMessage::ReadFaults:
      cmd.kind = CommandKind::kReadFaults;
      cmd.faults_from_sequence = env->message_as_ReadFaults()->from_sequence();
      return true;
    case wb::BoardMessage::InjectFault: {
      const wb::InjectFault* m = env->message_as_InjectFault();
      cmd.kind = CommandKind::kInjectFault;
      const auto kind = static_cast<uint8_t>(m->kind());
      if (kind > static_cast<uint8_t>(wb::FaultKind::MAX) || !(m->value() >= 0)) {
        return Fail(error, id, LinkError::kInvalidArgument,
                    "InjectFault.kind unknown or value negative");
      }
      cmd.fault.kind = static_cast<hal::FaultKind>(kind);
      cmd.fault.region = m->region();
      cmd.fault.row = m->row();
      cmd.fault.pe = m->pe();
      cmd.fault.value = m->value();
      return true;
    }
    case wb::BoardMessage::RunDiagnostic: {
      const wb::RunDiagnostic* m = env->message_as_RunDiagnostic();
      cmd.kind = CommandKind::kRunDiagnostic;
      const auto test = static_cast<uint8_t>(m->test());
      if (test > static_cast<uint8_t>(wb::DiagTest::MAX)) {
        return Fail(error, id, LinkError::kInvalidArgument, "RunDiagnostic.test unknown");
      }
      cmd.diagnostic.test = static_cast<DiagTest>(test);
      cmd.diagnostic.first_row = m->first_row();
      cmd.diagnostic.row_count = m->row_count();
      return true;
    }
    case wb::BoardMessage::NONE:
      return Fail(error, id, LinkError::kMalformedMessage, "envelope has no message");
    case wb::BoardMessage::IdentifyReply:
    case wb::BoardMessage::BootReply:
    case wb::BoardMessage::StepReply:
    case wb::BoardMessage::Telemetry:
    case wb::BoardMessage::Ack:
    case wb::BoardMessage::wafer_wire_ErrorReply:
    case wb::BoardMessage::ErrorLogReply:
    case wb::BoardMessage::GeometryReply:
    case wb::BoardMessage::FaultReply:
    case wb::BoardMessage::DiagnosticReply:
      return Fail(error, id, LinkError::kWrongMessageType, "a reply is not a command");
    default:
      // Values read off the wire get a default: a newer host may send a message we lack.
      return Fail(error, id, LinkError::kWrongMessageType, "unknown message type");
  }
}

std::span<const std::byte> EncodeReply(flatbuffers::FlatBufferBuilder& fbb, const Reply& r) {
  fbb.Clear();
  // Detail carries the canonical status name first, for logs and operators.
  std::array<char, 256> text{};
  if (r.code != StatusCode::kOk) {
    JoinText(text, {StatusCodeName(r.code), ": ", r.detail});
  } else {
    JoinText(text, {r.detail});
  }
  flatbuffers::Offset<void> msg;
  wb::BoardMessage type = wb::BoardMessage::NONE;
  switch (r.kind) {
    case ReplyKind::kIdentify:
      type = wb::BoardMessage::IdentifyReply;
      msg = wb::CreateIdentifyReplyDirect(
                fbb, r.info.board_id, r.info.preset, kFirmwareVersion, ToWire(r.state),
                r.info.physical_pes, r.info.fabric_width, r.info.fabric_height,
                r.info.sram_per_pe, r.info.clock_hz, r.info.max_slots,
                static_cast<uint32_t>(kMaxChunkBytes), r.active_firmware_slot,
                r.geometry.healthy_pes, r.geometry.spare_pes, r.geometry.failed_pes,
                r.geometry.usable_pes, r.geometry.physical_rows, r.geometry.physical_cols,
                r.geometry.spare_cols, r.geometry.harvested,
                static_cast<uint32_t>(kMaxStepHiddenValues), static_cast<uint32_t>(kMaxFrameBytes),
                static_cast<uint32_t>(kMaxSeqsPerStep), static_cast<uint32_t>(kMaxStepTokens),
                /*attached_weights=*/true)
                .Union();
      break;
    case ReplyKind::kBoot:
      type = wb::BoardMessage::BootReply;
      msg = wb::CreateBootReplyDirect(fbb, ToWire(r.state), r.self_test_passed, text.data())
                .Union();
      break;
    case ReplyKind::kAck:
      type = wb::BoardMessage::Ack;
      msg = wb::CreateAckDirect(fbb, ToWire(r.code), text.data()).Union();
      break;
    case ReplyKind::kStep: {
      std::array<flatbuffers::Offset<wb::SeqResult>, kMaxSeqsPerStep> results;
      for (size_t i = 0; i < r.outcomes.size(); ++i) {
        const hal::SeqOutcome& o = r.outcomes[i];
        auto tokens = fbb.CreateVector(o.token_buffer.data(), o.token_count);
        // Only a stage without the head has hidden states; other replies leave the field out.
        flatbuffers::Offset<flatbuffers::Vector<float>> hidden;
        if (o.hidden_count > 0) hidden = fbb.CreateVector(o.hidden_buffer.data(), o.hidden_count);
        results[i] = wb::CreateSeqResult(fbb, o.slot, tokens, ToWire(o.code), o.context_tokens,
                                         hidden);
      }
      auto vec = fbb.CreateVector(results.data(), r.outcomes.size());
      const DeviceTime& t = r.device_time;
      auto dt = wb::CreateDeviceTime(fbb, t.total_ns, t.compute_ns, t.fabric_ns,
                                     t.inter_wafer_ns, t.host_io_ns);
      flatbuffers::Offset<wb::PipelineReport> pipeline;
      if (const PipelineSummary& p = r.pipeline; p.present) {
        auto busy = fbb.CreateVector(p.stage_busy_ns.data(), p.stage_busy_ns.size());
        std::array<char, 256> why{};
        if (p.failed_stage != 0) {
          // A later board's own answer already names its code first.
          const char* name = StatusCodeName(p.failed_code);
          const bool named = std::strncmp(p.failed_detail, name, std::strlen(name)) == 0;
          JoinText(why, {named ? "" : name, named ? "" : ": ", p.failed_detail});
        }
        pipeline = wb::CreatePipelineReport(fbb, p.passes, p.hidden_values, busy,
                                            p.failed_stage, ToWire(p.failed_code),
                                            fbb.CreateString(why.data()));
      }
      type = wb::BoardMessage::StepReply;
      msg = wb::CreateStepReply(fbb, vec, dt, pipeline).Union();
      break;
    }
    case ReplyKind::kTelemetry: {
      const hal::SensorReadout& s = r.sensors;
      auto temps = fbb.CreateVector(s.region_temp_c.data(), s.region_count);
      type = wb::BoardMessage::Telemetry;
      auto clocks = fbb.CreateVector(s.region_clock_hz.data(), s.region_count);
      msg = wb::CreateTelemetry(fbb, ToWire(r.state), temps, s.power_w, s.clock_hz,
                                s.coolant_in_c, s.coolant_out_c, s.sram_used_bytes,
                                s.sram_total_bytes, r.steps, s.ecc_correctable,
                                s.ecc_uncorrectable, clocks, s.core_power_w, s.sram_power_w,
                                s.io_power_w, s.coolant_flow_kg_s, s.power_cap_w, s.throttled,
                                r.thermal_trip, r.link_crc_errors, r.geometry.runtime_failed)
                .Union();
      break;
    }
    case ReplyKind::kHeartbeat:
      type = wb::BoardMessage::wafer_wire_Heartbeat;
      msg = wire::CreateHeartbeat(fbb, r.heartbeat_sent_ns, true).Union();
      break;
    case ReplyKind::kErrorLog: {
      std::array<flatbuffers::Offset<wb::ErrorRecord>, kMaxLogRecordsPerReply> records;
      const size_t n = r.log_records.size() < records.size() ? r.log_records.size()
                                                              : records.size();
      for (size_t i = 0; i < n; ++i) {
        const LogRecord& rec = r.log_records[i];
        auto args = fbb.CreateVector(rec.args.data(), rec.arg_count);
        records[i] = wb::CreateErrorRecord(
            fbb, rec.sequence, rec.timestamp_ns,
            static_cast<wb::LogSeverity>(static_cast<uint8_t>(rec.severity)),
            static_cast<wb::LogCode>(static_cast<uint16_t>(rec.code)), args);
      }
      auto vec = fbb.CreateVector(records.data(), n);
      type = wb::BoardMessage::ErrorLogReply;
      msg = wb::CreateErrorLogReply(fbb, vec, r.log_next_sequence, r.log_dropped,
                                    r.log_overwritten)
                .Union();
      break;
    }
    case ReplyKind::kGeometry: {
      const GeometrySummary& g = r.geometry;
      auto rows = fbb.CreateVector(r.row_failed.data(), r.row_failed.size());
      auto dropped = fbb.CreateVector(r.dropped_rows.data(), r.dropped_rows.size());
      type = wb::BoardMessage::GeometryReply;
      msg = wb::CreateGeometryReply(fbb, g.physical_rows, g.physical_cols, g.spare_cols,
                                    g.usable_width, g.usable_height, rows, dropped,
                                    g.runtime_remaps, g.harvested)
                .Union();
      break;
    }
    case ReplyKind::kFirmwareSlots: {
      const FirmwareSlotsSummary& f = r.firmware_slots;
      std::array<flatbuffers::Offset<wb::FirmwareSlot>, hal::kFirmwareSlots> slots;
      for (uint32_t i = 0; i < hal::kFirmwareSlots; ++i) {
        const FirmwareSlotSummary& x = f.slots[i];
        auto signature = fbb.CreateVector(reinterpret_cast<const uint8_t*>(x.signature.data()),
                                           x.has_signature ? x.signature.size() : 0);
        auto version = fbb.CreateString(x.version.data(), x.version_length);
        slots[i] = wb::CreateFirmwareSlot(fbb, i, x.valid, x.size, x.crc32c, x.has_signature,
                                          signature, version);
      }
      auto vec = fbb.CreateVector(slots.data(), slots.size());
      type = wb::BoardMessage::FirmwareSlotsReply;
      msg = wb::CreateFirmwareSlotsReply(fbb, f.active_slot, f.fallback_slot, f.pending,
                                         f.pending_slot, f.trial, f.signing_key, vec)
                .Union();
      break;
    }
    case ReplyKind::kFaults: {
      std::array<flatbuffers::Offset<wb::FaultReport>, kMaxFaultReports> reports;
      const size_t n = r.faults.size() < reports.size() ? r.faults.size() : reports.size();
      for (size_t i = 0; i < n; ++i) {
        const FaultRecord& f = r.faults[i];
        auto tensors = fbb.CreateVector(f.tensors.data(), f.tensor_count);
        reports[i] = wb::CreateFaultReport(
            fbb, f.sequence, f.timestamp_ns,
            static_cast<wb::FaultKind>(static_cast<uint8_t>(f.kind)), f.row, f.pe, f.remapped,
            f.model_id, tensors, f.kv_cache_lost);
      }
      auto vec = fbb.CreateVector(reports.data(), n);
      type = wb::BoardMessage::FaultReply;
      msg = wb::CreateFaultReply(fbb, vec, r.faults_next_sequence).Union();
      break;
    }
    case ReplyKind::kDiagnostic: {
      std::array<flatbuffers::Offset<wb::DiagFinding>, kMaxDiagFindings> findings;
      const size_t n = r.findings.size() < findings.size() ? r.findings.size() : findings.size();
      for (size_t i = 0; i < n; ++i) {
        const DiagFinding& f = r.findings[i];
        findings[i] = wb::CreateDiagFinding(fbb, f.row, f.pe, f.region, f.detail, f.retired,
                                            f.remapped);
      }
      auto vec = fbb.CreateVector(findings.data(), n);
      const DiagnosticSummary& d = r.diagnostic;
      type = wb::BoardMessage::DiagnosticReply;
      msg = wb::CreateDiagnosticReply(fbb, ToWire(d.test), d.first_row, d.row_count,
                                      d.units_tested, d.failures, vec, d.device_ns)
                .Union();
      break;
    }
    case ReplyKind::kError:
      type = wb::BoardMessage::wafer_wire_ErrorReply;
      msg = wire::CreateErrorReplyDirect(fbb, ToWire(r.link_error), r.detail, r.command_id)
                .Union();
      break;
  }
  const wire::ProtocolVersion version(kProtocolMajor, kProtocolMinor);
  auto env = wb::CreateBoardEnvelope(fbb, &version, r.command_id, type, msg);
  wb::FinishBoardEnvelopeBuffer(fbb, env);
  return std::as_bytes(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()));
}

}  // namespace wafer::fw

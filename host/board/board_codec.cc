#include "host/board/board_codec.h"

#include <cstring>

#include "schemas/board_generated.h"
#include "schemas/vector_alignment.h"

namespace wafer::host {
namespace {

namespace wire = ::wafer::wire;
namespace wb = ::wafer::wire::board;

constexpr size_t kMaxReplyBytes = 64u << 20;

Frame Finish(flatbuffers::FlatBufferBuilder& fbb, uint64_t id, wb::BoardMessage type,
             flatbuffers::Offset<void> msg) {
  const wire::ProtocolVersion version(kBoardProtocolMajor, kBoardProtocolMinor);
  wb::FinishBoardEnvelopeBuffer(fbb, wb::CreateBoardEnvelope(fbb, &version, id, type, msg));
  const auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return Frame(p, p + fbb.GetSize());
}

template <typename Table>
Frame Empty(uint64_t id, wb::BoardMessage type, flatbuffers::Offset<Table> (*create)(
                                                    flatbuffers::FlatBufferBuilder&)) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, type, create(fbb).Union());
}

BoardBootState FromWire(wb::BootState s) {
  switch (s) {
    case wb::BootState::kPowerOn: return BoardBootState::kPowerOn;
    case wb::BootState::kSelfTest: return BoardBootState::kSelfTest;
    case wb::BootState::kVerifyImage: return BoardBootState::kVerifyImage;
    case wb::BootState::kRemap: return BoardBootState::kRemap;
    case wb::BootState::kReady: return BoardBootState::kReady;
    case wb::BootState::kFaulted: return BoardBootState::kFaulted;
    default: return BoardBootState::kFaulted;  // Unknown values read off the wire.
  }
}

std::string Str(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

}  // namespace

Status StatusFromWire(uint16_t code) {
  switch (static_cast<wire::ErrorCode>(code)) {
    case wire::ErrorCode::kNone: return OkStatus();
    case wire::ErrorCode::kInvalidArgument: return InvalidArgument();
    case wire::ErrorCode::kOutOfRange: return OutOfRange();
    case wire::ErrorCode::kPermissionDenied: return Status(StatusCode::kPermissionDenied);
    case wire::ErrorCode::kUnsupportedVersion: return FailedPrecondition();
    case wire::ErrorCode::kUnknownModel: return NotFound();
    case wire::ErrorCode::kResourceExhausted: return ResourceExhausted();
    case wire::ErrorCode::kDataLoss: return DataLoss();
    case wire::ErrorCode::kFailedPrecondition:
    case wire::ErrorCode::kModelNotReady: return FailedPrecondition();
    case wire::ErrorCode::kUnimplemented: return Unimplemented();
    case wire::ErrorCode::kCancelled: return Cancelled();
    case wire::ErrorCode::kAlreadyExists: return AlreadyExists();
    case wire::ErrorCode::kBoardUnavailable: return Unavailable();
    case wire::ErrorCode::kDeadlineExceeded: return DeadlineExceeded();
    case wire::ErrorCode::kInternal: return Internal();
    default: return Internal();  // Malformed/wrong-type (a host bug), unknown.
  }
}

Frame EncodeIdentify(uint64_t id) {
  return Empty(id, wb::BoardMessage::Identify, &wb::CreateIdentify);
}
Frame EncodeBoot(uint64_t id) { return Empty(id, wb::BoardMessage::Boot, &wb::CreateBoot); }
Frame EncodeReadTelemetry(uint64_t id) {
  return Empty(id, wb::BoardMessage::ReadTelemetry, &wb::CreateReadTelemetry);
}
Frame EncodeReset(uint64_t id) { return Empty(id, wb::BoardMessage::Reset, &wb::CreateReset); }

Frame EncodeHeartbeat(uint64_t id, int64_t sent_ns) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::wafer_wire_Heartbeat,
                wire::CreateHeartbeat(fbb, sent_ns, false).Union());
}

Frame EncodeReadErrorLog(uint64_t id, uint64_t from_sequence, uint32_t max_records) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::ReadErrorLog,
                wb::CreateReadErrorLog(fbb, from_sequence, max_records).Union());
}

Frame EncodeBeginFirmwareImage(uint64_t id, uint32_t slot, uint64_t size, uint32_t crc32c,
                               std::span<const std::byte> signature) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto sig = fbb.CreateVector(reinterpret_cast<const uint8_t*>(signature.data()),
                              signature.size());
  return Finish(fbb, id, wb::BoardMessage::BeginFirmwareImage,
                wb::CreateBeginFirmwareImage(fbb, slot, size, crc32c, sig).Union());
}

Frame EncodeWriteFirmwareChunk(uint64_t id, uint32_t slot, uint64_t offset,
                               std::span<const std::byte> data, uint32_t crc32c) {
  flatbuffers::FlatBufferBuilder fbb(data.size() + 256);
  auto bytes = fbb.CreateVector(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  return Finish(fbb, id, wb::BoardMessage::WriteFirmwareChunk,
                wb::CreateWriteFirmwareChunk(fbb, slot, offset, bytes, crc32c).Union());
}

Frame EncodeCommitFirmwareImage(uint64_t id, uint32_t slot) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::CommitFirmwareImage,
                wb::CreateCommitFirmwareImage(fbb, slot).Union());
}

Frame EncodeReadGeometry(uint64_t id) {
  return Empty(id, wb::BoardMessage::ReadGeometry, &wb::CreateReadGeometry);
}

Frame EncodeReadFirmwareSlots(uint64_t id) {
  return Empty(id, wb::BoardMessage::ReadFirmwareSlots, &wb::CreateReadFirmwareSlots);
}

Frame EncodeRollbackFirmware(uint64_t id) {
  return Empty(id, wb::BoardMessage::RollbackFirmware, &wb::CreateRollbackFirmware);
}

Frame EncodeInjectFault(uint64_t id, const BoardFaultInjection& f) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::InjectFault,
                wb::CreateInjectFault(fbb, static_cast<wb::FaultKind>(f.kind), f.region, f.row,
                                      f.pe, f.value)
                    .Union());
}

Frame EncodeReadFaults(uint64_t id, uint64_t from_sequence) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::ReadFaults,
                wb::CreateReadFaults(fbb, from_sequence).Union());
}

Frame EncodeRunDiagnostic(uint64_t id, BoardDiagTest test, uint32_t first_row,
                          uint32_t row_count) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::RunDiagnostic,
                wb::CreateRunDiagnostic(fbb, static_cast<wb::DiagTest>(test), first_row, row_count)
                    .Union());
}

const char* BoardLogCodeName(uint16_t code) {
  if (code > static_cast<uint16_t>(wb::LogCode::MAX)) return "";
  return wb::EnumNameLogCode(static_cast<wb::LogCode>(code));
}

Frame EncodeBeginModel(uint64_t id, const ModelManifest& m) {
  flatbuffers::FlatBufferBuilder fbb(1024 + m.tensors.size() * 128);
  std::vector<flatbuffers::Offset<wb::TensorDesc>> tensors;
  tensors.reserve(m.tensors.size());
  for (const TensorDesc& t : m.tensors) {
    const wb::PeRect placement(t.placement.x, t.placement.y, t.placement.w, t.placement.h);
    tensors.push_back(wb::CreateTensorDescDirect(
        fbb, t.name.c_str(), static_cast<wb::TensorRole>(t.role), t.layer,
        static_cast<wb::DType>(t.dtype), &t.shape, t.byte_size, &placement));
  }
  std::vector<wb::KvRegion> kv;
  kv.reserve(m.kv_regions.size());
  for (const KvRegion& r : m.kv_regions) {
    kv.emplace_back(r.layer, wb::PeRect(r.rect.x, r.rect.y, r.rect.w, r.rect.h), r.bytes_per_pe);
  }
  const ModelArch& a = m.arch;
  flatbuffers::Offset<wb::RopeScaling> rope;
  if (a.rope_scaling.factor != 0) {
    rope = wb::CreateRopeScaling(fbb, a.rope_scaling.factor, a.rope_scaling.low_freq_factor,
                                 a.rope_scaling.high_freq_factor,
                                 a.rope_scaling.original_max_position);
  }
  auto arch = wb::CreateModelArch(fbb, a.vocab_size, a.hidden_size, a.intermediate_size,
                                  a.num_layers, a.num_heads, a.num_kv_heads, a.head_dim,
                                  a.rope_theta, a.rms_norm_eps, a.max_position, a.tie_embeddings,
                                  rope);
  // Always sent: a board that predates stages ignores it, and it could only run whole models.
  auto stage = wb::CreateModelStage(fbb, m.stage.first_layer, m.stage.layer_count,
                                    m.stage.has_embedding, m.stage.has_head);
  flatbuffers::Offset<wb::NextStage> next;
  if (!m.next_stage.endpoint.empty()) {
    next = wb::CreateNextStageDirect(fbb, m.next_stage.endpoint.c_str(), m.next_stage.stages,
                                     m.next_stage.timeout_ms);
  }
  auto msg = wb::CreateBeginModelDirect(fbb, m.model_id, m.name.c_str(), arch, &tensors, m.slots,
                                        m.context_length, m.shape_only, &kv, stage, next);
  return Finish(fbb, id, wb::BoardMessage::BeginModel, msg.Union());
}

Frame EncodeWriteWeights(uint64_t id, uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                         std::span<const std::byte> data, uint32_t crc32c) {
  flatbuffers::FlatBufferBuilder fbb(data.size() + 256);
  auto bytes = fbb.CreateVector(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  auto msg = wb::CreateWriteWeights(fbb, model_id, tensor_index, offset, bytes, crc32c);
  return Finish(fbb, id, wb::BoardMessage::WriteWeights, msg.Union());
}

Frame EncodeWriteWeightsHeader(uint64_t id, uint32_t model_id, uint32_t tensor_index,
                               uint64_t offset, uint64_t size, uint32_t crc32c) {
  flatbuffers::FlatBufferBuilder fbb(256);
  auto msg = wb::CreateWriteWeights(fbb, model_id, tensor_index, offset, /*data=*/0, crc32c, size);
  return Finish(fbb, id, wb::BoardMessage::WriteWeights, msg.Union());
}

Frame EncodeCommitModel(uint64_t id, uint32_t model_id) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::CommitModel,
                wb::CreateCommitModel(fbb, model_id).Union());
}

Frame EncodeUnloadModel(uint64_t id, uint32_t model_id) {
  flatbuffers::FlatBufferBuilder fbb(128);
  return Finish(fbb, id, wb::BoardMessage::UnloadModel,
                wb::CreateUnloadModel(fbb, model_id).Union());
}

Frame EncodeStep(uint64_t id, uint32_t model_id, const std::vector<SeqStep>& seqs) {
  size_t hidden_values = 0;
  for (const SeqStep& s : seqs) hidden_values += s.hidden_in.size();
  flatbuffers::FlatBufferBuilder fbb(1024 + hidden_values * sizeof(float));
  std::vector<flatbuffers::Offset<wb::SeqStep>> out;
  out.reserve(seqs.size());
  for (const SeqStep& s : seqs) {
    auto sampling = wb::CreateSeqSampling(fbb, s.sampling.temperature, s.sampling.top_k,
                                          s.sampling.top_p, s.sampling.seed,
                                          s.sampled_before);
    // Left out when empty (every stage with the embedding), as a board before stages expects.
    out.push_back(wb::CreateSeqStepDirect(fbb, s.slot, s.reset, &s.input_tokens, s.generate,
                                          sampling, &s.stop_tokens,
                                          s.hidden_in.empty() ? nullptr : &s.hidden_in));
  }
  auto msg = wb::CreateStepDirect(fbb, model_id, &out);
  return Finish(fbb, id, wb::BoardMessage::Step, msg.Union());
}

HostResult<BoardReply> DecodeBoardReply(std::span<const std::byte> frame) {
  auto fail = [](const char* why) { return Error{StatusCode::kDataLoss, why}; };
  if (frame.size() < 8 || frame.size() > kMaxReplyBytes) return fail("reply size out of range");
  // ZeroMQ frames may be unaligned: copy into 8-byte aligned storage before verifying.
  std::vector<uint64_t> aligned(frame.size() / 8 + 1);
  std::memcpy(aligned.data(), frame.data(), frame.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(aligned.data());
  if (!wb::BoardEnvelopeBufferHasIdentifier(bytes)) return fail("reply has the wrong identifier");
  flatbuffers::Verifier verifier(bytes, frame.size());
  if (!wb::VerifyBoardEnvelopeBuffer(verifier)) return fail("reply failed verification");
  const wb::BoardEnvelope* env = wb::GetBoardEnvelope(bytes);
  if (env->version() == nullptr || env->version()->major() != kBoardProtocolMajor) {
    return fail("reply has a missing or unsupported protocol version");
  }
  // A union may carry its type without its table; every accessor would then return null.
  if (env->message() == nullptr) return fail("reply has a message type but no message");
  BoardReply r;
  r.command_id = env->command_id();
  switch (env->message_type()) {
    case wb::BoardMessage::IdentifyReply: {
      const auto* m = env->message_as_IdentifyReply();
      r.type = BoardReplyType::kIdentify;
      BoardIdentity& id = r.identity;
      id.board_id = Str(m->board_id());
      id.preset = Str(m->preset());
      id.firmware_version = Str(m->firmware_version());
      id.state = FromWire(m->state());
      id.physical_pes = m->physical_pes();
      id.fabric_width = m->fabric_width();
      id.fabric_height = m->fabric_height();
      id.sram_per_pe = m->sram_per_pe();
      id.clock_hz = m->clock_hz();
      id.max_slots = m->max_slots();
      id.max_chunk_bytes = m->max_chunk_bytes();
      id.active_firmware_slot = m->active_firmware_slot();
      id.healthy_pes = m->healthy_pes();
      id.spare_pes = m->spare_pes();
      id.failed_pes = m->failed_pes();
      id.usable_pes = m->usable_pes();
      id.physical_rows = m->physical_rows();
      id.physical_cols = m->physical_cols();
      id.spare_cols_per_row = m->spare_cols_per_row();
      id.harvested = m->harvested();
      id.max_step_hidden_values = m->max_step_hidden_values();
      id.max_frame_bytes = m->max_frame_bytes();
      id.max_step_seqs = m->max_step_seqs();
      id.max_step_tokens = m->max_step_tokens();
      id.attached_weights = m->attached_weights();
      return r;
    }
    case wb::BoardMessage::BootReply: {
      const auto* m = env->message_as_BootReply();
      r.type = BoardReplyType::kBoot;
      r.boot_state = FromWire(m->state());
      r.self_test_passed = m->self_test_passed();
      r.detail = Str(m->detail());
      r.status = r.self_test_passed && r.boot_state == BoardBootState::kReady
                     ? OkStatus()
                     : FailedPrecondition();
      return r;
    }
    case wb::BoardMessage::Ack: {
      const auto* m = env->message_as_Ack();
      r.type = BoardReplyType::kAck;
      r.detail = Str(m->detail());
      r.status = StatusFromWire(static_cast<uint16_t>(m->code()));
      return r;
    }
    case wb::BoardMessage::wafer_wire_ErrorReply: {
      const auto* m = env->message_as_wafer_wire_ErrorReply();
      r.type = BoardReplyType::kError;
      r.detail = Str(m->detail());
      r.status = StatusFromWire(static_cast<uint16_t>(m->code()));
      if (r.status.ok()) r.status = Internal();  // An error reply always means failure.
      r.frame_crc_failed = m->code() == wire::ErrorCode::kDataLoss;
      return r;
    }
    case wb::BoardMessage::StepReply: {
      const auto* m = env->message_as_StepReply();
      r.type = BoardReplyType::kStep;
      if (const auto* results = m->results()) {
        for (const wb::SeqResult* s : *results) {
          SeqResult out;
          out.slot = s->slot();
          if (s->tokens() != nullptr) out.tokens.assign(s->tokens()->begin(), s->tokens()->end());
          out.status = StatusFromWire(static_cast<uint16_t>(s->code()));
          out.context_tokens = s->context_tokens();
          if (s->hidden_out() != nullptr) {
            out.hidden_out.assign(s->hidden_out()->begin(), s->hidden_out()->end());
          }
          r.step.results.push_back(std::move(out));
        }
      }
      if (const auto* t = m->device_time()) {
        r.step.device_time = DeviceTime{t->total_ns(), t->compute_ns(), t->fabric_ns(),
                                        t->inter_wafer_ns(), t->host_io_ns()};
      }
      if (const wb::PipelineReport* p = m->pipeline()) {
        PipelineReport& out = r.step.pipeline;
        out.present = true;
        out.passes = p->passes();
        out.hidden_values = p->hidden_values();
        if (!wire::ElementsAligned(p->stage_busy_ns())) {
          return fail("PipelineReport.stage_busy_ns: elements not 8-byte aligned");
        }
        if (p->stage_busy_ns() != nullptr) {
          out.stage_busy_ns.assign(p->stage_busy_ns()->begin(), p->stage_busy_ns()->end());
        }
        out.failed_stage = p->failed_stage();
        if (out.failed_stage != 0) {
          out.failed = StatusFromWire(static_cast<uint16_t>(p->failed_code()));
          if (out.failed.ok()) out.failed = Internal();  // A failed stage always failed.
          out.failed_detail = Str(p->failed_detail());
        }
      }
      return r;
    }
    case wb::BoardMessage::Telemetry: {
      const auto* m = env->message_as_Telemetry();
      r.type = BoardReplyType::kTelemetry;
      BoardTelemetry& t = r.telemetry;
      t.state = FromWire(m->state());
      if (m->region_temp_c() != nullptr) {
        t.region_temp_c.assign(m->region_temp_c()->begin(), m->region_temp_c()->end());
      }
      t.power_w = m->power_w();
      t.clock_hz = m->clock_hz();
      t.coolant_in_c = m->coolant_in_c();
      t.coolant_out_c = m->coolant_out_c();
      t.sram_used_bytes = m->sram_used_bytes();
      t.sram_total_bytes = m->sram_total_bytes();
      t.steps = m->steps();
      t.ecc_correctable = m->ecc_correctable();
      t.ecc_uncorrectable = m->ecc_uncorrectable();
      if (!wire::ElementsAligned(m->region_clock_hz())) {
        return fail("TelemetryReply.region_clock_hz: elements not 8-byte aligned");
      }
      if (m->region_clock_hz() != nullptr) {
        t.region_clock_hz.assign(m->region_clock_hz()->begin(), m->region_clock_hz()->end());
      }
      t.core_power_w = m->core_power_w();
      t.sram_power_w = m->sram_power_w();
      t.io_power_w = m->io_power_w();
      t.coolant_flow_kg_s = m->coolant_flow_kg_s();
      t.power_cap_w = m->power_cap_w();
      t.throttled = m->throttled();
      t.thermal_trip = m->thermal_trip();
      t.link_crc_errors = m->link_crc_errors();
      t.runtime_failed_pes = m->runtime_failed_pes();
      return r;
    }
    case wb::BoardMessage::ErrorLogReply: {
      const auto* m = env->message_as_ErrorLogReply();
      r.type = BoardReplyType::kErrorLog;
      BoardErrorLog& log = r.error_log;
      log.next_sequence = m->next_sequence();
      log.dropped_count = m->dropped_count();
      log.overwritten_total = m->overwritten_total();
      if (const auto* records = m->records()) {
        for (const wb::ErrorRecord* e : *records) {
          BoardLogRecord rec;
          rec.sequence = e->sequence();
          rec.timestamp_ns = e->timestamp_ns();
          const auto severity = static_cast<uint8_t>(e->severity());
          // Values read off the wire: an unknown severity is reported as the worst.
          rec.severity = severity <= static_cast<uint8_t>(wb::LogSeverity::MAX)
                             ? static_cast<BoardLogSeverity>(severity)
                             : BoardLogSeverity::kFatal;
          rec.code = static_cast<uint16_t>(e->code());
          if (!wire::ElementsAligned(e->args())) {
            return fail("ErrorLogReply.records.args: elements not 8-byte aligned");
          }
          if (e->args() != nullptr) rec.args.assign(e->args()->begin(), e->args()->end());
          log.records.push_back(std::move(rec));
        }
      }
      return r;
    }
    case wb::BoardMessage::GeometryReply: {
      const auto* m = env->message_as_GeometryReply();
      r.type = BoardReplyType::kGeometry;
      BoardHarvestMap& g = r.geometry;
      g.physical_rows = m->physical_rows();
      g.physical_cols = m->physical_cols();
      g.spare_cols_per_row = m->spare_cols_per_row();
      g.usable_width = m->usable_width();
      g.usable_height = m->usable_height();
      if (m->row_failed() != nullptr) {
        g.row_failed.assign(m->row_failed()->begin(), m->row_failed()->end());
      }
      if (m->dropped_rows() != nullptr) {
        g.dropped_rows.assign(m->dropped_rows()->begin(), m->dropped_rows()->end());
      }
      g.runtime_remaps = m->runtime_remaps();
      g.harvested = m->harvested();
      return r;
    }
    case wb::BoardMessage::FirmwareSlotsReply: {
      const auto* m = env->message_as_FirmwareSlotsReply();
      r.type = BoardReplyType::kFirmwareSlots;
      BoardFirmwareSlots& f = r.firmware_slots;
      f.active_slot = m->active_slot();
      f.fallback_slot = m->fallback_slot();
      f.pending = m->pending();
      f.pending_slot = m->pending_slot();
      f.trial = m->trial();
      f.signing_key = m->signing_key();
      if (m->slots() != nullptr) {
        for (const wb::FirmwareSlot* x : *m->slots()) {
          BoardFirmwareSlot slot;
          slot.slot = x->slot();
          slot.valid = x->valid();
          slot.size = x->size();
          slot.crc32c = x->crc32c();
          slot.has_signature = x->has_signature();
          if (x->signature() != nullptr) {
            slot.signature.assign(x->signature()->begin(), x->signature()->end());
          }
          if (x->version() != nullptr) slot.version = x->version()->str();
          f.slots.push_back(std::move(slot));
        }
      }
      return r;
    }
    case wb::BoardMessage::FaultReply: {
      const auto* m = env->message_as_FaultReply();
      r.type = BoardReplyType::kFaults;
      r.faults.next_sequence = m->next_sequence();
      if (const auto* faults = m->faults()) {
        for (const wb::FaultReport* f : *faults) {
          BoardFaultReport out;
          out.sequence = f->sequence();
          out.timestamp_ns = f->timestamp_ns();
          const auto kind = static_cast<uint8_t>(f->kind());
          // Values read off the wire: an unknown kind is reported as kNone.
          out.kind = kind <= static_cast<uint8_t>(wb::FaultKind::MAX)
                         ? static_cast<BoardFaultKind>(kind)
                         : BoardFaultKind::kNone;
          out.row = f->row();
          out.pe = f->pe();
          out.remapped = f->remapped();
          out.model_id = f->model_id();
          if (f->restage_tensors() != nullptr) {
            out.restage_tensors.assign(f->restage_tensors()->begin(),
                                       f->restage_tensors()->end());
          }
          out.kv_cache_lost = f->kv_cache_lost();
          r.faults.faults.push_back(std::move(out));
        }
      }
      return r;
    }
    case wb::BoardMessage::DiagnosticReply: {
      const auto* m = env->message_as_DiagnosticReply();
      r.type = BoardReplyType::kDiagnostic;
      BoardDiagnostic& d = r.diagnostic;
      const auto test = static_cast<uint8_t>(m->test());
      // A value read off the wire: an unknown test is reported as kNone.
      d.test = test <= static_cast<uint8_t>(wb::DiagTest::MAX) ? static_cast<BoardDiagTest>(test)
                                                                : BoardDiagTest::kNone;
      d.first_row = m->first_row();
      d.row_count = m->row_count();
      d.units_tested = m->units_tested();
      d.failures = m->failures();
      d.device_ns = m->device_ns();
      if (const auto* findings = m->findings()) {
        for (const wb::DiagFinding* f : *findings) {
          d.findings.push_back(BoardDiagFinding{f->row(), f->pe(), f->region(), f->detail(),
                                                f->retired(), f->remapped()});
        }
      }
      return r;
    }
    case wb::BoardMessage::wafer_wire_Heartbeat:
      r.type = BoardReplyType::kHeartbeat;
      r.heartbeat_sent_ns = env->message_as_wafer_wire_Heartbeat()->sent_ns();
      return r;
    default:
      return fail("message is not a board reply");
  }
}

}  // namespace wafer::host

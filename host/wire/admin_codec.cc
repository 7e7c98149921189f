#include "host/wire/admin_codec.h"

#include <flatbuffers/flatbuffers.h>

#include "host/wire/envelope.h"
#include "schemas/admin_generated.h"
#include "schemas/vector_alignment.h"

namespace wafer::host {
namespace fb = ::flatbuffers;
namespace wa = ::wafer::wire::admin;
namespace ww = ::wafer::wire;

namespace {

std::string Str(const fb::String* s) { return s ? s->str() : std::string(); }

using Encoded = std::pair<wa::AdminMessage, fb::Offset<void>>;

template <typename T, typename V>
std::vector<T> Vec(const fb::Vector<V>* v) {
  return v ? std::vector<T>(v->begin(), v->end()) : std::vector<T>();
}

fb::Offset<wa::BoardInfo> EncodeBoardInfo(fb::FlatBufferBuilder& b, const BoardInfo& x) {
  auto endpoint = b.CreateString(x.endpoint);
  auto board_id = b.CreateString(x.board_id);
  auto preset = b.CreateString(x.preset);
  auto firmware = b.CreateString(x.firmware_version);
  auto drain = b.CreateString(x.drain);
  auto temps = b.CreateVector(x.region_temp_c);
  return wa::CreateBoardInfo(b, x.index, endpoint, static_cast<wa::BoardState>(x.state), board_id,
                             preset, firmware, x.usable_pes, x.sram_bytes, x.sram_used_bytes,
                             x.max_temperature_c, x.power_w, x.steps, drain, temps, x.busy_s,
                             x.tokens_generated);
}

BoardInfo DecodeBoardInfo(const wa::BoardInfo* x) {
  if (x == nullptr) return BoardInfo{};
  return BoardInfo{x->index(),           Str(x->endpoint()),       static_cast<BoardState>(x->state()),
                   Str(x->board_id()),   Str(x->preset()),         Str(x->firmware_version()),
                   x->usable_pes(),      x->sram_bytes(),          x->sram_used_bytes(),
                   x->max_temperature_c(), x->power_w(),           x->steps(),
                   Str(x->drain()),      Vec<float>(x->region_temp_c()), x->busy_s(),
                   x->tokens_generated()};
}

// A job state read off the wire: one this build does not know is kUnknown.
JobState DecodeJobState(wa::JobState wire) {
  switch (wire) {
    case wa::JobState::kQueued: return JobState::kQueued;
    case wa::JobState::kRunning: return JobState::kRunning;
    case wa::JobState::kFinished: return JobState::kFinished;
    default: return JobState::kUnknown;
  }
}

fb::Offset<wa::JobSummary> EncodeJobSummary(fb::FlatBufferBuilder& b, const JobSummary& x) {
  auto tenant = b.CreateString(x.tenant);
  auto model = b.CreateString(x.model);
  auto cls = b.CreateString(x.priority_class);
  auto reason = b.CreateString(x.finish_reason);
  return wa::CreateJobSummary(b, x.job_id, tenant, model, static_cast<wa::JobState>(x.state), cls,
                              x.priority, x.queue_position, x.age_ms, x.tokens_generated, reason);
}

fb::Offset<wa::HealthIncident> EncodeIncident(fb::FlatBufferBuilder& b,
                                              const HealthIncidentInfo& x) {
  auto name = b.CreateString(x.code_name);
  auto message = b.CreateString(x.message);
  auto state = b.CreateString(x.state);
  auto last = b.CreateString(x.last_action);
  auto action = b.CreateString(x.action);
  return wa::CreateHealthIncident(b, x.id, x.board, x.code, name, message, state,
                                  x.opened_unix_ms, x.closed_unix_ms, x.recoveries, last, action);
}

HealthIncidentInfo DecodeIncident(const wa::HealthIncident* x) {
  return HealthIncidentInfo{x->id(),           x->board(),          x->code(),
                            Str(x->code_name()), Str(x->message()), Str(x->state()),
                            x->opened_unix_ms(), x->closed_unix_ms(), x->recoveries(),
                            Str(x->last_action()), Str(x->action())};
}

// A level read off the wire; one this build does not know reads as the worst.
WireHealthLevel DecodeLevel(wa::HealthLevel level) {
  switch (level) {
    case wa::HealthLevel::kPass: return WireHealthLevel::kPass;
    case wa::HealthLevel::kWarn: return WireHealthLevel::kWarn;
    default: return WireHealthLevel::kFail;
  }
}

// An outcome read off the wire; one this build does not know reads as the worst.
WireDiagOutcome DecodeDiagOutcome(wa::DiagOutcome outcome) {
  switch (outcome) {
    case wa::DiagOutcome::kPass: return WireDiagOutcome::kPass;
    case wa::DiagOutcome::kWarn: return WireDiagOutcome::kWarn;
    case wa::DiagOutcome::kSkip: return WireDiagOutcome::kSkip;
    default: return WireDiagOutcome::kFail;
  }
}

JobSummary DecodeJobSummary(const wa::JobSummary* x) {
  if (x == nullptr) return JobSummary{};
  JobState state = JobState::kUnknown;
  switch (x->state()) {  // A value read off the wire: one this build does not know is kUnknown.
    case wa::JobState::kQueued: state = JobState::kQueued; break;
    case wa::JobState::kRunning: state = JobState::kRunning; break;
    case wa::JobState::kFinished: state = JobState::kFinished; break;
    default: break;
  }
  JobSummary r;
  r.job_id = x->job_id();
  r.tenant = Str(x->tenant());
  r.model = Str(x->model());
  r.state = state;
  r.priority_class = Str(x->priority_class());
  r.priority = x->priority();
  r.queue_position = x->queue_position();
  r.age_ms = x->age_ms();
  r.tokens_generated = x->tokens_generated();
  r.finish_reason = Str(x->finish_reason());
  return r;
}

struct Encoder {
  fb::FlatBufferBuilder& b;

  Encoded operator()(const StatusQuery& m) {
    return {wa::AdminMessage::StatusQuery, wa::CreateStatusQuery(b, m.request_tag).Union()};
  }
  Encoded operator()(const StatusReply& m) {
    std::vector<fb::Offset<wa::BoardInfo>> boards;
    for (const BoardInfo& x : m.boards) boards.push_back(EncodeBoardInfo(b, x));
    std::vector<fb::Offset<wa::ModelInfo>> models;
    for (const ModelInfo& x : m.models) {
      auto name = b.CreateString(x.name);
      auto path = b.CreateString(x.path);
      auto on = b.CreateVector(x.boards);
      models.push_back(wa::CreateModelInfo(b, name, path, static_cast<wa::ModelState>(x.state),
                                           x.board, x.parameters, x.weight_bytes,
                                           x.context_length, x.slots, x.slots_used, on));
    }
    auto version = b.CreateString(m.version);
    auto bv = b.CreateVector(boards);
    auto mv = b.CreateVector(models);
    auto job_ep = b.CreateString(m.job_endpoint);
    auto metrics = b.CreateString(m.metrics_url);
    std::vector<fb::Offset<wa::ModelQueue>> queues;
    for (const ModelQueue& q : m.queues) {
      std::vector<fb::Offset<wa::ClassQueue>> classes;
      for (const ClassQueue& c : q.classes) {
        classes.push_back(wa::CreateClassQueue(b, b.CreateString(c.name), c.queued));
      }
      auto model = b.CreateString(q.model);
      auto cv = b.CreateVector(classes);
      queues.push_back(wa::CreateModelQueue(b, model, cv));
    }
    auto qv = b.CreateVector(queues);
    std::vector<fb::Offset<wa::TenantActivity>> tenants;
    for (const TenantActivity& t : m.tenants) {
      tenants.push_back(wa::CreateTenantActivity(b, b.CreateString(t.tenant), t.queued, t.running,
                                                 t.tokens_generated));
    }
    auto tv = b.CreateVector(tenants);
    return {wa::AdminMessage::StatusReply,
            wa::CreateStatusReply(b, m.request_tag, version, m.uptime_s, bv, mv, m.jobs_queued,
                                  m.jobs_running, m.jobs_finished, m.tokens_generated, m.draining,
                                  job_ep, metrics, qv, tv)
                .Union()};
  }
  Encoded operator()(const LoadModel& m) {
    auto name = b.CreateString(m.name);
    auto path = b.CreateString(m.path);
    auto boards = b.CreateVector(m.boards);
    return {wa::AdminMessage::LoadModel,
            wa::CreateLoadModel(b, m.request_tag, name, path, m.board, m.slots, m.context_length,
                                boards)
                .Union()};
  }
  Encoded operator()(const LoadProgress& m) {
    auto phase = b.CreateString(m.phase);
    return {wa::AdminMessage::LoadProgress,
            wa::CreateLoadProgress(b, m.request_tag, m.bytes_done, m.bytes_total,
                                   m.bytes_per_second, m.eta_s, phase)
                .Union()};
  }
  Encoded operator()(const UnloadModel& m) {
    auto name = b.CreateString(m.name);
    return {wa::AdminMessage::UnloadModel, wa::CreateUnloadModel(b, m.request_tag, name, m.board).Union()};
  }
  Encoded operator()(const Drain& m) {
    return {wa::AdminMessage::Drain, wa::CreateDrain(b, m.request_tag).Union()};
  }
  Encoded operator()(const DrainBoard& m) {
    return {wa::AdminMessage::DrainBoard,
            wa::CreateDrainBoard(b, m.request_tag, m.board, m.evacuate, m.undrain).Union()};
  }
  Encoded operator()(const ResetBoard& m) {
    return {wa::AdminMessage::ResetBoard, wa::CreateResetBoard(b, m.request_tag, m.board).Union()};
  }
  Encoded operator()(const OperationResult& m) {
    auto detail = b.CreateString(m.detail);
    return {wa::AdminMessage::OperationResult,
            wa::CreateOperationResult(b, m.request_tag, static_cast<ww::ErrorCode>(m.code), detail,
                                      m.elapsed_s)
                .Union()};
  }
  Encoded operator()(const Heartbeat& m) {
    return {wa::AdminMessage::wafer_wire_Heartbeat, ww::CreateHeartbeat(b, m.sent_ns, m.is_reply).Union()};
  }
  Encoded operator()(const ReadBoardLog& m) {
    return {wa::AdminMessage::ReadBoardLog,
            wa::CreateReadBoardLog(b, m.request_tag, m.board, m.from_sequence).Union()};
  }
  Encoded operator()(const BoardLogReply& m) {
    std::vector<fb::Offset<wa::BoardLogEntry>> records;
    for (const BoardLogEntry& e : m.records) {
      records.push_back(wa::CreateBoardLogEntry(b, e.sequence, e.timestamp_ns,
                                                b.CreateString(e.severity), b.CreateString(e.code),
                                                b.CreateVector(e.args)));
    }
    auto vec = b.CreateVector(records);
    return {wa::AdminMessage::BoardLogReply,
            wa::CreateBoardLogReply(b, m.request_tag, m.board, vec, m.next_sequence, m.dropped)
                .Union()};
  }
  Encoded operator()(const InjectFault& m) {
    auto kind = b.CreateString(m.kind);
    return {wa::AdminMessage::InjectFault,
            wa::CreateInjectFault(b, m.request_tag, m.board, kind, m.region, m.row, m.pe, m.value)
                .Union()};
  }
  Encoded operator()(const ShowBoard& m) {
    return {wa::AdminMessage::ShowBoard, wa::CreateShowBoard(b, m.request_tag, m.board).Union()};
  }
  Encoded operator()(const BoardDetail& m) {
    auto info = EncodeBoardInfo(b, m.info);
    auto row_failed = b.CreateVector(m.row_failed);
    auto dropped = b.CreateVector(m.dropped_rows);
    auto temps = b.CreateVector(m.region_temp_c);
    auto clocks = b.CreateVector(m.region_clock_hz);
    return {wa::AdminMessage::BoardDetail,
            wa::CreateBoardDetail(b, m.request_tag, info, m.physical_rows, m.physical_cols,
                                  m.spare_cols_per_row, m.usable_width, m.usable_height,
                                  m.healthy_pes, m.spare_pes, m.failed_pes, row_failed, dropped,
                                  m.runtime_remaps, temps, clocks, m.core_power_w, m.sram_power_w,
                                  m.io_power_w, m.coolant_in_c, m.coolant_out_c, m.throttled,
                                  m.thermal_trip, m.ecc_correctable, m.ecc_uncorrectable)
                .Union()};
  }
  Encoded operator()(const ListJobs& m) {
    auto tenant = b.CreateString(m.tenant);
    return {wa::AdminMessage::ListJobs,
            wa::CreateListJobs(b, m.request_tag, tenant, static_cast<wa::JobStateFilter>(m.state),
                               m.limit)
                .Union()};
  }
  Encoded operator()(const JobList& m) {
    std::vector<fb::Offset<wa::JobSummary>> jobs;
    jobs.reserve(m.jobs.size());
    for (const JobSummary& x : m.jobs) jobs.push_back(EncodeJobSummary(b, x));
    auto vec = b.CreateVector(jobs);
    return {wa::AdminMessage::JobList,
            wa::CreateJobList(b, m.request_tag, vec, m.total, m.truncated).Union()};
  }
  Encoded operator()(const ShowJob& m) {
    return {wa::AdminMessage::ShowJob, wa::CreateShowJob(b, m.request_tag, m.job_id).Union()};
  }
  Encoded operator()(const JobDetail& m) {
    auto summary = EncodeJobSummary(b, m.summary);
    auto detail = b.CreateString(m.detail);
    return {wa::AdminMessage::JobDetail,
            wa::CreateJobDetail(b, m.request_tag, summary, m.prompt_tokens, m.max_tokens,
                                m.accepted_unix_ms, m.deadline_unix_ms, m.ttft_target_ms,
                                m.first_token, m.ttft_ns, m.queued_ns, m.total_ns, m.device_ns,
                                m.chunks, m.cancel_requested,
                                static_cast<ww::ErrorCode>(m.error_code), detail)
                .Union()};
  }
  Encoded operator()(const HealthQuery& m) {
    return {wa::AdminMessage::HealthQuery, wa::CreateHealthQuery(b, m.request_tag, m.board).Union()};
  }
  Encoded operator()(const HealthReply& m) {
    std::vector<fb::Offset<wa::BoardHealth>> boards;
    for (const BoardHealthInfo& x : m.boards) {
      std::vector<fb::Offset<wa::HealthRuleState>> rules;
      for (const HealthRuleState& r : x.rules) {
        auto rule = b.CreateString(r.rule);
        auto name = b.CreateString(r.code_name);
        auto message = b.CreateString(r.message);
        auto action = b.CreateString(r.action);
        rules.push_back(wa::CreateHealthRuleState(b, rule, static_cast<wa::HealthLevel>(r.level),
                                                  r.code, name, message, action));
      }
      auto rule_vec = b.CreateVector(rules);
      fb::Offset<wa::HealthIncident> open;
      if (x.open) open = EncodeIncident(b, *x.open);
      std::vector<fb::Offset<wa::HealthIncident>> closed;
      for (const HealthIncidentInfo& i : x.closed) closed.push_back(EncodeIncident(b, i));
      auto closed_vec = b.CreateVector(closed);
      auto drain = b.CreateString(x.drain);
      boards.push_back(wa::CreateBoardHealth(b, x.board, static_cast<wa::HealthLevel>(x.level),
                                             x.evaluated, rule_vec, open, closed_vec, drain));
    }
    auto vec = b.CreateVector(boards);
    return {wa::AdminMessage::HealthReply, wa::CreateHealthReply(b, m.request_tag, vec).Union()};
  }
  Encoded operator()(const ClearHealthIncident& m) {
    return {wa::AdminMessage::ClearHealthIncident,
            wa::CreateClearHealthIncident(b, m.request_tag, m.board).Union()};
  }
  Encoded operator()(const RunDiagnostics& m) {
    return {wa::AdminMessage::RunDiagnostics,
            wa::CreateRunDiagnostics(b, m.request_tag, m.board, m.level).Union()};
  }
  Encoded operator()(const DiagnosticProgress& m) {
    auto test = b.CreateString(m.test);
    return {wa::AdminMessage::DiagnosticProgress,
            wa::CreateDiagnosticProgress(b, m.request_tag, m.board, test, m.done, m.total).Union()};
  }
  Encoded operator()(const DiagnosticReport& m) {
    std::vector<fb::Offset<wa::DiagnosticTest>> tests;
    for (const DiagnosticTest& t : m.tests) {
      auto name = b.CreateString(t.name);
      auto code_name = b.CreateString(t.code_name);
      auto message = b.CreateString(t.message);
      auto action = b.CreateString(t.action);
      std::vector<fb::Offset<wa::DiagnosticFinding>> findings;
      for (const DiagnosticFinding& f : t.findings) {
        findings.push_back(wa::CreateDiagnosticFinding(b, f.row, f.pe, f.region, f.detail,
                                                       f.retired, f.remapped));
      }
      auto finding_vec = b.CreateVector(findings);
      tests.push_back(wa::CreateDiagnosticTest(
          b, name, static_cast<wa::DiagOutcome>(t.outcome), t.code, code_name, message, action,
          t.units_tested, t.failures, finding_vec, t.retired, t.elapsed_s, t.device_ns));
    }
    auto test_vec = b.CreateVector(tests);
    return {wa::AdminMessage::DiagnosticReport,
            wa::CreateDiagnosticReport(b, m.request_tag, m.board, m.level,
                                       static_cast<wa::DiagOutcome>(m.outcome), test_vec,
                                       m.pes_retired, m.elapsed_s)
                .Union()};
  }
  Encoded operator()(const CancelJobRequest& m) {
    return {wa::AdminMessage::CancelJobRequest,
            wa::CreateCancelJobRequest(b, m.request_tag, m.job_id).Union()};
  }
  Encoded operator()(const TailJob& m) {
    return {wa::AdminMessage::TailJob,
            wa::CreateTailJob(b, m.request_tag, m.job_id, m.from_seq).Union()};
  }
  Encoded operator()(const JobTokens& m) {
    auto tokens = b.CreateVector(m.tokens);
    auto text = b.CreateString(m.text);
    auto reason = b.CreateString(m.finish_reason);
    return {wa::AdminMessage::JobTokens,
            wa::CreateJobTokens(b, m.request_tag, m.job_id, m.seq, tokens, text,
                                static_cast<wa::JobState>(m.state), m.tokens_generated,
                                m.finished, reason)
                .Union()};
  }
  Encoded operator()(const FirmwareQuery& m) {
    return {wa::AdminMessage::FirmwareQuery,
            wa::CreateFirmwareQuery(b, m.request_tag, m.board).Union()};
  }
  Encoded operator()(const FirmwareInfo& m) {
    std::vector<fb::Offset<wa::FirmwareSlotInfo>> slots;
    for (const FirmwareSlotInfo& x : m.slots) {
      auto signature = b.CreateVector(x.signature);
      auto version = b.CreateString(x.version);
      slots.push_back(wa::CreateFirmwareSlotInfo(b, x.slot, x.valid, x.size, x.crc32c,
                                                 x.is_signed, signature, version));
    }
    auto running = b.CreateString(m.running_version);
    auto sv = b.CreateVector(slots);
    return {wa::AdminMessage::FirmwareInfo,
            wa::CreateFirmwareInfo(b, m.request_tag, m.board, m.active_slot, running, m.pending,
                                   m.pending_slot, m.trial, m.fallback_slot, m.signing_key, sv)
                .Union()};
  }
  Encoded operator()(const UpdateFirmware& m) {
    auto image = b.CreateVector(m.image);
    auto signature = b.CreateVector(m.signature);
    return {wa::AdminMessage::UpdateFirmware,
            wa::CreateUpdateFirmware(b, m.request_tag, m.board, image, signature).Union()};
  }
  Encoded operator()(const RollbackFirmware& m) {
    return {wa::AdminMessage::RollbackFirmware,
            wa::CreateRollbackFirmware(b, m.request_tag, m.board).Union()};
  }
  Encoded operator()(const ErrorReply& m) {
    auto detail = b.CreateString(m.detail);
    return {wa::AdminMessage::wafer_wire_ErrorReply,
            ww::CreateErrorReply(b, static_cast<ww::ErrorCode>(m.code), detail, m.request_tag)
                .Union()};
  }
};

}  // namespace

std::string EncodeAdmin(const AdminMessage& message) {
  thread_local fb::FlatBufferBuilder builder(1024);
  builder.Clear();
  auto [type, body] = std::visit(Encoder{builder}, message);
  ww::ProtocolVersion version(kProtocolMajor, kProtocolMinor);
  builder.Finish(wa::CreateAdminEnvelope(builder, &version, type, body),
                 wa::AdminEnvelopeIdentifier());
  return std::string(reinterpret_cast<const char*>(builder.GetBufferPointer()),
                     builder.GetSize());
}

namespace {

// The decoder proper (see DecodeFrame).
bool DecodeAdminInto(std::span<const std::byte> frame, AdminMessage* out, Error* error,
                     uint64_t* request_tag) {
  static constexpr EnvelopeSchema<wa::AdminEnvelope> kSchema{
      wa::AdminEnvelopeBufferHasIdentifier, wa::VerifyAdminEnvelopeBuffer, wa::GetAdminEnvelope,
      "WADM"};
  const wa::AdminEnvelope* env = OpenEnvelope(frame, kSchema, error);
  if (env == nullptr) return false;
  auto fail = [&](ErrorCode code, std::string detail) {
    *error = Error{DecodeErrorStatus(code), std::move(detail)};
    return false;
  };
  switch (env->message_type()) {
    case wa::AdminMessage::StatusQuery:
      *out = StatusQuery{env->message_as_StatusQuery()->request_tag()};
      return true;
    case wa::AdminMessage::StatusReply: {
      const auto* m = env->message_as_StatusReply();
      StatusReply r;
      r.request_tag = m->request_tag();
      r.version = Str(m->version());
      r.uptime_s = m->uptime_s();
      if (m->boards() != nullptr) {
        for (const wa::BoardInfo* x : *m->boards()) r.boards.push_back(DecodeBoardInfo(x));
      }
      if (m->models() != nullptr) {
        for (const wa::ModelInfo* x : *m->models()) {
          r.models.push_back(ModelInfo{Str(x->name()), Str(x->path()),
                                       static_cast<ModelState>(x->state()), x->board(),
                                       x->parameters(), x->weight_bytes(), x->context_length(),
                                       x->slots(), x->slots_used(), Vec<uint32_t>(x->boards())});
        }
      }
      r.jobs_queued = m->jobs_queued();
      r.jobs_running = m->jobs_running();
      r.jobs_finished = m->jobs_finished();
      r.tokens_generated = m->tokens_generated();
      r.draining = m->draining();
      r.job_endpoint = Str(m->job_endpoint());
      r.metrics_url = Str(m->metrics_url());
      if (m->queues() != nullptr) {
        for (const wa::ModelQueue* q : *m->queues()) {
          ModelQueue queue{Str(q->model()), {}};
          if (q->classes() != nullptr) {
            for (const wa::ClassQueue* c : *q->classes()) {
              queue.classes.push_back(ClassQueue{Str(c->name()), c->queued()});
            }
          }
          r.queues.push_back(std::move(queue));
        }
      }
      if (m->tenants() != nullptr) {
        for (const wa::TenantActivity* t : *m->tenants()) {
          r.tenants.push_back(
              TenantActivity{Str(t->tenant()), t->queued(), t->running(), t->tokens_generated()});
        }
      }
      *out = std::move(r);
      return true;
    }
    case wa::AdminMessage::LoadModel: {
      const auto* m = env->message_as_LoadModel();
      *out = LoadModel{m->request_tag(), Str(m->name()), Str(m->path()), m->board(), m->slots(),
                       m->context_length(), Vec<uint32_t>(m->boards())};
      return true;
    }
    case wa::AdminMessage::LoadProgress: {
      const auto* m = env->message_as_LoadProgress();
      *out = LoadProgress{m->request_tag(), m->bytes_done(), m->bytes_total(),
                          m->bytes_per_second(), m->eta_s(), Str(m->phase())};
      return true;
    }
    case wa::AdminMessage::UnloadModel: {
      const auto* m = env->message_as_UnloadModel();
      *out = UnloadModel{m->request_tag(), Str(m->name()), m->board()};
      return true;
    }
    case wa::AdminMessage::Drain:
      *out = Drain{env->message_as_Drain()->request_tag()};
      return true;
    case wa::AdminMessage::DrainBoard: {
      const auto* m = env->message_as_DrainBoard();
      *out = DrainBoard{m->request_tag(), m->board(), m->evacuate(), m->undrain()};
      return true;
    }
    case wa::AdminMessage::ResetBoard: {
      const auto* m = env->message_as_ResetBoard();
      *out = ResetBoard{m->request_tag(), m->board()};
      return true;
    }
    case wa::AdminMessage::OperationResult: {
      const auto* m = env->message_as_OperationResult();
      *out = OperationResult{m->request_tag(), static_cast<ErrorCode>(m->code()), Str(m->detail()),
                             m->elapsed_s()};
      return true;
    }
    case wa::AdminMessage::wafer_wire_Heartbeat: {
      const auto* m = env->message_as_wafer_wire_Heartbeat();
      *out = Heartbeat{m->sent_ns(), m->is_reply()};
      return true;
    }
    case wa::AdminMessage::wafer_wire_ErrorReply: {
      const auto* m = env->message_as_wafer_wire_ErrorReply();
      *out = ErrorReply{static_cast<ErrorCode>(m->code()), Str(m->detail()), m->request_tag()};
      return true;
    }
    case wa::AdminMessage::ReadBoardLog: {
      const auto* m = env->message_as_ReadBoardLog();
      *out = ReadBoardLog{m->request_tag(), m->board(), m->from_sequence()};
      return true;
    }
    case wa::AdminMessage::BoardLogReply: {
      const auto* m = env->message_as_BoardLogReply();
      BoardLogReply r{m->request_tag(), m->board(), {}, m->next_sequence(), m->dropped()};
      if (m->records() != nullptr) {
        for (const wa::BoardLogEntry* e : *m->records()) {
          BoardLogEntry entry{e->sequence(), e->timestamp_ns(), Str(e->severity()), Str(e->code()),
                              {}};
          if (!::wafer::wire::ElementsAligned(e->args())) {
            return fail(ErrorCode::kMalformedMessage,
                        "BoardLogReply.records.args: elements not 8-byte aligned");
          }
          if (e->args() != nullptr) entry.args.assign(e->args()->begin(), e->args()->end());
          r.records.push_back(std::move(entry));
        }
      }
      *out = std::move(r);
      return true;
    }
    case wa::AdminMessage::InjectFault: {
      const auto* m = env->message_as_InjectFault();
      *out = InjectFault{m->request_tag(), m->board(), Str(m->kind()), m->region(), m->row(),
                         m->pe(), m->value()};
      return true;
    }
    case wa::AdminMessage::ShowBoard: {
      const auto* m = env->message_as_ShowBoard();
      *out = ShowBoard{m->request_tag(), m->board()};
      return true;
    }
    case wa::AdminMessage::BoardDetail: {
      const auto* m = env->message_as_BoardDetail();
      BoardDetail d;
      d.request_tag = m->request_tag();
      d.info = DecodeBoardInfo(m->info());
      d.physical_rows = m->physical_rows();
      d.physical_cols = m->physical_cols();
      d.spare_cols_per_row = m->spare_cols_per_row();
      d.usable_width = m->usable_width();
      d.usable_height = m->usable_height();
      d.healthy_pes = m->healthy_pes();
      d.spare_pes = m->spare_pes();
      d.failed_pes = m->failed_pes();
      d.row_failed = Vec<uint16_t>(m->row_failed());
      d.dropped_rows = Vec<uint32_t>(m->dropped_rows());
      d.runtime_remaps = m->runtime_remaps();
      d.region_temp_c = Vec<float>(m->region_temp_c());
      if (!::wafer::wire::ElementsAligned(m->region_clock_hz())) {
        return fail(ErrorCode::kMalformedMessage,
                    "BoardDetail.region_clock_hz: elements not 8-byte aligned");
      }
      d.region_clock_hz = Vec<double>(m->region_clock_hz());
      d.core_power_w = m->core_power_w();
      d.sram_power_w = m->sram_power_w();
      d.io_power_w = m->io_power_w();
      d.coolant_in_c = m->coolant_in_c();
      d.coolant_out_c = m->coolant_out_c();
      d.throttled = m->throttled();
      d.thermal_trip = m->thermal_trip();
      d.ecc_correctable = m->ecc_correctable();
      d.ecc_uncorrectable = m->ecc_uncorrectable();
      *out = std::move(d);
      return true;
    }
    case wa::AdminMessage::ListJobs: {
      const auto* m = env->message_as_ListJobs();
      *request_tag = m->request_tag();
      ListJobs r{m->request_tag(), Str(m->tenant()), JobStateFilter::kUnfinished, m->limit()};
      switch (m->state()) {  // A value read off the wire.
        case wa::JobStateFilter::kUnfinished: r.state = JobStateFilter::kUnfinished; break;
        case wa::JobStateFilter::kQueued: r.state = JobStateFilter::kQueued; break;
        case wa::JobStateFilter::kRunning: r.state = JobStateFilter::kRunning; break;
        case wa::JobStateFilter::kFinished: r.state = JobStateFilter::kFinished; break;
        case wa::JobStateFilter::kAll: r.state = JobStateFilter::kAll; break;
        default:
          return fail(ErrorCode::kInvalidArgument,
                      "ListJobs.state: " + std::to_string(static_cast<int>(m->state())) +
                          " is not a state filter (0 unfinished, 1 queued, 2 running, "
                          "3 finished, 4 all)");
      }
      if (r.tenant.size() > kMaxJobTenantFilterBytes) {
        return fail(ErrorCode::kInvalidArgument,
                    "ListJobs.tenant: " + std::to_string(r.tenant.size()) +
                        " bytes, more than the " + std::to_string(kMaxJobTenantFilterBytes) +
                        " a tenant name may have");
      }
      if (r.limit > kMaxJobListLimit) {
        return fail(ErrorCode::kInvalidArgument,
                    "ListJobs.limit: " + std::to_string(r.limit) + " is above the maximum of " +
                        std::to_string(kMaxJobListLimit));
      }
      *out = std::move(r);
      return true;
    }
    case wa::AdminMessage::JobList: {
      const auto* m = env->message_as_JobList();
      JobList r{m->request_tag(), {}, m->total(), m->truncated()};
      if (m->jobs() != nullptr) {
        r.jobs.reserve(m->jobs()->size());
        for (const wa::JobSummary* x : *m->jobs()) r.jobs.push_back(DecodeJobSummary(x));
      }
      *out = std::move(r);
      return true;
    }
    case wa::AdminMessage::ShowJob: {
      const auto* m = env->message_as_ShowJob();
      *request_tag = m->request_tag();
      if (m->job_id() == 0) {
        return fail(ErrorCode::kInvalidArgument, "ShowJob.job_id: 0 is no job id");
      }
      *out = ShowJob{m->request_tag(), m->job_id()};
      return true;
    }
    case wa::AdminMessage::JobDetail: {
      const auto* m = env->message_as_JobDetail();
      JobDetail d;
      d.request_tag = m->request_tag();
      d.summary = DecodeJobSummary(m->summary());
      d.prompt_tokens = m->prompt_tokens();
      d.max_tokens = m->max_tokens();
      d.accepted_unix_ms = m->accepted_unix_ms();
      d.deadline_unix_ms = m->deadline_unix_ms();
      d.ttft_target_ms = m->ttft_target_ms();
      d.first_token = m->first_token();
      d.ttft_ns = m->ttft_ns();
      d.queued_ns = m->queued_ns();
      d.total_ns = m->total_ns();
      d.device_ns = m->device_ns();
      d.chunks = m->chunks();
      d.cancel_requested = m->cancel_requested();
      d.error_code = static_cast<ErrorCode>(m->error_code());
      d.detail = Str(m->detail());
      *out = std::move(d);
      return true;
    }
    case wa::AdminMessage::CancelJobRequest: {
      const auto* m = env->message_as_CancelJobRequest();
      *request_tag = m->request_tag();
      if (m->job_id() == 0) {
        return fail(ErrorCode::kInvalidArgument, "CancelJobRequest.job_id: 0 is no job id");
      }
      *out = CancelJobRequest{m->request_tag(), m->job_id()};
      return true;
    }
    case wa::AdminMessage::HealthQuery: {
      const auto* m = env->message_as_HealthQuery();
      *request_tag = m->request_tag();
      if (m->board() < -1) {
        return fail(ErrorCode::kInvalidArgument,
                    "HealthQuery.board: " + std::to_string(m->board()) +
                        " is no board (-1: every board)");
      }
      *out = HealthQuery{m->request_tag(), m->board()};
      return true;
    }
    case wa::AdminMessage::HealthReply: {
      const auto* m = env->message_as_HealthReply();
      HealthReply r{m->request_tag(), {}};
      if (m->boards() != nullptr) {
        for (const wa::BoardHealth* x : *m->boards()) {
          BoardHealthInfo info;
          info.board = x->board();
          info.level = DecodeLevel(x->level());
          info.evaluated = x->evaluated();
          if (x->rules() != nullptr) {
            for (const wa::HealthRuleState* s : *x->rules()) {
              info.rules.push_back(HealthRuleState{Str(s->rule()), DecodeLevel(s->level()),
                                                   s->code(), Str(s->code_name()),
                                                   Str(s->message()), Str(s->action())});
            }
          }
          if (x->open() != nullptr) info.open = DecodeIncident(x->open());
          if (x->closed() != nullptr) {
            for (const wa::HealthIncident* i : *x->closed()) info.closed.push_back(DecodeIncident(i));
          }
          info.drain = Str(x->drain());
          r.boards.push_back(std::move(info));
        }
      }
      *out = std::move(r);
      return true;
    }
    case wa::AdminMessage::ClearHealthIncident: {
      const auto* m = env->message_as_ClearHealthIncident();
      *out = ClearHealthIncident{m->request_tag(), m->board()};
      return true;
    }
    case wa::AdminMessage::RunDiagnostics: {
      const auto* m = env->message_as_RunDiagnostics();
      *request_tag = m->request_tag();
      if (m->level() < 1 || m->level() > 3) {
        return fail(ErrorCode::kInvalidArgument,
                    "RunDiagnostics.level: " + std::to_string(m->level()) + " is not 1, 2 or 3");
      }
      *out = RunDiagnostics{m->request_tag(), m->board(), m->level()};
      return true;
    }
    case wa::AdminMessage::DiagnosticProgress: {
      const auto* m = env->message_as_DiagnosticProgress();
      *out = DiagnosticProgress{m->request_tag(), m->board(), Str(m->test()), m->done(),
                                m->total()};
      return true;
    }
    case wa::AdminMessage::DiagnosticReport: {
      const auto* m = env->message_as_DiagnosticReport();
      DiagnosticReport r;
      r.request_tag = m->request_tag();
      r.board = m->board();
      r.level = m->level();
      r.outcome = DecodeDiagOutcome(m->outcome());
      r.pes_retired = m->pes_retired();
      r.elapsed_s = m->elapsed_s();
      if (m->tests() != nullptr) {
        for (const wa::DiagnosticTest* t : *m->tests()) {
          DiagnosticTest test;
          test.name = Str(t->name());
          test.outcome = DecodeDiagOutcome(t->outcome());
          test.code = t->code();
          test.code_name = Str(t->code_name());
          test.message = Str(t->message());
          test.action = Str(t->action());
          test.units_tested = t->units_tested();
          test.failures = t->failures();
          if (t->findings() != nullptr) {
            for (const wa::DiagnosticFinding* f : *t->findings()) {
              test.findings.push_back(DiagnosticFinding{f->row(), f->pe(), f->region(),
                                                        f->detail(), f->retired(), f->remapped()});
            }
          }
          test.retired = t->retired();
          test.elapsed_s = t->elapsed_s();
          test.device_ns = t->device_ns();
          r.tests.push_back(std::move(test));
        }
      }
      *out = std::move(r);
      return true;
    }
    case wa::AdminMessage::TailJob: {
      const auto* m = env->message_as_TailJob();
      *request_tag = m->request_tag();
      if (m->job_id() == 0) return fail(ErrorCode::kInvalidArgument, "TailJob.job_id: 0 is no job id");
      *out = TailJob{m->request_tag(), m->job_id(), m->from_seq()};
      return true;
    }
    case wa::AdminMessage::JobTokens: {
      const auto* m = env->message_as_JobTokens();
      *out = JobTokens{m->request_tag(),          m->job_id(),      m->seq(),
                       Vec<uint32_t>(m->tokens()), Str(m->text()),   DecodeJobState(m->state()),
                       m->tokens_generated(),      m->finished(),    Str(m->finish_reason())};
      return true;
    }
    case wa::AdminMessage::FirmwareQuery: {
      const auto* m = env->message_as_FirmwareQuery();
      *out = FirmwareQuery{m->request_tag(), m->board()};
      return true;
    }
    case wa::AdminMessage::FirmwareInfo: {
      const auto* m = env->message_as_FirmwareInfo();
      FirmwareInfo r;
      r.request_tag = m->request_tag();
      r.board = m->board();
      r.active_slot = m->active_slot();
      r.running_version = Str(m->running_version());
      r.pending = m->pending();
      r.pending_slot = m->pending_slot();
      r.trial = m->trial();
      r.fallback_slot = m->fallback_slot();
      r.signing_key = m->signing_key();
      if (m->slots() != nullptr) {
        for (const wa::FirmwareSlotInfo* x : *m->slots()) {
          r.slots.push_back(FirmwareSlotInfo{x->slot(), x->valid(), x->size(), x->crc32c(),
                                             x->has_signature(), Vec<uint8_t>(x->signature()),
                                             Str(x->version())});
        }
      }
      *out = std::move(r);
      return true;
    }
    case wa::AdminMessage::UpdateFirmware: {
      const auto* m = env->message_as_UpdateFirmware();
      *out = UpdateFirmware{m->request_tag(), m->board(), Vec<uint8_t>(m->image()),
                            Vec<uint8_t>(m->signature())};
      return true;
    }
    case wa::AdminMessage::RollbackFirmware: {
      const auto* m = env->message_as_RollbackFirmware();
      *out = RollbackFirmware{m->request_tag(), m->board()};
      return true;
    }
    default:  // A value read off the wire: NONE or a type this version does not know.
      break;
  }
  return fail(ErrorCode::kWrongMessageType,
              "unknown or empty message type " +
                  std::to_string(static_cast<int>(env->message_type())));
}

}  // namespace

HostResult<AdminMessage> DecodeAdmin(std::span<const std::byte> frame, uint64_t* request_tag) {
  return DecodeFrame<AdminMessage>(frame, request_tag, DecodeAdminInto);
}

}  // namespace wafer::host

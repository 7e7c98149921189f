#include "host/wire/job_codec.h"

#include <flatbuffers/flatbuffers.h>

#include "host/wire/envelope.h"
#include "schemas/job_generated.h"

namespace wafer::host {
namespace fb = ::flatbuffers;
namespace wj = ::wafer::wire::job;
namespace ww = ::wafer::wire;

namespace {

std::string Str(const fb::String* s) { return s ? s->str() : std::string(); }

template <typename T>
std::vector<uint32_t> Ids(const fb::Vector<T>* v) {
  return v ? std::vector<uint32_t>(v->begin(), v->end()) : std::vector<uint32_t>();
}

// One builder per thread, reused so steady-state encoding does not reallocate.
fb::FlatBufferBuilder& Builder() {
  thread_local fb::FlatBufferBuilder builder(1024);
  builder.Clear();
  return builder;
}

struct Encoder {
  fb::FlatBufferBuilder& b;

  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const SubmitJob& m) {
    auto key = b.CreateString(m.idempotency_key);
    auto tenant = b.CreateString(m.tenant);
    auto model = b.CreateString(m.model);
    auto text = b.CreateString(m.prompt_text);
    auto tokens = b.CreateVector(m.prompt_tokens);
    auto sampling = wj::CreateSampling(b, m.sampling.temperature, m.sampling.top_k,
                                       m.sampling.top_p, m.sampling.seed);
    auto stops = b.CreateVector(m.stop_tokens);
    auto off = wj::CreateSubmitJob(b, m.request_tag, key, tenant, model, text, tokens,
                                   m.max_tokens, sampling, m.priority, m.deadline_unix_ms,
                                   m.ttft_target_ms, stops, m.want_text, m.deadline_ms);
    return {wj::JobMessage::SubmitJob, off.Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const JobAccepted& m) {
    return {wj::JobMessage::JobAccepted,
            wj::CreateJobAccepted(b, m.request_tag, m.job_id, m.queue_position, m.duplicate,
                                  m.instance_id)
                .Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const JobRejected& m) {
    auto detail = b.CreateString(m.detail);
    return {wj::JobMessage::JobRejected,
            wj::CreateJobRejected(b, m.request_tag, static_cast<ww::ErrorCode>(m.code), detail,
                                  m.retry_after_ms)
                .Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const TokenChunk& m) {
    auto tokens = b.CreateVector(m.tokens);
    auto text = m.text.empty() ? fb::Offset<fb::String>() : b.CreateString(m.text);
    return {wj::JobMessage::TokenChunk,
            wj::CreateTokenChunk(b, m.job_id, m.seq, m.first_token_index, tokens, text,
                                 m.instance_id)
                .Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const JobFinished& m) {
    auto detail = b.CreateString(m.detail);
    wj::Usage usage(m.prompt_tokens, m.completion_tokens);
    wj::Timings timings(m.timings.queued_ns, m.timings.ttft_ns, m.timings.total_ns,
                        m.timings.device_ns);
    return {wj::JobMessage::JobFinished,
            wj::CreateJobFinished(b, m.job_id, static_cast<wj::FinishReason>(m.reason), &usage,
                                  &timings, m.chunks, static_cast<ww::ErrorCode>(m.error_code),
                                  detail, m.instance_id)
                .Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const CancelJob& m) {
    return {wj::JobMessage::CancelJob, wj::CreateCancelJob(b, m.job_id).Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const CancelResult& m) {
    return {wj::JobMessage::CancelResult,
            wj::CreateCancelResult(b, m.job_id, static_cast<ww::ErrorCode>(m.code),
                                   m.instance_id)
                .Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const JobStatusQuery& m) {
    return {wj::JobMessage::JobStatusQuery, wj::CreateJobStatusQuery(b, m.job_id).Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const JobStatusReply& m) {
    return {wj::JobMessage::JobStatusReply,
            wj::CreateJobStatusReply(b, m.job_id, static_cast<wj::JobState>(m.state),
                                     m.tokens_generated, m.queue_position, m.instance_id)
                .Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const ResumeStream& m) {
    return {wj::JobMessage::ResumeStream, wj::CreateResumeStream(b, m.job_id, m.from_seq, m.instance_id).Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const CapacityQuery& m) {
    return {wj::JobMessage::CapacityQuery, wj::CreateCapacityQuery(b, m.request_tag).Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const CapacityReply& m) {
    std::vector<fb::Offset<wj::ModelCapacity>> models;
    for (const ModelCapacity& c : m.models) {
      std::vector<fb::Offset<wj::ClassCapacity>> classes;
      for (const ClassCapacity& k : c.classes) {
        classes.push_back(wj::CreateClassCapacity(b, b.CreateString(k.name), k.queued,
                                                  k.expected_wait_ms, k.measured));
      }
      std::vector<fb::Offset<wj::ReplicaCapacity>> replicas;
      for (const ReplicaCapacity& r : c.replicas) {
        replicas.push_back(wj::CreateReplicaCapacity(b, b.CreateVector(r.boards), r.free_slots,
                                                     r.total_slots, r.running, r.serving));
      }
      auto name = b.CreateString(c.name);
      auto class_vec = b.CreateVector(classes);
      auto replica_vec = b.CreateVector(replicas);
      models.push_back(wj::CreateModelCapacity(b, name, c.free_slots, c.total_slots,
                                               c.context_length, c.ready, class_vec, replica_vec));
    }
    auto vec = b.CreateVector(models);
    std::vector<fb::Offset<wj::BoardCapacity>> boards;
    for (const BoardCapacity& x : m.boards) {
      boards.push_back(wj::CreateBoardCapacity(b, x.board, x.health, x.drained,
                                               b.CreateString(x.drain), x.incident_code,
                                               b.CreateString(x.incident)));
    }
    auto board_vec = b.CreateVector(boards);
    return {wj::JobMessage::CapacityReply,
            wj::CreateCapacityReply(b, m.request_tag, vec, m.queue_depth, m.queue_limit,
                                    m.healthy, m.draining, board_vec)
                .Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const Heartbeat& m) {
    return {wj::JobMessage::wafer_wire_Heartbeat, ww::CreateHeartbeat(b, m.sent_ns, m.is_reply).Union()};
  }
  std::pair<wj::JobMessage, fb::Offset<void>> operator()(const ErrorReply& m) {
    auto detail = b.CreateString(m.detail);
    return {wj::JobMessage::wafer_wire_ErrorReply,
            ww::CreateErrorReply(b, static_cast<ww::ErrorCode>(m.code), detail, m.request_tag)
                .Union()};
  }
};

Sampling DecodeSampling(const wj::Sampling* s) {
  Sampling p;
  if (s == nullptr) return p;
  p.temperature = s->temperature();
  p.top_k = s->top_k();
  p.top_p = s->top_p();
  p.seed = s->seed();
  return p;
}

}  // namespace

std::span<const std::byte> EncodeJobView(const JobMessage& message) {
  fb::FlatBufferBuilder& b = Builder();
  auto [type, body] = std::visit(Encoder{b}, message);
  ww::ProtocolVersion version(kProtocolMajor, kProtocolMinor);
  b.Finish(wj::CreateJobEnvelope(b, &version, type, body), wj::JobEnvelopeIdentifier());
  return {reinterpret_cast<const std::byte*>(b.GetBufferPointer()), b.GetSize()};
}

std::string EncodeJob(const JobMessage& message) {
  std::span<const std::byte> bytes = EncodeJobView(message);
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

namespace {

// The decoder proper (see DecodeFrame).
bool DecodeJobInto(std::span<const std::byte> frame, JobMessage* out, Error* error,
                   uint64_t* request_tag) {
  static constexpr EnvelopeSchema<wj::JobEnvelope> kSchema{
      wj::JobEnvelopeBufferHasIdentifier, wj::VerifyJobEnvelopeBuffer, wj::GetJobEnvelope, "WJOB"};
  const wj::JobEnvelope* env = OpenEnvelope(frame, kSchema, error);
  if (env == nullptr) return false;
  auto fail = [&](ErrorCode code, std::string detail) {
    *error = Error{DecodeErrorStatus(code), std::move(detail)};
    return false;
  };
  switch (env->message_type()) {
    case wj::JobMessage::SubmitJob: {
      const wj::SubmitJob* m = env->message_as_SubmitJob();
      SubmitJob s;
      s.request_tag = m->request_tag();
      *request_tag = s.request_tag;
      s.idempotency_key = Str(m->idempotency_key());
      s.tenant = Str(m->tenant());
      s.model = Str(m->model());
      s.prompt_text = Str(m->prompt_text());
      s.prompt_tokens = Ids(m->prompt_tokens());
      s.max_tokens = m->max_tokens();
      s.sampling = DecodeSampling(m->sampling());
      s.priority = m->priority();
      s.deadline_unix_ms = m->deadline_unix_ms();
      s.ttft_target_ms = m->ttft_target_ms();
      s.stop_tokens = Ids(m->stop_tokens());
      s.want_text = m->want_text();
      s.deadline_ms = m->deadline_ms();
      *out = std::move(s);
      return true;
    }
    case wj::JobMessage::JobAccepted: {
      const auto* m = env->message_as_JobAccepted();
      *out = JobAccepted{m->request_tag(), m->job_id(), m->queue_position(), m->duplicate(),
                         m->instance_id()};
      return true;
    }
    case wj::JobMessage::JobRejected: {
      const auto* m = env->message_as_JobRejected();
      *out = JobRejected{m->request_tag(), static_cast<ErrorCode>(m->code()), Str(m->detail()),
                         m->retry_after_ms()};
      return true;
    }
    case wj::JobMessage::TokenChunk: {
      const auto* m = env->message_as_TokenChunk();
      *out = TokenChunk{m->job_id(), m->seq(), m->first_token_index(), Ids(m->tokens()),
                        Str(m->text()), m->instance_id()};
      return true;
    }
    case wj::JobMessage::JobFinished: {
      const auto* m = env->message_as_JobFinished();
      JobFinished f;
      f.job_id = m->job_id();
      f.reason = static_cast<FinishReason>(m->reason());
      if (m->usage() != nullptr) {
        f.prompt_tokens = m->usage()->prompt_tokens();
        f.completion_tokens = m->usage()->completion_tokens();
      }
      if (m->timings() != nullptr) {
        f.timings = JobTimings{m->timings()->queued_ns(), m->timings()->ttft_ns(),
                               m->timings()->total_ns(), m->timings()->device_ns()};
      }
      f.chunks = m->chunks();
      f.error_code = static_cast<ErrorCode>(m->error_code());
      f.detail = Str(m->detail());
      f.instance_id = m->instance_id();
      *out = std::move(f);
      return true;
    }
    case wj::JobMessage::CancelJob:
      *out = CancelJob{env->message_as_CancelJob()->job_id()};
      return true;
    case wj::JobMessage::CancelResult: {
      const auto* m = env->message_as_CancelResult();
      *out = CancelResult{m->job_id(), static_cast<ErrorCode>(m->code()), m->instance_id()};
      return true;
    }
    case wj::JobMessage::JobStatusQuery:
      *out = JobStatusQuery{env->message_as_JobStatusQuery()->job_id()};
      return true;
    case wj::JobMessage::JobStatusReply: {
      const auto* m = env->message_as_JobStatusReply();
      *out = JobStatusReply{m->job_id(), static_cast<JobState>(m->state()), m->tokens_generated(),
                            m->queue_position(), m->instance_id()};
      return true;
    }
    case wj::JobMessage::ResumeStream: {
      const auto* m = env->message_as_ResumeStream();
      *out = ResumeStream{m->job_id(), m->from_seq(), m->instance_id()};
      return true;
    }
    case wj::JobMessage::CapacityQuery:
      *out = CapacityQuery{env->message_as_CapacityQuery()->request_tag()};
      return true;
    case wj::JobMessage::CapacityReply: {
      const auto* m = env->message_as_CapacityReply();
      CapacityReply r;
      r.request_tag = m->request_tag();
      if (m->models() != nullptr) {
        for (const wj::ModelCapacity* c : *m->models()) {
          ModelCapacity model{Str(c->name()), c->free_slots(), c->total_slots(),
                              c->context_length(), c->ready(), {}, {}};
          if (c->classes() != nullptr) {
            for (const wj::ClassCapacity* k : *c->classes()) {
              model.classes.push_back(ClassCapacity{Str(k->name()), k->queued(),
                                                    k->expected_wait_ms(), k->measured()});
            }
          }
          if (c->replicas() != nullptr) {
            for (const wj::ReplicaCapacity* r : *c->replicas()) {
              ReplicaCapacity replica{{}, r->free_slots(), r->total_slots(), r->running(),
                                      r->serving()};
              if (r->boards() != nullptr) replica.boards.assign(r->boards()->begin(), r->boards()->end());
              model.replicas.push_back(std::move(replica));
            }
          }
          r.models.push_back(std::move(model));
        }
      }
      r.queue_depth = m->queue_depth();
      r.queue_limit = m->queue_limit();
      r.healthy = m->healthy();
      r.draining = m->draining();
      if (m->boards() != nullptr) {
        for (const wj::BoardCapacity* x : *m->boards()) {
          r.boards.push_back(BoardCapacity{x->board(), x->health(), x->drained(), Str(x->drain()),
                                           x->incident_code(), Str(x->incident())});
        }
      }
      *out = std::move(r);
      return true;
    }
    case wj::JobMessage::wafer_wire_Heartbeat: {
      const auto* m = env->message_as_wafer_wire_Heartbeat();
      *out = Heartbeat{m->sent_ns(), m->is_reply()};
      return true;
    }
    case wj::JobMessage::wafer_wire_ErrorReply: {
      const auto* m = env->message_as_wafer_wire_ErrorReply();
      *out = ErrorReply{static_cast<ErrorCode>(m->code()), Str(m->detail()), m->request_tag()};
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

HostResult<JobMessage> DecodeJob(std::span<const std::byte> frame, uint64_t* request_tag) {
  return DecodeFrame<JobMessage>(frame, request_tag, DecodeJobInto);
}

}  // namespace wafer::host

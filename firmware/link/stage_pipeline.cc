#include "firmware/link/stage_pipeline.h"

#include <algorithm>
#include <cstring>

#include "firmware/link/join_text.h"
#include "schemas/board_generated.h"

namespace wafer::fw {
namespace {

namespace wire = ::wafer::wire;
namespace wb = ::wafer::wire::board;

StatusCode FromWire(wire::ErrorCode code) {
  switch (code) {
    case wire::ErrorCode::kNone: return StatusCode::kOk;
    case wire::ErrorCode::kInvalidArgument: return StatusCode::kInvalidArgument;
    case wire::ErrorCode::kDeadlineExceeded: return StatusCode::kDeadlineExceeded;
    case wire::ErrorCode::kUnknownModel: return StatusCode::kNotFound;
    case wire::ErrorCode::kResourceExhausted: return StatusCode::kResourceExhausted;
    case wire::ErrorCode::kFailedPrecondition: return StatusCode::kFailedPrecondition;
    case wire::ErrorCode::kBoardUnavailable: return StatusCode::kUnavailable;
    case wire::ErrorCode::kDataLoss: return StatusCode::kDataLoss;
    case wire::ErrorCode::kOutOfRange: return StatusCode::kOutOfRange;
    default: return StatusCode::kInternal;
  }
}

const char* Text(const flatbuffers::String* s) { return s != nullptr ? s->c_str() : ""; }

}  // namespace

// The builder's initial size is the whole arena: it takes it on first use and never asks for
// more, since Forward checks each Step's bound first.
StagePipeline::StagePipeline(CommandProcessor& processor, hal::StageLink* link)
    : processor_(processor), link_(link), allocator_(arena_), fbb_(arena_.size(), &allocator_) {}

void StagePipeline::Fail(uint32_t stage, StatusCode code, const char* detail) {
  failed_stage_ = stage;
  failed_code_ = code;
  JoinText(failed_detail_, {detail});
}

void StagePipeline::Run(const Command& cmd, const CommandProcessor::NextStageInfo& next,
                        Reply& reply) {
  reply = Reply{};
  reply.command_id = cmd.command_id;
  status_ = OkStatus();
  detail_ = "";
  failed_stage_ = 0;
  failed_code_ = StatusCode::kOk;
  failed_detail_[0] = '\0';
  stages_ = std::min(next.stages, kMaxPipelineStages);
  timeout_ms_ = next.timeout_ms;
  busy_ns_.fill(0);
  sum_ = DeviceTime{};
  hidden_values_ = 0;
  Result<uint32_t> handle = link_ != nullptr ? link_->Open(next.endpoint)
                                             : Result<uint32_t>(Unavailable());
  if (!handle.ok()) {
    Fail(1, StatusCode::kUnavailable,
         link_ == nullptr ? "this board has no inter-wafer link"
                          : "the next stage's endpoint cannot be reached");
    reply.kind = ReplyKind::kStep;
    FillPipeline(reply, 0);
    return;
  }
  link_handle_ = *handle;
  if (next.stage.has_embedding) {
    RunFirst(cmd, next, reply);
  } else {
    RunMiddle(cmd, reply);
  }
}

void StagePipeline::FillPipeline(Reply& reply, uint32_t passes) {
  PipelineSummary& p = reply.pipeline;
  p.present = true;
  p.passes = passes;
  p.hidden_values = hidden_values_;
  p.stage_busy_ns = std::span<const int64_t>(busy_ns_.data(), stages_);
  p.failed_stage = failed_stage_;
  p.failed_code = failed_code_;
  p.failed_detail = failed_detail_.data();
  if (failed_stage_ != 0) reply.outcomes = {};  // The Step produced nothing.
}

void StagePipeline::RunFirst(const Command& cmd, const CommandProcessor::NextStageInfo& next,
                             Reply& reply) {
  const hal::StepRequest& step = cmd.step;
  const size_t n = step.seqs.size();
  if (n == 0 || n > kMaxSeqsPerStep) {
    // The processor's own checks name the problem.
    std::span<const hal::SeqOutcome> unused;
    status_ = processor_.RunStage(step, unused, reply.device_time, detail_);
    reply.kind = ReplyKind::kAck;
    reply.code = status_.ok() ? StatusCode::kInvalidArgument : status_.code();
    reply.detail = status_.ok() ? "step has no sequences" : detail_;
    return;
  }
  const uint32_t micro_batches =
      static_cast<uint32_t>(std::min<size_t>(std::max<uint32_t>(next.stages, 1), n));
  size_t tokens = 0;
  for (size_t i = 0; i < n; ++i) {
    if (step.seqs[i].generate > kMaxStepTokens - tokens) {
      reply.kind = ReplyKind::kAck;
      reply.code = StatusCode::kResourceExhausted;
      reply.detail = "step generates too many tokens";
      return;
    }
    seqs_[i] = Seq{};
    seqs_[i].micro_batch = static_cast<uint32_t>(i * micro_batches / n);
    seqs_[i].token_offset = static_cast<uint32_t>(tokens);
    tokens += step.seqs[i].generate;
  }
  first_free_ns_ = 0;
  stage_free_ns_.fill(0);
  ready_ns_.fill(0);
  sent_ns_.fill(0);
  in_flight_id_.fill(0);
  // Every micro-batch starts; then each answer, oldest first (a board answers in order), lets
  // its micro-batch take its next pass while the others are on the later stages.
  for (uint32_t m = 0; m < micro_batches; ++m) {
    if (!SendPass(cmd, m)) break;
  }
  uint32_t passes = 0;
  while (status_.ok() && failed_stage_ == 0) {
    uint32_t m = micro_batches;
    for (uint32_t k = 0; k < micro_batches; ++k) {
      if (in_flight_id_[k] != 0 && (m == micro_batches || in_flight_id_[k] < in_flight_id_[m])) {
        m = k;
      }
    }
    if (m == micro_batches) break;  // Nothing on the later stages: every sequence is done.
    uint32_t sent = 0;
    for (size_t i = 0; i < n; ++i) sent += seqs_[i].in_flight && seqs_[i].micro_batch == m;
    Answer answer;
    Receive(in_flight_id_[m], sent, answer);
    in_flight_id_[m] = 0;
    if (answer.failed_code != StatusCode::kOk) {
      Fail(answer.failed_stage, answer.failed_code, answer.detail);
      break;
    }
    // Each later stage takes the micro-batch once it has arrived and the stage is free. The
    // answer's time beyond the stages' compute is its hops (stages - 1 forward and the tokens'
    // way back), spread evenly over them.
    int64_t busy_sum = 0;
    for (uint32_t k = 1; k < stages_; ++k) busy_sum += answer_busy_ns_[k];
    const int64_t hop = std::max<int64_t>(0, answer.time.total_ns - busy_sum) / stages_;
    int64_t t = sent_ns_[m];
    for (uint32_t k = 1; k < stages_; ++k) {
      const int64_t start = std::max(stage_free_ns_[k], t + hop);
      stage_free_ns_[k] = start + answer_busy_ns_[k];
      t = stage_free_ns_[k];
    }
    ready_ns_[m] = t + hop;
    const auto* results = static_cast<const flatbuffers::Vector<flatbuffers::Offset<wb::SeqResult>>*>(results_);
    uint32_t j = 0;
    for (size_t i = 0; i < n; ++i) {
      Seq& seq = seqs_[i];
      if (!seq.in_flight || seq.micro_batch != m) continue;
      seq.in_flight = false;
      const wb::SeqResult* r = results->Get(j++);
      const StatusCode code = FromWire(r->code());
      const uint32_t want = step.seqs[i].generate;
      const uint32_t got = r->tokens() != nullptr ? r->tokens()->size() : 0;
      if (code != StatusCode::kOk) {
        seq.code = code;
        seq.active = false;
        continue;
      }
      if (got != (want > 0 ? 1u : 0u)) {
        Fail(1, StatusCode::kInternal, "next stage answered with the wrong number of tokens");
        break;
      }
      passes = std::max(passes, seq.rounds);
      if (want == 0) {  // A prefill chunk that is not the prompt's last.
        seq.active = false;
        continue;
      }
      const uint32_t token = r->tokens()->Get(0);
      tokens_[seq.token_offset + seq.generated++] = token;
      const std::span<const uint32_t> stops = step.seqs[i].stop_tokens;
      if (seq.generated == want || std::find(stops.begin(), stops.end(), token) != stops.end()) {
        seq.active = false;
      } else {
        seq.last_token = token;
      }
    }
    if (failed_stage_ != 0) break;
    if (!SendPass(cmd, m)) break;
  }
  if (!status_.ok()) {
    // This board's own stage failed: answered as a single board's Step failure would be.
    reply.kind = ReplyKind::kAck;
    reply.code = status_.code();
    reply.detail = detail_;
    return;
  }
  reply.kind = ReplyKind::kStep;
  for (size_t i = 0; i < n; ++i) {
    const Seq& seq = seqs_[i];
    hal::SeqOutcome& o = outcomes_[i];
    o = hal::SeqOutcome{};
    o.slot = step.seqs[i].slot;
    o.token_buffer = std::span<uint32_t>(tokens_.data() + seq.token_offset, seq.generated);
    o.token_count = seq.generated;
    o.code = seq.code;
    o.context_tokens = seq.context_tokens;
  }
  reply.outcomes = std::span<const hal::SeqOutcome>(outcomes_.data(), n);
  int64_t end = first_free_ns_;
  for (uint32_t m = 0; m < micro_batches; ++m) end = std::max(end, ready_ns_[m]);
  reply.device_time = sum_;
  reply.device_time.total_ns = end + sum_.host_io_ns;
  FillPipeline(reply, std::max<uint32_t>(passes, 1));
}

bool StagePipeline::SendPass(const Command& cmd, uint32_t m) {
  const hal::StepRequest& step = cmd.step;
  size_t count = 0;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    Seq& seq = seqs_[i];
    if (!seq.active || seq.micro_batch != m) continue;
    hal::SeqStepView view = step.seqs[i];
    if (seq.rounds > 0) {
      view.reset = false;
      view.input_tokens = std::span<const uint32_t>(&seq.last_token, 1);
    }
    view.generate = 0;  // This stage has no head: the last stage samples.
    views_[count] = view;
    view_seq_[count++] = static_cast<uint32_t>(i);
  }
  if (count == 0) return true;
  hal::StepRequest local;
  local.model_id = step.model_id;
  local.seqs = std::span<const hal::SeqStepView>(views_.data(), count);
  // A pass after the first embeds a token that came back over the link, not from the host.
  local.from_stage = step.from_stage || seqs_[view_seq_[0]].rounds > 0;
  std::span<const hal::SeqOutcome> outcomes;
  DeviceTime time;
  status_ = processor_.RunStage(local, outcomes, time, detail_);
  if (!status_.ok()) return false;
  const int64_t busy = time.compute_ns + time.fabric_ns;
  busy_ns_[0] += busy;
  sum_.compute_ns += time.compute_ns;
  sum_.fabric_ns += time.fabric_ns;
  sum_.host_io_ns += time.host_io_ns;
  const int64_t start = std::max(first_free_ns_, ready_ns_[m]);
  first_free_ns_ = start + busy;
  sent_ns_[m] = first_free_ns_;
  // The sequences this stage refused (a full context) end here; the others go on, each with
  // the generate its Step asked of the last stage for this pass.
  size_t forward = 0;
  for (size_t j = 0; j < count; ++j) {
    Seq& seq = seqs_[view_seq_[j]];
    ++seq.rounds;
    seq.context_tokens = outcomes[j].context_tokens;
    if (outcomes[j].code != StatusCode::kOk) {
      seq.code = outcomes[j].code;
      seq.active = false;
      continue;
    }
    seq.in_flight = true;
    hal::SeqStepView view = views_[j];
    view.generate = step.seqs[view_seq_[j]].generate > 0 ? 1 : 0;
    view.hidden_in = std::span<const float>(outcomes[j].hidden_buffer.data(),
                                            outcomes[j].hidden_count);
    views_[forward] = view;
    view_seq_[forward++] = view_seq_[j];
  }
  if (forward == 0) return true;
  in_flight_id_[m] = next_command_id_;
  return Forward(step.model_id, forward);
}

size_t ForwardStepSizeBound(std::span<const hal::SeqStepView> seqs) {
  using fb_bound::Fields;
  using fb_bound::Table;
  using fb_bound::Vector;
  size_t bytes = Table(Fields(wb::BoardEnvelope::VT_MESSAGE)) + fb_bound::Finish() +
                 Table(Fields(wb::Step::VT_FROM_STAGE)) +
                 Vector(seqs.size(), sizeof(flatbuffers::uoffset_t));
  for (const hal::SeqStepView& v : seqs) {
    bytes += Table(Fields(wb::SeqStep::VT_HIDDEN_IN)) +
             Table(Fields(wb::SeqSampling::VT_SAMPLED_BEFORE)) +
             Vector(v.input_tokens.size(), sizeof(uint32_t)) +
             Vector(v.hidden_in.size(), sizeof(float));
  }
  return bytes;
}

std::span<const std::byte> EncodeForwardStep(flatbuffers::FlatBufferBuilder& fbb,
                                             uint64_t command_id, uint32_t model_id,
                                             std::span<const hal::SeqStepView> seqs) {
  fbb.Clear();
  std::array<flatbuffers::Offset<wb::SeqStep>, kMaxSeqsPerStep> offsets;
  const size_t count = std::min(seqs.size(), offsets.size());
  for (size_t j = 0; j < count; ++j) {
    const hal::SeqStepView& v = seqs[j];
    auto input = fbb.CreateVector(v.input_tokens.data(), v.input_tokens.size());
    auto hidden = fbb.CreateVector(v.hidden_in.data(), v.hidden_in.size());
    auto sampling = wb::CreateSeqSampling(fbb, v.sampling.temperature, v.sampling.top_k,
                                          v.sampling.top_p, v.sampling.seed,
                                          v.sampled_before);
    // Stop tokens stay here: the last stage samples one token per pass, and this stage checks
    // it. Its reset travels with the first pass only.
    offsets[j] = wb::CreateSeqStep(fbb, v.slot, v.reset, input, v.generate, sampling, 0, hidden);
  }
  auto vec = fbb.CreateVector(offsets.data(), count);
  auto msg = wb::CreateStep(fbb, model_id, vec, /*from_stage=*/true);
  const wire::ProtocolVersion version(kProtocolMajor, kProtocolMinor);
  auto env = wb::CreateBoardEnvelope(fbb, &version, command_id, wb::BoardMessage::Step,
                                     msg.Union());
  wb::FinishBoardEnvelopeBuffer(fbb, env);
  return std::as_bytes(std::span<const uint8_t>(fbb.GetBufferPointer(), fbb.GetSize()));
}

bool StagePipeline::Forward(uint32_t model_id, size_t count) {
  const std::span<const hal::SeqStepView> seqs(views_.data(), count);
  if (ForwardStepSizeBound(seqs) > allocator_.capacity()) {
    // Larger than a frame: the next stage could not take it (this board's answer says so).
    Fail(1, StatusCode::kResourceExhausted, "the Step for the next stage does not fit one frame");
    return false;
  }
  for (const hal::SeqStepView& v : seqs) hidden_values_ += v.hidden_in.size();
  const std::span<const std::byte> frame =
      EncodeForwardStep(fbb_, next_command_id_++, model_id, seqs);
  if (!link_->Send(link_handle_, frame).ok()) {
    Fail(1, StatusCode::kUnavailable, "the inter-wafer link to the next stage is down");
    return false;
  }
  return true;
}

void StagePipeline::Receive(uint64_t command_id, uint32_t expected_results, Answer& answer) {
  results_ = nullptr;
  for (;;) {
    Result<size_t> got = link_->Receive(link_handle_, rx_, timeout_ms_);
    if (!got.ok()) {
      answer.failed_stage = 1;
      answer.failed_code = StatusCode::kUnavailable;
      answer.detail = got.status().code() == StatusCode::kDeadlineExceeded
                          ? "the next stage did not answer in time"
                          : "the inter-wafer link to the next stage is down";
      return;
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(rx_.data());
    flatbuffers::Verifier verifier(bytes, std::min(*got, rx_.size()));
    if (*got > rx_.size() || !wb::BoardEnvelopeBufferHasIdentifier(bytes) ||
        !wb::VerifyBoardEnvelopeBuffer(verifier)) {
      answer.failed_stage = 1;
      answer.failed_code = StatusCode::kInternal;
      answer.detail = "the next stage's answer failed verification";
      return;
    }
    const wb::BoardEnvelope* env = wb::GetBoardEnvelope(bytes);
    if (env->command_id() < command_id) {
      ++stale_answers_;  // A pass given up on earlier: its answer came late.
      continue;
    }
    if (env->command_id() != command_id) {
      answer.failed_stage = 1;
      answer.failed_code = StatusCode::kInternal;
      answer.detail = "the next stage answered a command not sent";
      return;
    }
    answer.failed_stage = 1;
    if (env->message() == nullptr || env->version() == nullptr ||
        env->version()->major() != kProtocolMajor) {
      // The verifier accepts a union's type without its table.
      answer.failed_code = StatusCode::kInternal;
      answer.detail = "the next stage's answer has no message, or another protocol major";
      return;
    }
    switch (env->message_type()) {
      case wb::BoardMessage::Ack: {
        const wb::Ack* ack = env->message_as_Ack();
        answer.failed_code = FromWire(ack->code());
        if (answer.failed_code == StatusCode::kOk) answer.failed_code = StatusCode::kInternal;
        answer.detail = Text(ack->detail());
        return;
      }
      case wb::BoardMessage::wafer_wire_ErrorReply:
        answer.failed_code = FromWire(env->message_as_wafer_wire_ErrorReply()->code());
        if (answer.failed_code == StatusCode::kOk) answer.failed_code = StatusCode::kInternal;
        answer.detail = Text(env->message_as_wafer_wire_ErrorReply()->detail());
        return;
      case wb::BoardMessage::StepReply:
        break;
      default:
        answer.failed_code = StatusCode::kInternal;
        answer.detail = "the next stage answered a Step with another message";
        return;
    }
    const wb::StepReply* r = env->message_as_StepReply();
    if (const wb::PipelineReport* p = r->pipeline(); p != nullptr && p->failed_stage() != 0) {
      answer.failed_stage = 1 + std::min<uint32_t>(p->failed_stage(), kMaxPipelineStages);
      answer.failed_code = FromWire(p->failed_code());
      if (answer.failed_code == StatusCode::kOk) answer.failed_code = StatusCode::kInternal;
      answer.detail = Text(p->failed_detail());
      return;
    }
    const auto* results = r->results();
    const uint32_t count = results != nullptr ? results->size() : 0;
    bool null_entry = false;
    for (uint32_t i = 0; i < count; ++i) null_entry = null_entry || results->Get(i) == nullptr;
    if (count != expected_results || null_entry) {
      answer.failed_code = StatusCode::kInternal;
      answer.detail = "the next stage answered with the wrong number of results";
      return;
    }
    answer.failed_stage = 0;
    if (const wb::DeviceTime* t = r->device_time()) {
      answer.time = DeviceTime{t->total_ns(), t->compute_ns(), t->fabric_ns(),
                               t->inter_wafer_ns(), t->host_io_ns()};
    }
    // Hostile numbers stay within bounds: negative or absurd times count as nothing.
    if (answer.time.total_ns < 0 || answer.time.total_ns > int64_t{3600} * 1000000000) {
      answer.time = DeviceTime{};
    }
    sum_.compute_ns += answer.time.compute_ns;
    sum_.fabric_ns += answer.time.fabric_ns;
    sum_.inter_wafer_ns += answer.time.inter_wafer_ns;
    // Each later stage's compute for this answer (a middle stage reports them, itself first;
    // the last stage's is its compute and fabric time), bounded like the total.
    answer_busy_ns_.fill(0);
    const wb::PipelineReport* p = r->pipeline();
    if (p != nullptr && p->stage_busy_ns() != nullptr) {
      const auto* busy = p->stage_busy_ns();
      for (uint32_t k = 0; k < busy->size() && k + 1 < stages_; ++k) {
        answer_busy_ns_[k + 1] = std::clamp<int64_t>(busy->Get(k), 0, answer.time.total_ns);
      }
      hidden_values_ += p->hidden_values();
    } else if (stages_ > 1) {
      answer_busy_ns_[1] = std::clamp<int64_t>(answer.time.compute_ns + answer.time.fabric_ns, 0,
                                               answer.time.total_ns);
    }
    for (uint32_t k = 1; k < stages_; ++k) busy_ns_[k] += answer_busy_ns_[k];
    results_ = results;
    return;
  }
}

void StagePipeline::RunMiddle(const Command& cmd, Reply& reply) {
  const hal::StepRequest& step = cmd.step;
  const size_t n = std::min(step.seqs.size(), kMaxSeqsPerStep);
  for (size_t i = 0; i < n; ++i) {
    views_[i] = step.seqs[i];
    views_[i].generate = 0;  // This stage has no head: the last stage samples.
  }
  hal::StepRequest local;
  local.model_id = step.model_id;
  local.seqs = std::span<const hal::SeqStepView>(views_.data(), n);
  local.from_stage = step.from_stage;
  std::span<const hal::SeqOutcome> outcomes;
  DeviceTime time;
  status_ = processor_.RunStage(local, outcomes, time, detail_);
  if (!status_.ok() || step.seqs.size() > kMaxSeqsPerStep) {
    reply.kind = ReplyKind::kAck;
    reply.code = status_.ok() ? StatusCode::kResourceExhausted : status_.code();
    reply.detail = status_.ok() ? "too many sequences in one step" : detail_;
    return;
  }
  busy_ns_[0] = time.compute_ns + time.fabric_ns;
  // Forward the sequences this stage ran, with the generate the first stage asked for.
  size_t forward = 0;
  for (size_t i = 0; i < n; ++i) {
    if (outcomes[i].code != StatusCode::kOk) continue;
    hal::SeqStepView view = step.seqs[i];
    view.hidden_in = std::span<const float>(outcomes[i].hidden_buffer.data(),
                                            outcomes[i].hidden_count);
    views_[forward] = view;
    view_seq_[forward++] = static_cast<uint32_t>(i);
  }
  // Copied: the next Step reuses the processor's outcome buffers only after this one is done,
  // but the answer below must not be mixed up with them.
  for (size_t i = 0; i < n; ++i) {
    outcomes_[i] = hal::SeqOutcome{};
    outcomes_[i].slot = step.seqs[i].slot;
    outcomes_[i].code = outcomes[i].code;
    outcomes_[i].context_tokens = outcomes[i].context_tokens;
    outcomes_[i].token_buffer = std::span<uint32_t>(tokens_.data() + i, 0);
  }
  DeviceTime answer_time;
  if (forward > 0) {
    const uint64_t id = next_command_id_;
    if (!Forward(step.model_id, forward)) {
      reply.kind = ReplyKind::kStep;
      FillPipeline(reply, 1);
      return;
    }
    Answer answer;
    Receive(id, static_cast<uint32_t>(forward), answer);
    if (answer.failed_code != StatusCode::kOk) {
      Fail(answer.failed_stage, answer.failed_code, answer.detail);
      reply.kind = ReplyKind::kStep;
      FillPipeline(reply, 1);
      return;
    }
    answer_time = answer.time;
    const auto* results = static_cast<const flatbuffers::Vector<flatbuffers::Offset<wb::SeqResult>>*>(results_);
    for (size_t j = 0; j < forward; ++j) {
      const wb::SeqResult* r = results->Get(static_cast<uint32_t>(j));
      hal::SeqOutcome& o = outcomes_[view_seq_[j]];
      o.code = FromWire(r->code());
      // At most one token per sequence and pass (the last stage's rule): one slot each here.
      if (r->tokens() != nullptr && r->tokens()->size() > 0 && o.code == StatusCode::kOk) {
        tokens_[view_seq_[j]] = r->tokens()->Get(0);
        o.token_buffer = std::span<uint32_t>(tokens_.data() + view_seq_[j], 1);
        o.token_count = 1;
      }
    }
  }
  reply.kind = ReplyKind::kStep;
  reply.outcomes = std::span<const hal::SeqOutcome>(outcomes_.data(), n);
  reply.device_time = DeviceTime{
      time.total_ns + answer_time.total_ns, time.compute_ns + answer_time.compute_ns,
      time.fabric_ns + answer_time.fabric_ns, time.inter_wafer_ns + answer_time.inter_wafer_ns,
      time.host_io_ns + answer_time.host_io_ns};
  FillPipeline(reply, 1);
}

}  // namespace wafer::fw

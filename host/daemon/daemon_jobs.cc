// The job socket: validation and queueing of submissions, cancel, status, resume, capacity.
#include <cmath>

#include "host/daemon/daemon.h"
#include "host/daemon/internal/daemon_records.h"
#include "host/wire/job_codec.h"

namespace wafer::host {

void Daemon::OnJobFrame(const std::string& peer, std::span<const std::byte> payload) {
  if (payload.size() > config_.max_message_bytes) {
    metrics_.Rejected(ErrorCodeName(ErrorCode::kMessageTooLarge)).Increment();
    SendJob(peer, ErrorReply{ErrorCode::kMessageTooLarge,
                             "message of " + std::to_string(payload.size()) +
                                 " bytes exceeds max_message_bytes " +
                                 std::to_string(config_.max_message_bytes),
                             0});
    return;
  }
  JobMessage message;
  DecodeError error;
  if (!DecodeJob(payload, &message, &error)) {
    metrics_.Rejected(ErrorCodeName(error.code)).Increment();
    SendJob(peer, ErrorReply{error.code, error.detail, error.request_tag});
    return;
  }
  if (auto* submit = std::get_if<SubmitJob>(&message)) {
    OnSubmit(peer, *submit);
  } else if (auto* cancel = std::get_if<CancelJob>(&message)) {
    OnCancel(peer, *cancel);
  } else if (auto* status = std::get_if<JobStatusQuery>(&message)) {
    OnJobStatus(peer, *status);
  } else if (auto* resume = std::get_if<ResumeStream>(&message)) {
    OnResume(peer, *resume);
  } else if (auto* capacity = std::get_if<CapacityQuery>(&message)) {
    OnCapacity(peer, *capacity);
  } else if (auto* beat = std::get_if<Heartbeat>(&message)) {
    if (!beat->is_reply) SendJob(peer, Heartbeat{beat->sent_ns, true});
  } else {
    SendJob(peer, ErrorReply{ErrorCode::kWrongMessageType,
                             "message type is daemon-to-client only", 0});
  }
}

void Daemon::Reject(const std::string& peer, uint64_t tag, ErrorCode code, std::string detail,
                    uint32_t retry_after_ms) {
  metrics_.Rejected(ErrorCodeName(code)).Increment();
  SendJob(peer, JobRejected{tag, code, std::move(detail), retry_after_ms});
}

void Daemon::OnSubmit(const std::string& peer, SubmitJob& s) {
  const uint64_t tag = s.request_tag;
  if (draining_) return Reject(peer, tag, ErrorCode::kDraining, "daemon is draining");
  if (!s.idempotency_key.empty()) {
    auto it = idempotency_.find(s.tenant + '\0' + s.idempotency_key);
    if (it != idempotency_.end()) {
      Job& job = *jobs_.at(it->second);
      job.peer = peer;  // The retrying client is the one listening now.
      SendJob(peer, JobAccepted{tag, job.id, 0, true});
      return;
    }
  }
  Model* model = FindModel(s.model);
  if (model == nullptr) {
    return Reject(peer, tag, ErrorCode::kUnknownModel, "model '" + s.model + "' is not loaded");
  }
  if (model->state != ModelState::kReady) {
    return Reject(peer, tag, ErrorCode::kModelNotReady,
                  "model '" + s.model + "' is " + ModelStateName(model->state), 1000);
  }
  if (s.max_tokens == 0 || s.max_tokens > config_.max_tokens_limit) {
    return Reject(peer, tag, ErrorCode::kInvalidMaxTokens,
                  "max_tokens " + std::to_string(s.max_tokens) + " must be between 1 and " +
                      std::to_string(config_.max_tokens_limit));
  }
  const SamplingParams& sp = s.sampling;
  if (!std::isfinite(sp.temperature) || sp.temperature < 0 || sp.temperature > 100 ||
      !std::isfinite(sp.top_p) || sp.top_p <= 0 || sp.top_p > 1 ||
      sp.top_k > model->arch.vocab_size) {
    return Reject(peer, tag, ErrorCode::kInvalidSampling,
                  "sampling needs temperature in [0, 100], top_p in (0, 1], top_k <= vocab");
  }
  if (!s.prompt_text.empty() && !s.prompt_tokens.empty()) {
    return Reject(peer, tag, ErrorCode::kInvalidArgument,
                  "give prompt_text or prompt_tokens, not both");
  }
  std::vector<uint32_t> prompt = std::move(s.prompt_tokens);
  if (!s.prompt_text.empty()) {
    if (model->text == nullptr) {
      return Reject(peer, tag, ErrorCode::kInvalidArgument,
                    "model '" + s.model + "' has no tokenizer: send prompt_tokens");
    }
    std::string detail;
    if (!model->text->Encode(s.prompt_text, &prompt, &detail).ok()) {
      return Reject(peer, tag, ErrorCode::kInvalidArgument, "prompt_text: " + detail);
    }
  }
  if (prompt.empty()) return Reject(peer, tag, ErrorCode::kInvalidArgument, "empty prompt");
  for (uint32_t id : prompt) {
    if (id >= model->arch.vocab_size) {
      return Reject(peer, tag, ErrorCode::kInvalidArgument,
                    "prompt token " + std::to_string(id) + " is outside the vocabulary of " +
                        std::to_string(model->arch.vocab_size));
    }
  }
  if (uint64_t{prompt.size()} + s.max_tokens > model->context_length) {
    return Reject(peer, tag, ErrorCode::kPromptTooLong,
                  "prompt of " + std::to_string(prompt.size()) + " tokens plus max_tokens " +
                      std::to_string(s.max_tokens) + " exceeds the context of " +
                      std::to_string(model->context_length));
  }
  if (s.deadline_unix_ms != 0 && static_cast<int64_t>(s.deadline_unix_ms) <= UnixMillisNow()) {
    return Reject(peer, tag, ErrorCode::kDeadlineExceeded, "deadline already passed");
  }
  if (policy_->size() >= config_.queue_limit) {
    return Reject(peer, tag, ErrorCode::kQueueFull,
                  "queue holds its limit of " + std::to_string(config_.queue_limit) + " jobs",
                  100);
  }

  auto job = std::make_unique<Job>();
  job->id = next_job_id_++;
  job->peer = peer;
  job->model = s.model;
  job->tenant = std::move(s.tenant);
  job->idempotency_key = std::move(s.idempotency_key);
  job->prompt = std::move(prompt);
  job->prefill = job->prompt;
  job->max_tokens = s.max_tokens;
  job->sampling = SeqSampling{sp.temperature, sp.top_k, sp.top_p, sp.seed};
  job->stop_tokens = std::move(s.stop_tokens);
  job->want_text = s.want_text && model->text != nullptr;
  job->deadline_unix_ms = s.deadline_unix_ms;
  job->accepted_ns = clock_.NowNanos();

  QueuedJob q{job->id, job->model, job->tenant, s.priority, job->accepted_ns, s.deadline_unix_ms};
  size_t ahead = policy_->Push(q);
  if (!job->idempotency_key.empty()) {
    idempotency_[job->tenant + '\0' + job->idempotency_key] = job->id;
  }
  job->series = &metrics_.Model(job->model);
  job->series->submitted->Increment();
  if (job->deadline_unix_ms != 0) deadlines_.emplace(job->deadline_unix_ms, job->id);
  SendJob(peer, JobAccepted{tag, job->id, static_cast<uint32_t>(ahead), false});
  jobs_.emplace(job->id, std::move(job));
}

void Daemon::OnCancel(const std::string& peer, const CancelJob& cancel) {
  auto it = jobs_.find(cancel.job_id);
  if (it == jobs_.end() || it->second->finished) {
    SendJob(peer, CancelResult{cancel.job_id, ErrorCode::kUnknownJob});
    return;
  }
  Job& job = *it->second;
  SendJob(peer, CancelResult{cancel.job_id, ErrorCode::kNone});
  if (job.in_flight) {
    job.cancel_requested = true;  // Finished when its step returns.
  } else {
    FinishJob(job, FinishReason::kCancelled);
  }
}

void Daemon::OnJobStatus(const std::string& peer, const JobStatusQuery& query) {
  JobStatusReply reply{query.job_id, JobState::kUnknown, 0, 0};
  if (auto it = jobs_.find(query.job_id); it != jobs_.end()) {
    const Job& job = *it->second;
    reply.state = job.finished ? JobState::kFinished : job.state;
    reply.tokens_generated = static_cast<uint32_t>(job.output.size());
    reply.queue_position = static_cast<uint32_t>(policy_->Position(job.id).value_or(0));
  }
  SendJob(peer, reply);
}

void Daemon::OnResume(const std::string& peer, const ResumeStream& resume) {
  auto it = jobs_.find(resume.job_id);
  if (it == jobs_.end()) {
    SendJob(peer, ErrorReply{ErrorCode::kUnknownJob,
                             "job " + std::to_string(resume.job_id) + " is not known", 0});
    return;
  }
  Job& job = *it->second;
  job.peer = peer;  // Later chunks go to the reconnected client.
  for (size_t i = resume.from_seq; i < job.chunk_starts.size(); ++i) {
    uint32_t begin = job.chunk_starts[i];
    uint32_t end = i + 1 < job.chunk_starts.size() ? job.chunk_starts[i + 1]
                                                   : static_cast<uint32_t>(job.output.size());
    TokenChunk chunk{job.id, static_cast<uint32_t>(i), begin,
                     std::vector<uint32_t>(job.output.begin() + begin, job.output.begin() + end),
                     job.chunk_texts[i]};
    SendJob(peer, chunk);
  }
  if (job.finished) SendJob(peer, *job.finished);
}

void Daemon::OnCapacity(const std::string& peer, const CapacityQuery& query) {
  CapacityReply reply;
  reply.request_tag = query.request_tag;
  reply.queue_depth = static_cast<uint32_t>(policy_->size());
  reply.queue_limit = config_.queue_limit;
  reply.draining = draining_;
  reply.healthy = !boards_.empty();
  for (const auto& board : boards_) reply.healthy &= board->state == BoardState::kReady;
  for (const auto& [name, model] : models_) {
    reply.models.push_back(ModelCapacity{name, static_cast<uint32_t>(model->free_slots.size()),
                                         model->slots, model->context_length,
                                         model->state == ModelState::kReady});
  }
  SendJob(peer, reply);
}

}  // namespace wafer::host

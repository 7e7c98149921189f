#include "host/frontend/job_frontend.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common/log/log.h"
#include "host/jobs/request_digest.h"
#include "host/serving/step_loop.h"
#include "host/wire/job_codec.h"

namespace wafer::host {

JobFrontend::JobFrontend(zmq::context_t& context, const DaemonConfig& config, const Clock& clock,
                         const AccessPolicy& access, JobStore& store, JobTable& jobs,
                         Scheduler& scheduler, Admission& admission, const WaitEstimator& waits,
                         ModelManager& models, StepLoop& steps, BoardManager& boards,
                         const HealthMonitor& health, telemetry::DaemonMetrics& metrics)
    : config_(config),
      clock_(clock),
      store_(store),
      jobs_(jobs),
      scheduler_(scheduler),
      admission_(admission),
      waits_(waits),
      models_(models),
      steps_(steps),
      boards_(boards),
      health_(health),
      metrics_(metrics),
      socket_(context, "job", kJobZapDomain, access, metrics) {}

HostStatus JobFrontend::Bind(const std::string& curve_secret_key) {
  return socket_.Bind(config_.job_endpoint, config_, curve_secret_key);
}

JobRecord* JobFrontend::Visible(uint64_t id, const ClientKeyConfig* key) {
  JobRecord* job = jobs_.Find(id);
  if (job != nullptr && key != nullptr && job->tenant != key->tenant) return nullptr;
  return job;
}

void JobFrontend::Pump(int burst) {
  socket_.Pump(
      burst,
      [this](const std::string& peer, const ClientKeyConfig* key, std::span<const std::byte> p) {
        OnFrame(peer, key, p);
      },
      [this](const std::string& peer, const ErrorReply& refusal) { Send(peer, refusal); });
}

void JobFrontend::Send(const std::string& peer, JobMessage message) {
  SendInPlace(peer, message);
}

void JobFrontend::SendInPlace(const std::string& peer, JobMessage& message) {
  if (peer.empty()) return;
  const uint64_t instance = store_.instance_id();
  const bool promise = std::visit(
      [instance](auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (requires { m.instance_id; }) {
          if (!std::is_same_v<T, ResumeStream>) m.instance_id = instance;
        }
        return std::is_same_v<T, JobAccepted> || std::is_same_v<T, TokenChunk> ||
               std::is_same_v<T, JobFinished> || std::is_same_v<T, CancelResult>;
      },
      message);
  std::span<const std::byte> bytes = EncodeJobView(message);
  // What this reply tells is in the open transaction (the next generation) or in one already
  // committed; earlier held replies go first either way.
  const uint64_t needs = store_.written() + (store_.dirty() ? 1 : 0);
  if (promise && (needs > store_.durable() || !held_.empty())) {
    held_.push_back(HeldReply{needs, peer,
                              std::string(reinterpret_cast<const char*>(bytes.data()),
                                          bytes.size())});
    return;
  }
  socket_.Send(peer, bytes);
}

void JobFrontend::Flush() {
  if (!store_.Commit().ok()) return;  // The store logged why; the replies keep waiting.
  Release();
}

void JobFrontend::Release() {
  const uint64_t durable = store_.durable();
  while (!held_.empty() && held_.front().generation <= durable) {
    const HeldReply& reply = held_.front();
    socket_.Send(reply.peer,
                 std::span<const std::byte>(reinterpret_cast<const std::byte*>(reply.bytes.data()),
                                            reply.bytes.size()));
    held_.pop_front();
  }
}

void JobFrontend::OnFrame(const std::string& peer, const ClientKeyConfig* key,
                          std::span<const std::byte> payload) {
  if (payload.size() > config_.max_message_bytes) {
    metrics_.Rejected(ErrorCodeName(ErrorCode::kMessageTooLarge)).Increment();
    Send(peer, ErrorReply{ErrorCode::kMessageTooLarge,
                          "message of " + std::to_string(payload.size()) +
                              " bytes exceeds max_message_bytes " +
                              std::to_string(config_.max_message_bytes),
                          0});
    return;
  }
  uint64_t request_tag = 0;
  HostResult<JobMessage> decoded = DecodeJob(payload, &request_tag);
  // Any message shows the client alive; its first Heartbeat opts it in.
  const auto* beat = decoded.ok() ? std::get_if<Heartbeat>(&*decoded) : nullptr;
  Heard(peer, beat != nullptr && !beat->is_reply);
  if (!decoded.ok()) {
    const ErrorCode code = DecodeErrorWireCode(decoded.code());
    metrics_.Rejected(ErrorCodeName(code)).Increment();
    Send(peer, ErrorReply{code, std::move(decoded).error().message, request_tag});
    return;
  }
  JobMessage& message = *decoded;
  if (auto* submit = std::get_if<SubmitJob>(&message)) {
    OnSubmit(peer, key, *submit);
  } else if (auto* cancel = std::get_if<CancelJob>(&message)) {
    OnCancel(peer, key, *cancel);
  } else if (auto* status = std::get_if<JobStatusQuery>(&message)) {
    OnJobStatus(peer, key, *status);
  } else if (auto* resume = std::get_if<ResumeStream>(&message)) {
    OnResume(peer, key, *resume);
  } else if (auto* capacity = std::get_if<CapacityQuery>(&message)) {
    OnCapacity(peer, *capacity);
  } else if (auto* beat = std::get_if<Heartbeat>(&message)) {
    if (!beat->is_reply) Send(peer, Heartbeat{beat->sent_ns, true});
  } else {
    Send(peer, ErrorReply{ErrorCode::kWrongMessageType, "message type is daemon-to-client only", 0});
  }
}

void JobFrontend::Heard(const std::string& peer, bool opts_in) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) {
    if (!opts_in) return;  // Never judged: it never sent a heartbeat.
    if (peers_.size() >= kMaxHeartbeatPeers) {
      if (!peer_limit_logged_) {
        log::Warn("frontend", "{} clients send heartbeats; further ones are not tracked",
                  peers_.size());
        peer_limit_logged_ = true;
      }
      return;
    }
    const int64_t now = clock_.NowNanos();
    it = peers_.emplace(peer, Liveness{now, now + config_.heartbeat.interval_ms * 1'000'000ll, 0})
             .first;
  }
  it->second.last_heard_ns = clock_.NowNanos();
  it->second.gone_ns = 0;  // Back within the grace period: its jobs carry on.
}

void JobFrontend::CheckHeartbeats() {
  if (peers_.empty()) return;
  const int64_t now = clock_.NowNanos();
  const int64_t interval = config_.heartbeat.interval_ms * 1'000'000ll;
  const int64_t timeout = config_.heartbeat.timeout_ms * 1'000'000ll;
  const int64_t grace = config_.heartbeat.grace_ms * 1'000'000ll;
  std::vector<std::string> abandoned;
  for (auto& [peer, live] : peers_) {
    if (live.gone_ns == 0 && now - live.last_heard_ns > timeout) live.gone_ns = now;
    if (live.gone_ns != 0) {
      if (now - live.gone_ns >= grace) abandoned.push_back(peer);
      continue;
    }
    if (now >= live.next_beat_ns) {
      Send(peer, Heartbeat{now, false});
      live.next_beat_ns = now + interval;
    }
  }
  for (const std::string& peer : abandoned) {
    Abandon(peer);
    peers_.erase(peer);
  }
}

void JobFrontend::Abandon(const std::string& peer) {
  // Jobs a resume moved to another connection are that connection's now, not this one's.
  std::vector<JobRecord*> orphans;
  jobs_.ForEachUnfinished([&](JobRecord& job) {
    if (job.peer == peer) orphans.push_back(&job);
  });
  for (JobRecord* job : orphans) steps_.Cancel(*job, FinishReason::kAbandoned);
  if (!orphans.empty()) {
    log::Warn("frontend",
              "a client stopped heartbeating and was not back within {} ms; {} of its jobs end "
              "abandoned",
              config_.heartbeat.grace_ms, orphans.size());
  }
}

void JobFrontend::Reject(const std::string& peer, uint64_t tag, ErrorCode code,
                         std::string detail, uint32_t retry_after_ms) {
  metrics_.Rejected(ErrorCodeName(code)).Increment();
  Send(peer, JobRejected{tag, code, std::move(detail), retry_after_ms});
}

void JobFrontend::OnSubmit(const std::string& peer, const ClientKeyConfig* key, SubmitJob& s) {
  const uint64_t tag = s.request_tag;
  if (key != nullptr) {
    // The tenant comes from the key, not from the message.
    if (!s.tenant.empty() && s.tenant != key->tenant) {
      return Reject(peer, tag, ErrorCode::kPermissionDenied,
                    "key '" + key->name + "' submits as tenant '" + key->tenant + "', not '" +
                        s.tenant + "'");
    }
    s.tenant = key->tenant;
  }
  if (!accepting_) return Reject(peer, tag, ErrorCode::kDraining, "daemon is draining");
  if (s.tenant.size() > kMaxTenantBytes || s.idempotency_key.size() > kMaxKeyBytes) {
    return Reject(peer, tag, ErrorCode::kInvalidArgument,
                  "tenant (" + std::to_string(s.tenant.size()) + " bytes) and idempotency_key (" +
                      std::to_string(s.idempotency_key.size()) + " bytes) may be at most " +
                      std::to_string(kMaxTenantBytes) + " and " + std::to_string(kMaxKeyBytes) +
                      " bytes");
  }
  std::string digest;
  if (!s.idempotency_key.empty()) {
    digest = RequestDigestOf(s);
    if (JobRecord* found = jobs_.FindByKey(s.tenant, s.idempotency_key)) {
      JobRecord& job = *found;
      if (job.request_digest != digest) {
        return Reject(peer, tag, ErrorCode::kIdempotencyConflict,
                      "idempotency_key '" + s.idempotency_key + "' was used for job " +
                          std::to_string(job.id) + " with a different request");
      }
      job.peer = peer;  // The retrying client is the one listening now.
      Send(peer, JobAccepted{tag, job.id, 0, true});
      return;
    }
  }
  const std::vector<ModelRecord*> replicas = models_.Replicas(s.model);
  if (replicas.empty()) {
    return Reject(peer, tag, ErrorCode::kUnknownModel, "model '" + s.model + "' is not loaded");
  }
  // Any replica that serves takes it; it is refused only when none can. A job may run on any
  // ready replica, so its length is checked against the smallest context among them.
  const ModelRecord* model = nullptr;
  uint32_t context_length = UINT32_MAX;
  std::string not_ready;  // Why the last replica cannot take it.
  std::string drained;    // Preferred: a job accepted now would wait for the undrain.
  for (const ModelRecord* replica : replicas) {
    if (replica->state != ModelState::kReady) {
      not_ready = "model '" + s.model + "' is " + ModelStateName(replica->state);
      continue;
    }
    context_length = std::min(context_length, replica->context_length);
    bool serves = true;
    for (uint32_t index : replica->boards) {
      const BoardDrain& drain = boards_.at(index).drain;
      if (drain.drained()) {
        serves = false;
        drained = "model '" + s.model + "' is on board " + std::to_string(index) +
                  ", drained: " + drain.Describe();
      }
    }
    if (serves && model == nullptr) model = replica;
  }
  if (model == nullptr) {
    return Reject(peer, tag, ErrorCode::kModelNotReady, drained.empty() ? not_ready : drained,
                  1000);
  }
  if (s.stop_tokens.size() > config_.max_stop_tokens) {
    return Reject(peer, tag, ErrorCode::kInvalidArgument,
                  "stop_tokens: " + std::to_string(s.stop_tokens.size()) +
                      " given, at most " + std::to_string(config_.max_stop_tokens));
  }
  if (s.max_tokens == 0 || s.max_tokens > config_.max_tokens_limit) {
    return Reject(peer, tag, ErrorCode::kInvalidMaxTokens,
                  "max_tokens " + std::to_string(s.max_tokens) + " must be between 1 and " +
                      std::to_string(config_.max_tokens_limit));
  }
  const Sampling& sp = s.sampling;
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
    HostResult<std::vector<uint32_t>> encoded = model->text->Encode(s.prompt_text);
    if (!encoded.ok()) {
      return Reject(peer, tag, ErrorCode::kInvalidArgument,
                    "prompt_text: " + encoded.error().message);
    }
    prompt = std::move(encoded).value();
  }
  if (prompt.empty()) return Reject(peer, tag, ErrorCode::kInvalidArgument, "empty prompt");
  for (uint32_t id : prompt) {
    if (id >= model->arch.vocab_size) {
      return Reject(peer, tag, ErrorCode::kInvalidArgument,
                    "prompt token " + std::to_string(id) + " is outside the vocabulary of " +
                        std::to_string(model->arch.vocab_size));
    }
  }
  if (uint64_t{prompt.size()} + s.max_tokens > context_length) {
    return Reject(peer, tag, ErrorCode::kPromptTooLong,
                  "prompt of " + std::to_string(prompt.size()) + " tokens plus max_tokens " +
                      std::to_string(s.max_tokens) + " exceeds the context of " +
                      std::to_string(context_length));
  }
  const uint64_t now_unix_ms = static_cast<uint64_t>(std::max<int64_t>(0, clock_.UnixMillis()));
  // Compared unsigned: a deadline at or past 2^63 ms is far in the future, not negative.
  if (s.deadline_unix_ms != 0 && s.deadline_unix_ms <= now_unix_ms) {
    return Reject(peer, tag, ErrorCode::kDeadlineExceeded, "deadline already passed");
  }
  if (s.deadline_ms != 0) {
    // Relative to now, on the daemon's clock; the earlier of the two holds.
    const uint64_t relative = now_unix_ms + s.deadline_ms;
    if (s.deadline_unix_ms == 0 || relative < s.deadline_unix_ms) s.deadline_unix_ms = relative;
  }
  const SchedulingConfig& sched = config_.scheduling;
  const TenantConfig& tenant = sched.TenantNamed(s.tenant);
  bool above_max = false;
  const uint32_t priority_class = sched.ClassFor(s.priority, tenant, &above_max);
  if (above_max && tenant.reject_above_max_class) {
    return Reject(peer, tag, ErrorCode::kPermissionDenied,
                  "priority " + std::to_string(s.priority) + " is class '" +
                      sched.classes[sched.ClassOf(s.priority)].name + "'; tenant '" + s.tenant +
                      "' may use classes up to '" + tenant.max_class + "'");
  }
  AdmissionRequest cost{s.model,
                        s.tenant,
                        priority_class,
                        static_cast<uint32_t>(prompt.size()),
                        s.max_tokens,
                        s.ttft_target_ms,
                        s.deadline_unix_ms == 0
                            ? 0
                            : static_cast<int64_t>(std::min<uint64_t>(
                                  s.deadline_unix_ms - now_unix_ms, uint64_t{1} << 40))};
  AdmissionDecision admitted = admission_.Decide(cost);
  if (!admitted.accepted()) {
    return Reject(peer, tag, admitted.code, std::move(admitted.detail), admitted.retry_after_ms);
  }

  auto job = std::make_unique<JobRecord>();
  job->peer = peer;
  job->model = s.model;
  job->tenant = std::move(s.tenant);
  job->idempotency_key = std::move(s.idempotency_key);
  job->priority = s.priority;
  job->prompt = std::move(prompt);
  job->prefill = job->prompt;
  job->max_tokens = s.max_tokens;
  job->sampling = sp;
  job->stop_tokens = std::move(s.stop_tokens);
  job->want_text = s.want_text && model->text != nullptr;
  job->deadline_unix_ms = s.deadline_unix_ms;
  job->ttft_target_ms = s.ttft_target_ms;
  job->priority_class = static_cast<uint8_t>(priority_class);
  job->request_digest = std::move(digest);
  job->accepted_unix_ms = clock_.UnixMillis();
  job->accepted_ns = clock_.NowNanos();
  job->series = &metrics_.Model(job->model);
  Result<JobRecord*> added = jobs_.Add(std::move(job));
  if (!added.ok()) {
    return Reject(peer, tag, ErrorCode::kStorageUnavailable,
                  std::string("the job store refused the job (") + added.status().name() +
                      "): " + store_.Describe(),
                  1000);
  }
  JobRecord& record = *added.value();
  if (admitted.shed) {
    // Room for a higher class (once the newcomer is surely in): the newest job of the lowest
    // class below it leaves the queue.
    if (JobRecord* victim = jobs_.Find(admitted.shed->job_id)) {
      metrics_.scheduler().Shed(victim->model, "displaced").Increment();
      steps_.FinishJob(*victim, FinishReason::kShed, ErrorCode::kNone,
                       "displaced from the full queue of model '" + record.model +
                           "' by a job of class '" + sched.classes[priority_class].name + "'");
    }
  }
  const size_t ahead = scheduler_.Enqueue(QueuedJobOf(record));
  if (tenant.shed_on_ttft_miss) steps_.WatchTtftTarget(record);
  record.series->submitted->Increment();
  Send(peer, JobAccepted{tag, record.id, static_cast<uint32_t>(ahead), false});
}

void JobFrontend::OnCancel(const std::string& peer, const ClientKeyConfig* key,
                           const CancelJob& cancel) {
  JobRecord* job = Visible(cancel.job_id, key);
  if (job == nullptr || job->finished) {
    Send(peer, CancelResult{cancel.job_id, ErrorCode::kUnknownJob});
    return;
  }
  // Stored first: the reply waits until the cancel is durable, so a restart never runs a job
  // its client was told is cancelled.
  jobs_.RequestCancel(*job, FinishReason::kCancelled);
  Send(peer, CancelResult{cancel.job_id, ErrorCode::kNone});
  steps_.Cancel(*job);
}

void JobFrontend::OnJobStatus(const std::string& peer, const ClientKeyConfig* key,
                              const JobStatusQuery& query) {
  JobStatusReply reply{query.job_id, JobState::kUnknown, 0, 0};
  if (const JobRecord* found = Visible(query.job_id, key)) {
    const JobRecord& job = *found;
    reply.state = job.finished ? JobState::kFinished : job.state;
    reply.tokens_generated = static_cast<uint32_t>(job.output.size());
    reply.queue_position = static_cast<uint32_t>(scheduler_.Position(job.id).value_or(0));
  }
  Send(peer, reply);
}

void JobFrontend::OnResume(const std::string& peer, const ClientKeyConfig* key,
                           const ResumeStream& resume) {
  if (resume.instance_id != 0 && resume.instance_id != store_.instance_id()) {
    Send(peer, ErrorReply{ErrorCode::kUnknownJob,
                          "job " + std::to_string(resume.job_id) + " belongs to job store " +
                              std::to_string(resume.instance_id) + "; this daemon's store is " +
                              std::to_string(store_.instance_id()),
                          0});
    return;
  }
  JobRecord* found = Visible(resume.job_id, key);
  if (found == nullptr) {
    Send(peer, ErrorReply{ErrorCode::kUnknownJob,
                             "job " + std::to_string(resume.job_id) + " is not known", 0});
    return;
  }
  JobRecord& job = *found;
  job.peer = peer;  // Later chunks go to the reconnected client.
  for (size_t i = resume.from_seq; i < job.chunk_starts.size(); ++i) {
    uint32_t begin = job.chunk_starts[i];
    uint32_t end = i + 1 < job.chunk_starts.size() ? job.chunk_starts[i + 1]
                                                   : static_cast<uint32_t>(job.output.size());
    TokenChunk chunk{job.id, static_cast<uint32_t>(i), begin,
                     std::vector<uint32_t>(job.output.begin() + begin, job.output.begin() + end),
                     job.chunk_texts[i]};
    Send(peer, chunk);
  }
  if (job.finished) Send(peer, *job.finished);
}

void JobFrontend::OnCapacity(const std::string& peer, const CapacityQuery& query) {
  CapacityReply reply;
  reply.request_tag = query.request_tag;
  reply.queue_depth = static_cast<uint32_t>(scheduler_.queued());
  reply.queue_limit = config_.queue_limit;
  reply.draining = !accepting_;
  reply.healthy = boards_.size() > 0;
  for (uint32_t i = 0; i < boards_.size(); ++i) {
    const Board& board = boards_.at(i);
    const BoardHealthReport health = health_.Report(i);
    BoardCapacity b;
    b.board = i;
    b.health = static_cast<uint8_t>(health.level);
    b.drained = board.drain.drained();
    b.drain = board.drain.Describe();
    if (health.open) {
      b.incident_code = health.open->code;
      const HealthCode* code = FindHealthCode(health.open->code);
      b.incident = code != nullptr ? code->name : "";
    }
    reply.healthy &= board.state == BoardState::kReady && health.level != HealthLevel::kFail;
    reply.boards.push_back(std::move(b));
  }
  // One entry per model name: slots summed over its replicas, ready when any replica takes jobs.
  std::vector<std::string> names;
  for (const auto& [replica, model] : models_.models()) {
    if (std::find(names.begin(), names.end(), model->name) == names.end()) {
      names.push_back(model->name);
    }
  }
  for (const std::string& name : names) {
    ModelCapacity capacity;
    capacity.name = name;
    for (const ModelRecord* model : models_.Replicas(name)) {
      const ModelSlots slots = scheduler_.ReplicaSlots(name, model->replica);
      ReplicaCapacity replica{model->boards, 0, model->slots, slots.running,
                              models_.TakesJobs(*model)};
      // A replica runs at most max_batch jobs whatever its slots; one that takes no new job
      // (loading, unloading, a board drained) offers none.
      if (replica.serving && slots.running < slots.max_batch) {
        replica.free_slots = std::min(slots.free, slots.max_batch - slots.running);
      }
      capacity.ready |= replica.serving;
      capacity.free_slots += replica.free_slots;
      capacity.total_slots += model->slots;
      capacity.context_length = capacity.context_length == 0
                                    ? model->context_length
                                    : std::min(capacity.context_length, model->context_length);
      capacity.replicas.push_back(std::move(replica));
    }
    const std::vector<PriorityClassConfig>& classes = config_.scheduling.classes;
    for (uint32_t cls = 0; cls < classes.size(); ++cls) {
      // As for a job of tenant "" (the one a job without a tenant runs under).
      const WaitEstimate e = waits_.Expected(name, cls, "", clock_.NowNanos());
      capacity.classes.push_back(
          ClassCapacity{classes[cls].name, static_cast<uint32_t>(scheduler_.QueuedInClass(name, cls)),
                        static_cast<uint32_t>(std::min<int64_t>(e.wait_ns / 1'000'000, UINT32_MAX)),
                        e.measured});
    }
    reply.models.push_back(std::move(capacity));
  }
  Send(peer, reply);
}

}  // namespace wafer::host

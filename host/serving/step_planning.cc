// Admission of queued jobs into KV-cache slots and each board's next Step (continuous batching):
// the step planner picks the sequences, this sends them to the model's first board.
#include <algorithm>
#include <set>

#include "common/log/log.h"
#include "host/serving/step_loop.h"

namespace wafer::host {
namespace {

// Output tokens reserved per job when it gets a slot (16 KB at most).
constexpr size_t kOutputReserveTokens = 4096;

}  // namespace

StepLoop::StepLoop(const DaemonConfig& config, const Clock& clock, JobTable& jobs,
                   Scheduler& scheduler, WaitEstimator& waits, BoardManager& boards, ModelManager& models,
                   JobReplies& replies, telemetry::DaemonMetrics& metrics)
    : config_(config),
      clock_(clock),
      jobs_(jobs),
      scheduler_(scheduler),
      waits_(waits),
      planner_(StepPlannerOptions{config.max_batch, config.steps_in_flight,
                                  config.prefill_chunk_tokens, config.decode_tokens_per_step},
               jobs, clock),
      boards_(boards),
      models_(models),
      replies_(replies),
      metrics_(metrics) {}

void StepLoop::ScheduleSteps() {
  RouteQueued();
  std::vector<ModelRecord*> ready;
  for (uint32_t index = 0; index < boards_.size(); ++index) {
    Board& board = boards_.at(index);
    if (!board.runs_steps()) continue;
    ready.clear();
    for (const auto& [replica, model] : models_.models()) {
      // A split model's steps start on its first board and travel on from there.
      if (model->boards[0] == board.index && model->serving()) ready.push_back(model.get());
    }
    bool planned = true;
    while (planned && board.steps_in_flight < config_.steps_in_flight) {
      planned = false;
      for (size_t k = 0; k < ready.size() && !planned; ++k) {
        ModelRecord& model = *ready[(board.next_model + k) % ready.size()];
        if (model.state == ModelState::kUnloading) {
          models_.SendUnloadWhenIdle(model);
          if (scheduler_.RunOrder(model.name, model.replica).empty()) continue;
        }
        if (PlanStep(board, model)) {
          board.next_model = (board.next_model + k + 1) % ready.size();
          planned = true;
        }
      }
    }
  }
}

void StepLoop::RouteQueued() {
  // Without it, the replica whose board plans first would take every job its slots hold, and a
  // lightly loaded model would run all of its jobs on one board while the others idle.
  std::set<std::string> routed;  // Each name once; a name of one replica needs no routing.
  for (const auto& [id, record] : models_.models()) {
    const std::string& name = record->name;
    if (!routed.insert(name).second || scheduler_.QueuedFor(name) == 0) continue;
    const std::vector<ModelRecord*> replicas = models_.Replicas(name);
    if (replicas.size() < 2) continue;
    while (scheduler_.QueuedFor(name) > 0) {
      ModelRecord* least = nullptr;
      uint32_t least_running = 0;
      for (ModelRecord* replica : replicas) {
        const Board& board = boards_.at(replica->boards[0]);
        if (!models_.TakesJobs(*replica) || !board.runs_steps() ||
            board.steps_in_flight >= config_.steps_in_flight) {
          continue;
        }
        const ModelSlots slots = scheduler_.ReplicaSlots(replica->name, replica->replica);
        if (slots.free == 0 || slots.running >= slots.max_batch) continue;
        if (least == nullptr || slots.running < least_running) {
          least = replica;
          least_running = slots.running;
        }
      }
      if (least == nullptr || AdmitQueued(*least, 1) == 0) break;
    }
  }
}

size_t StepLoop::AdmitQueued(ModelRecord& model, size_t limit) {
  // A drained board takes no new work: queued jobs wait until it is undrained, or go to
  // another replica of the model.
  if (!models_.TakesJobs(model)) return 0;
  PreemptFor(model);
  grants_.clear();
  scheduler_.Admit(model.name, model.replica, &grants_, limit);
  const int64_t now = clock_.NowNanos();
  for (const SlotGrant& grant : grants_) {
    JobRecord& job = *jobs_.Find(grant.job.job_id);
    jobs_.MarkRunning(job, grant.slot);
    job.granted_ns = now;
    waits_.OnGranted(job.model, job.priority_class, job.tenant, now);
    // The fair share charges what the board reads: the prompt, or after a preemption or board
    // loss, the prompt and output it recomputes.
    scheduler_.Served(job.id, static_cast<uint32_t>(job.prefill.size()), 0);
    const std::string tenant = config_.scheduling.MetricLabel(job.tenant);
    telemetry::SchedulerMetrics& sm = metrics_.scheduler();
    sm.TenantTokens(tenant, "prompt").Increment(static_cast<double>(job.prefill.size()));
    job.tenant_output_tokens = &sm.TenantTokens(tenant, "output");
    // Room for the output up front, so that streaming does not regrow these vectors every few
    // chunks (large reallocations take the allocator's lock, which other threads contend). The
    // cap bounds what a job that stops early holds unused.
    const size_t tokens = std::min<size_t>(job.max_tokens, kOutputReserveTokens);
    job.output.reserve(tokens);
    const size_t chunks = tokens / std::max<uint32_t>(1, config_.decode_tokens_per_step) + 2;
    job.chunk_starts.reserve(chunks);
    job.chunk_texts.reserve(chunks);
  }
  return grants_.size();
}

void StepLoop::PreemptFor(ModelRecord& model) {
  // The policy picks among every replica's jobs; each replica preempts its own (a slot freed on
  // a drained replica would serve nobody).
  const std::deque<uint64_t>& mine = scheduler_.RunOrder(model.name, model.replica);
  for (uint64_t id : scheduler_.PreemptCandidates(model.name)) {
    if (std::find(mine.begin(), mine.end(), id) == mine.end()) continue;
    JobRecord* job = jobs_.Find(id);
    if (job == nullptr || job->finished || job->preempt_requested) continue;
    if (job->in_flight) {
      job->preempt_requested = true;  // Yields when its Step returns (step_results.cc).
    } else {
      Preempt(*job);
    }
  }
}

void StepLoop::Preempt(JobRecord& job) {
  job.preempt_requested = false;
  if (job.finished || job.slot < 0) return;
  metrics_.scheduler().Preempted(job.model, "higher_class").Increment();
  scheduler_.Release(job.model, job.id);
  jobs_.ClearSlot(job);
  // Its KV cache is dropped with the slot; the prompt and output so far are recomputed when it
  // runs again, with its class, tenant, deadline and acceptance order (its place among equals).
  jobs_.MarkRequeued(job);
  scheduler_.Enqueue(QueuedJobOf(job));
}

bool StepLoop::PlanStep(Board& board, ModelRecord& model) {
  AdmitQueued(model);
  StepTarget target;
  target.serial = next_step_serial_;
  target.stages = model.boards.size();
  target.passes_on_board = model.direct_handoff;
  for (uint32_t index : model.boards) {
    // The Step goes through every board of the model: the smallest limits hold.
    const BoardIdentity& id = boards_.at(index).identity;
    target.max_seqs = std::min(target.max_seqs, id.step_seqs());
    target.max_generate = std::min<uint64_t>(target.max_generate, id.step_tokens());
    target.max_frame_bytes = std::min<uint64_t>(target.max_frame_bytes, id.step_frame_bytes());
    // Hidden states between stages are bounded per step by the boards' link buffers.
    if (model.pipelined() && !model.shape_only) {
      target.token_budget = std::min<uint64_t>(
          target.token_budget, id.max_step_hidden_values / model.arch.hidden_size);
    }
  }
  if (model.pipelined() && !model.direct_handoff && !model.shape_only) {
    // Relayed by the step loop, the hidden states ride in the Steps to the later boards.
    target.hidden_bytes_per_token = model.arch.hidden_size * static_cast<uint32_t>(sizeof(float));
  }
  auto work = std::make_unique<WorkerRequest>(StepWork{});
  StepWork& step = std::get<StepWork>(*work);
  step.seqs = planner_.TakeSeqs();
  unfit_.clear();
  const size_t planned = planner_.Plan(target, scheduler_.RunOrder(model.name, model.replica),
                                       &step.seqs, &step.job_ids, &unfit_);
  for (uint64_t id : unfit_) {
    // Bounded inputs keep this from happening; should a board report smaller limits, the job
    // ends rather than taking the board down with a frame it cannot receive.
    if (JobRecord* job = jobs_.Find(id)) {
      FinishJob(*job, FinishReason::kError, ErrorCode::kInvalidArgument,
                "its sequence does not fit one Step of board " +
                    std::to_string(model.boards[0]) + " (" +
                    std::to_string(target.max_frame_bytes) + "-byte frames)");
    }
  }
  if (planned == 0) {
    planner_.Recycle(std::move(step.seqs));  // Unused: it serves the next step.
    return false;
  }
  step.serial = next_step_serial_++;
  step.model_id = model.model_id;
  if (model.pipelined() && !model.direct_handoff) {
    // Relayed: the first board embeds and passes hidden states on; only the last one samples.
    // (With direct hand-off the first board runs the Step through every board itself.)
    Chain& chain = chains_[step.serial];
    chain.seqs = step.seqs;
    for (SeqStep& seq : step.seqs) seq.generate = 0;
  }
  board.StepSent(clock_.NowNanos());
  if (!boards_.Send(board.index, std::move(work))) {
    // The worker is gone (shutdown); nothing will answer this step.
    board.StepReturned(clock_.NowNanos());
    log::Warn(log::BoardComponent(board.index), "worker channel refused a step");
    return false;
  }
  return true;
}

}  // namespace wafer::host

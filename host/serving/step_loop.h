// The step loop's work between the parts: it grants slots, asks the step planner for each
// board's next Step and sends it, takes the results (tokens streamed to their clients, a
// pipelined step handed on to its next board, failures turned into re-queues, repairs or job
// endings), and ends jobs (finished, cancelled, expired, their model gone).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "host/boards/board_manager.h"
#include "host/config/daemon_config.h"
#include "host/serving/model_manager.h"
#include "host/serving/job_replies.h"
#include "host/jobs/job_table.h"
#include "host/scheduler/scheduler.h"
#include "host/scheduler/wait_estimator.h"
#include "host/scheduler/step_planner.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

// Not thread-safe; owned by the step loop's thread.
class StepLoop {
 public:
  // REQUIRES: every argument outlives the loop (`models` and `replies` need only be
  // constructed before the first call).
  StepLoop(const DaemonConfig& config, const Clock& clock, JobTable& jobs, Scheduler& scheduler,
           WaitEstimator& waits, BoardManager& boards, ModelManager& models, JobReplies& replies,
           telemetry::DaemonMetrics& metrics);

  // Plans and sends a Step on every board that has room for one (step_planning.cc).
  void ScheduleSteps();
  // A board's worker returned a Step (step_results.cc).
  void OnStepDone(Board& board, StepDone& done);

  // ---- job endings (job_endings.cc) ----
  // Ends `job` (its slot released, the client told). No-op for a finished job.
  void FinishJob(JobRecord& job, FinishReason reason, ErrorCode error = ErrorCode::kNone,
                 std::string detail = "");
  // A client cancelled `job`: it ends now, or when its step under way returns.
  void Cancel(JobRecord& job, FinishReason reason = FinishReason::kCancelled);
  // `model`'s board went down (`why`) with Steps in flight, before its jobs are re-queued: the
  // jobs in those Steps become suspects (JobRecord::suspect_until_output); a suspect that was
  // the only job in flight is the cause, and ends as a poison job.
  void BlameBoardLoss(const ModelRecord& model, const std::string& why);
  // Ends the jobs whose deadline passed (a job in flight ends when its step returns), and sheds
  // the queued jobs watched for their TTFT target (WatchTtftTarget) that missed it.
  void ExpireDeadlines();
  // `job`'s tenant sheds on a TTFT miss: while it is queued without a token past its target, it
  // is shed (FinishReason kShed).
  void WatchTtftTarget(const JobRecord& job);
  // The running jobs of replica `model` go back to its name's queue, keeping their priority,
  // with prompt + output as prefill (a cancelled one ends); any replica may take them. Returns
  // how many went back.
  size_t RequeueRunning(const ModelRecord& model);
  // Ends the running jobs of replica `model`, or the queued jobs of model `name`, with `error`.
  // Return how many ended.
  size_t FinishRunning(const ModelRecord& model, ErrorCode error, const std::string& detail);
  size_t FailQueued(const std::string& name, ErrorCode error, const std::string& detail);
  // The drain of `board` changed: an evacuating drain re-queues the running jobs of every model
  // replica on it (another replica of the same model takes them, else they wait for the board).
  void OnDrainChanged(const Board& board);

 private:
  // A step of a pipelined model on its way through the boards. Every stage runs the same
  // sequences (each board holds its layers' KV cache for the same slots); hidden states go from
  // one stage's results into the next stage's inputs, and only the last stage samples.
  struct Chain {
    uint32_t stage = 0;         // The board (index into ModelRecord::boards) running it now.
    std::vector<SeqStep> seqs;  // As planned (generate as the last stage must run it).
    DeviceTime time;            // Summed over the stages done so far.
  };

  bool PlanStep(Board& board, ModelRecord& model);
  // Routing between replicas: each job queued for a model of several replicas goes to the one
  // with the fewest running jobs among those with a free slot whose board can take a step now.
  void RouteQueued();
  // Grants up to `limit` of `model`'s queued jobs a slot on this replica.
  size_t AdmitQueued(ModelRecord& model, size_t limit = SIZE_MAX);
  // Each queued job of a higher class that no free slot covers takes a lower class's slot
  // (the policy's candidates): now, or for a job in flight, when its step returns.
  void PreemptFor(ModelRecord& model);
  // `job` gives its slot back and queues again with its output as prefill; its stream goes on.
  void Preempt(JobRecord& job);
  void ForwardStep(Chain& chain, ModelRecord& model, StepDone& done);
  // A Step of a model with direct hand-off came back with a later stage failed
  // (PipelineReport.failed_stage): repair or reload the model, its jobs re-queued.
  void OnPipelineFailed(ModelRecord& model, const PipelineReport& pipeline);
  void FinishRefusedSeq(JobRecord& job, const Status& status);

  void ApplyTokens(JobRecord& job, ModelRecord& model, const std::vector<uint32_t>& tokens,
                   int64_t now);
  // The job of `id` that step `serial` carried, or nullptr (gone, finished, or re-queued into a
  // newer step since).
  JobRecord* JobOfStep(uint64_t id, uint64_t serial);

  const DaemonConfig& config_;
  const Clock& clock_;
  JobTable& jobs_;
  Scheduler& scheduler_;
  WaitEstimator& waits_;
  StepPlanner planner_;
  BoardManager& boards_;
  ModelManager& models_;
  JobReplies& replies_;
  telemetry::DaemonMetrics& metrics_;
  std::unordered_map<uint64_t, Chain> chains_;  // Step serial -> a pipelined step under way.
  uint64_t next_step_serial_ = 1;
  // The TokenChunk that ApplyTokens fills and sends, kept between calls: streaming a chunk then
  // allocates nothing on this thread.
  JobMessage chunk_message_ = TokenChunk{};
  std::vector<SlotGrant> grants_;    // AdmitQueued's scratch; keeps its capacity.
  std::vector<uint64_t> expired_;    // ExpireDeadlines' scratch.
  std::multimap<int64_t, uint64_t> ttft_watch_;  // TTFT target (ns) -> job, see WatchTtftTarget.
  std::vector<uint64_t> unfit_;      // PlanStep's scratch: jobs no Step can carry.
};

}  // namespace wafer::host

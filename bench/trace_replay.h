// Replays a scheduling trace against waferd's job socket over one DEALER (libwafer_client's
// Send / Receive): open loop, each job sent at its trace time whatever the replies, or closed
// loop with a fixed number of jobs in flight (to saturate the board). Records what each job's
// submitter saw, on the client's clock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/sched_trace.h"
#include "common/error.h"
#include "host/wire/messages.h"

namespace wafer::bench {

// Times are seconds from the start of the replay; -1 when the event did not happen.
struct JobOutcome {
  double sent_s = -1;
  double reply_s = -1;        // JobAccepted, JobRejected, or an ErrorReply naming its tag.
  bool accepted = false;
  host::ErrorCode code = host::ErrorCode::kNone;  // When refused.
  uint32_t retry_after_ms = 0;                    // When refused.
  double first_token_s = -1;  // The first TokenChunk.
  double finished_s = -1;     // JobFinished.
  host::FinishReason reason = host::FinishReason::kLength;
  uint32_t prompt_tokens = 0;      // As JobFinished reports them.
  uint32_t completion_tokens = 0;
  uint32_t tokens_received = 0;    // Counted over the TokenChunks.
  uint32_t window_tokens = 0;      // Those received within ReplayOptions' service window.

  bool sent() const { return sent_s >= 0; }
  bool answered() const { return reply_s >= 0; }
  bool refused() const { return answered() && !accepted; }
  bool finished() const { return finished_s >= 0; }
  bool started() const { return first_token_s >= 0; }
  double ttft_s() const { return first_token_s - sent_s; }
  double reply_latency_s() const { return reply_s - sent_s; }
  // Ended normally (length or stop token).
  bool completed() const {
    return finished() && (reason == host::FinishReason::kLength ||
                          reason == host::FinishReason::kStopToken);
  }
};

struct ReplayOptions {
  std::string endpoint;
  std::string model = "shape";
  // 0: open loop, each job sent at its trace time. Otherwise closed loop: this many jobs
  // submitted and not yet finished at any time, trace times ignored, sending for send_for_s.
  uint32_t in_flight = 0;
  double send_for_s = 0;
  // After the last send, how long to wait for the jobs still running; what has not finished
  // by then is left unfinished (the caller stops waferd).
  double drain_limit_s = 10;
  // The run fails when waferd sends nothing for this long while jobs are outstanding.
  int silence_limit_ms = 10000;
  // Tokens received in [service_from_s, service_to_s) are also counted per job
  // (JobOutcome::window_tokens): the service each job got while the load was steady.
  double service_from_s = 0;
  double service_to_s = 0;
  // False: SubmitJob carries no ttft_target_ms (waferd's admission then never refuses for the
  // target, as before it had admission); attainment is still judged against the class target.
  bool send_targets = true;
};

struct ReplayResult {
  std::vector<JobOutcome> jobs;  // Parallel to the trace; a closed loop leaves the tail unsent.
  double sending_s = 0;          // First send to last send.
  double wall_s = 0;             // First send to the end of the replay.
  double max_send_skew_s = 0;    // Open loop: largest |sent - trace time|.
  uint32_t unfinished = 0;       // Accepted, not finished when the drain limit ran out.
  uint32_t unanswered = 0;       // Sent, neither accepted nor refused by then.
  std::map<host::ErrorCode, std::string> first_detail;  // Of each rejection code.
};

// Returns:
//   OK                - `result` holds the run.
//   UNAVAILABLE       - no connection, or a send failed (the message says which job).
//   DEADLINE_EXCEEDED - waferd was silent for silence_limit_ms with jobs outstanding.
//   DATA_LOSS         - waferd sent something undecodable.
HostStatus ReplayTrace(const TraceSpec& spec, const std::vector<TraceJob>& trace,
                       const ReplayOptions& options, ReplayResult* result);

}  // namespace wafer::bench

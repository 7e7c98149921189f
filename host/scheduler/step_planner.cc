#include "host/scheduler/step_planner.h"

#include <algorithm>

#include "telemetry/daemon_metrics.h"

namespace wafer::host {

StepPlanner::StepPlanner(const StepPlannerOptions& options, JobTable& jobs, const Clock& clock)
    : options_(options), jobs_(jobs), clock_(clock) {}

void StepPlanner::Recycle(std::vector<SeqStep>&& seqs) {
  // One spare per step that can be in flight is enough.
  if (spare_seqs_.size() < kMaxSpareSeqs) spare_seqs_.push_back(std::move(seqs));
}

std::vector<SeqStep> StepPlanner::TakeSeqs() {
  if (spare_seqs_.empty()) return {};
  std::vector<SeqStep> seqs = std::move(spare_seqs_.back());
  spare_seqs_.pop_back();
  return seqs;
}

size_t StepPlanner::Plan(const StepTarget& target, std::deque<uint64_t>& running,
                         std::vector<SeqStep>* seqs, std::vector<uint64_t>* job_ids,
                         std::vector<uint64_t>* unfit) {
  const bool pipelined = target.stages > 1 && !target.passes_on_board;
  const size_t groups = size_t{options_.steps_in_flight} * (pipelined ? target.stages : 1);
  const size_t per_step =
      std::min<size_t>({options_.max_batch, size_t{target.max_seqs},
                        (running.size() + groups - 1) / groups});
  uint64_t budget = target.token_budget;
  uint64_t generate_left = target.max_generate;
  const uint64_t frame_room = target.max_frame_bytes > kFrameOverheadBytes
                                  ? target.max_frame_bytes - kFrameOverheadBytes
                                  : 0;
  uint64_t bytes_left = frame_room;
  job_ids->clear();
  job_ids->reserve(std::min(per_step, running.size()));
  // `seqs` entries are reused: every field of an entry is overwritten, so planning allocates
  // nothing per sequence once warm. `planned` counts the entries filled.
  size_t planned = 0;
  const int64_t now = clock_.NowNanos();
  std::vector<uint64_t>& waiting = waiting_;
  waiting.clear();
  // A suspect of a board loss runs with nothing else of its model in flight, so that if the
  // board goes down again the cause is known (StepLoop::BlameBoardLoss).
  bool any_in_flight = false;
  for (uint64_t id : running) {
    const JobRecord* job = jobs_.Find(id);
    if (job == nullptr || !job->in_flight) continue;
    if (job->Suspect()) return 0;
    any_in_flight = true;
  }
  bool alone = false;  // A suspect is in this Step: nobody joins it.
  for (uint64_t id : running) {
    JobRecord* job = jobs_.Find(id);
    if (job == nullptr || job->in_flight || planned >= per_step || alone) {
      waiting.push_back(id);
      continue;
    }
    if (job->Suspect() && (planned > 0 || any_in_flight)) {
      waiting.push_back(id);  // It runs alone (below), once nothing else is in flight.
      continue;
    }
    // The frame: what this sequence carries besides its input tokens, and per input token.
    const uint64_t fixed_bytes = kSeqOverheadBytes + 4 * uint64_t{job->stop_tokens.size()};
    const uint64_t bytes_per_input = 4 + uint64_t{target.hidden_bytes_per_token};
    if (fixed_bytes + bytes_per_input > frame_room) {
      unfit->push_back(id);  // Not even alone in a Step: it can never be sent.
      continue;
    }
    if (fixed_bytes + bytes_per_input > bytes_left) {
      waiting.push_back(id);  // The next Step has room for it.
      continue;
    }
    const uint64_t input_room = (bytes_left - fixed_bytes) / bytes_per_input;
    // A board that answered the last prefill chunk with no token left nothing to decode from:
    // the prefill is sent again from the start (its slot reset), not a token it never gave.
    if (job->output.empty() && job->prefill_fed >= job->prefill.size()) job->prefill_fed = 0;
    const uint32_t remaining = job->max_tokens - static_cast<uint32_t>(job->output.size());
    const bool prefilling = job->prefill_fed < job->prefill.size();
    uint32_t inputs = 1;
    uint32_t generate = 0;
    if (prefilling) {
      const uint64_t left = job->prefill.size() - job->prefill_fed;
      inputs = static_cast<uint32_t>(std::min<uint64_t>(
          {options_.prefill_chunk_tokens, left, budget, input_room}));
      // The last prefill chunk yields the next token at once: time to first token matters.
      generate = inputs == left ? 1 : 0;
    } else {
      // A pipeline samples on its last board, so each pass through it yields one token.
      generate = pipelined ? 1 : std::min(options_.decode_tokens_per_step, remaining);
      generate = static_cast<uint32_t>(std::min<uint64_t>(generate, generate_left));
      if (budget == 0) inputs = 0;
    }
    if (inputs == 0 || (generate == 0 && !prefilling) || generate > generate_left) {
      waiting.push_back(id);  // No room left in this step (hidden states or tokens).
      continue;
    }
    if (budget != UINT64_MAX) budget -= inputs;
    bytes_left -= fixed_bytes + inputs * bytes_per_input;
    generate_left -= generate;
    if (planned == seqs->size()) seqs->emplace_back();
    SeqStep& seq = (*seqs)[planned];
    seq.slot = static_cast<uint32_t>(job->slot);
    seq.sampling = job->sampling;
    // A job recomputed after a board loss or a restart resumes its sampler where it stopped.
    seq.sampled_before = static_cast<uint32_t>(job->output.size());
    seq.stop_tokens.assign(job->stop_tokens.begin(), job->stop_tokens.end());
    seq.hidden_in = std::vector<float>();  // Hidden states can be large: none are kept.
    seq.generate = generate;
    seq.input_tokens.clear();
    if (prefilling) {
      seq.reset = job->prefill_fed == 0;
      seq.input_tokens.assign(job->prefill.begin() + job->prefill_fed,
                              job->prefill.begin() + job->prefill_fed + inputs);
      job->prefill_fed += inputs;
    } else {
      seq.reset = false;
      seq.input_tokens.push_back(job->output.back());
    }
    if (job->first_step_ns == 0) {
      job->first_step_ns = now;
      if (job->series != nullptr) {
        job->series->queue_wait->Observe(static_cast<double>(now - job->accepted_ns) / 1e9);
      }
    }
    job->in_flight = true;
    job->step_serial = target.serial;
    job_ids->push_back(id);
    ++planned;
    alone = job->Suspect();
  }
  seqs->resize(planned);
  if (planned == 0) return 0;
  // The jobs just planned go to the back, so every running job gets its turn.
  waiting.insert(waiting.end(), job_ids->begin(), job_ids->end());
  running.assign(waiting.begin(), waiting.end());
  return planned;
}

}  // namespace wafer::host

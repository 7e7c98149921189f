#include "tests/chaos_verify.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

namespace wafer::testing {
namespace {

const char* KindName(DisruptionKind k) {
  switch (k) {
    case DisruptionKind::kDaemonKill: return "waferd kill -9 + restart";
    case DisruptionKind::kBoardKill: return "wafer-sim kill -9 + restart";
    case DisruptionKind::kFault: return "board fault (admin InjectFault)";
    case DisruptionKind::kRelayDrop: return "client connection cut (relay)";
    case DisruptionKind::kAbandon: return "client abandons its socket";
  }
  return "?";
}

std::string Percentiles(std::vector<double> ms) {
  if (ms.empty()) return "n=0";
  std::sort(ms.begin(), ms.end());
  auto rank = [&ms](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * ms.size()));
    return ms[std::min(ms.size() - 1, i == 0 ? 0 : i - 1)];
  };
  char buf[128];
  std::snprintf(buf, sizeof(buf), "n=%zu p50 %.0f ms, p99 %.0f ms, max %.0f ms", ms.size(),
                rank(0.5), rank(0.99), ms.back());
  return buf;
}

// What the jobs of a run came to.
struct JobTally {
  int accepted = 0, rejected = 0, not_run = 0, finished = 0, typed_failures = 0, poisoned = 0,
      lost = 0,
      compared = 0, equal = 0, abandoned = 0, cross_checked = 0, cross_equal = 0;
  uint64_t gaps = 0, duplicate_tokens = 0, duplicate_chunks = 0, index_errors = 0, foreign = 0,
           tokens = 0;
};

// Checks one accepted job that has finished, whole or with a typed error.
void CheckFinishedJob(const ChaosRecord& record, size_t j, JobTally& n) {
  const ChaosJob& spec = record.jobs[j];
  const ChaosJobResult& r = record.results[j];
  const uint64_t id = r.outcome.accepted_reply.job_id;
  EXPECT_EQ(r.finished.job_id, id);
  EXPECT_EQ(r.finished.chunks, r.chunks) << "JobFinished counts other chunks than delivered";
  EXPECT_EQ(r.finished.completion_tokens, r.tokens.size());
  if (spec.abandon_after > 0) {
    ++n.abandoned;
    if (r.abandoned_job_id != 0) {
      EXPECT_EQ(r.abandoned_job_id, id) << "the same key gave another job on a new client";
      EXPECT_TRUE(r.outcome.accepted_reply.duplicate);
    }
    EXPECT_LE(r.abandoned_prefix.size(), r.tokens.size());
    EXPECT_TRUE(std::equal(r.abandoned_prefix.begin(), r.abandoned_prefix.end(), r.tokens.begin()))
        << "the resumed stream does not start with what the abandoned socket received";
  }
  switch (r.finished.reason) {
    case host::FinishReason::kLength:
    case host::FinishReason::kStopToken:
      ++n.finished;
      EXPECT_TRUE(r.has_reference) << "no reference run";
      if (r.has_reference) {
        ++n.compared;
        n.equal += r.tokens == r.reference;
        EXPECT_EQ(r.tokens, r.reference) << "differs from an undisturbed run of the same request";
      }
      if (r.has_cross_check) {
        ++n.cross_checked;
        n.cross_equal += r.cross_check == r.reference;
        EXPECT_EQ(r.cross_check, r.reference)
            << "the chaos daemon, undisturbed, disagrees with the reference daemon";
      }
      break;
    default:
      if (r.finished.error_code != host::ErrorCode::kNone ||
          r.finished.reason == host::FinishReason::kDeadlineExceeded ||
          r.finished.reason == host::FinishReason::kContextFull) {
        ++n.typed_failures;
        record.note("job " + std::to_string(j) + " failed with a typed reason: " +
                    host::FinishReasonName(r.finished.reason) + " " +
                    host::ErrorCodeName(r.finished.error_code) + " " + r.finished.detail);
        if (r.finished.reason == host::FinishReason::kPoison) {
          // Known limit of the poison rule: a board killed from outside twice while the same
          // job is in flight, the second time alone, looks exactly like a job that takes its
          // board down. Counted apart; not a strict failure.
          ++n.poisoned;
        } else if (record.strict) {
          ADD_FAILURE() << "ended " << host::FinishReasonName(r.finished.reason) << " "
                        << host::ErrorCodeName(r.finished.error_code) << ": "
                        << r.finished.detail << " (WAFER_CHAOS_STRICT)";
        }
      } else {
        ++n.lost;
        ADD_FAILURE() << "ended " << host::FinishReasonName(r.finished.reason)
                      << " without a typed error: " << r.finished.detail;
      }
  }
}

JobTally CheckJobs(const ChaosRecord& record) {
  JobTally n;
  std::map<uint64_t, size_t> ids;
  for (size_t j = 0; j < record.jobs.size(); ++j) {
    const ChaosJob& spec = record.jobs[j];
    const ChaosJobResult& r = record.results[j];
    SCOPED_TRACE("job " + std::to_string(j) + " (" + spec.request.idempotency_key + ", " +
                 spec.request.tenant + ", " + spec.request.model +
                 (spec.seeded ? ", seeded" : ", greedy") + ")");
    if (!r.started) {
      ++n.not_run;
      continue;
    }
    if (!r.outcome.accepted) {
      if (r.status.ok()) {
        ++n.rejected;
        ADD_FAILURE() << "rejected: " << host::ErrorCodeName(r.outcome.rejection.code) << " "
                      << r.outcome.rejection.detail;
      } else {
        ++n.lost;  // No answer within the budget: the client cannot tell whether it was accepted.
        ADD_FAILURE() << "never answered: " << r.status.name() << " " << r.client_error;
      }
      continue;
    }
    ++n.accepted;
    const uint64_t id = r.outcome.accepted_reply.job_id;
    EXPECT_TRUE(ids.emplace(id, j).second) << "job id " << id << " also names job " << ids[id];
    n.gaps += r.gaps;
    n.duplicate_tokens += r.duplicate_tokens;
    n.duplicate_chunks += r.duplicate_chunks;
    n.index_errors += r.index_errors;
    n.foreign += r.foreign_chunks;
    n.tokens += r.tokens.size();
    if (!r.got_finished) {
      ++n.lost;
      ADD_FAILURE() << "lost: RunWithRetry " << r.status.name() << ": " << r.client_error;
      continue;
    }
    CheckFinishedJob(record, j, n);
  }
  return n;
}

}  // namespace

void VerifyChaosRun(const ChaosRecord& record) {
  const JobTally n = CheckJobs(record);
  EXPECT_EQ(n.gaps, 0u);
  EXPECT_EQ(n.duplicate_tokens, 0u);
  EXPECT_EQ(n.duplicate_chunks, 0u);
  EXPECT_EQ(n.index_errors, 0u);
  EXPECT_EQ(n.foreign, 0u);
  EXPECT_EQ(n.lost, 0);
  EXPECT_EQ(n.not_run, 0) << "the load window of " << record.load_window_s << " s ran out";

  // Recovery times per kind of disruption.
  std::vector<double> recovery[kDisruptionKinds], answering;
  int counts[kDisruptionKinds] = {}, unmeasured[kDisruptionKinds] = {};
  for (const Disruption& d : record.disruptions) {
    const int k = static_cast<int>(d.kind);
    ++counts[k];
    if (d.answered_ns >= 0) answering.push_back((d.answered_ns - d.at_ns) / 1e6);
    int64_t first = -1;
    for (int t : d.affected) {
      const std::vector<int64_t>& times = record.progress[t];
      auto it = std::lower_bound(times.begin(), times.end(), d.restored_ns);
      if (it != times.end() && (first < 0 || *it < first)) first = *it;
    }
    if (first < 0) {
      ++unmeasured[k];
    } else {
      recovery[k].push_back((first - d.at_ns) / 1e6);
    }
  }
  int faults = 0;
  std::string fault_kinds, refusals;
  for (const auto& [kind, count] : record.faults) {
    faults += count;
    fault_kinds += " " + kind + " " + std::to_string(count);
  }
  for (const auto& [what, count] : record.refused) {
    refusals += " [" + what + "] x" + std::to_string(count);
  }

  const auto seed = static_cast<unsigned long long>(record.seed);
  std::printf("\n==== chaos figures (seed %llu; replay: WAFER_CHAOS_SEED=%llu) ====\n", seed, seed);
  std::printf(
      "jobs planned %zu, accepted %d, finished %d, failed with a typed reason %d (of them "
      "blamed as poison after two board losses %d), rejected %d, not run %d\n",
      record.jobs.size(), n.accepted, n.finished, n.typed_failures, n.poisoned, n.rejected,
      n.not_run);
  std::printf("jobs lost: %d (must be 0)\n", n.lost);
  std::printf(
      "tokens delivered %llu; tokens duplicated: %llu (must be 0); duplicate chunks %llu, "
      "gaps %llu, token index errors %llu, foreign chunks %llu\n",
      static_cast<unsigned long long>(n.tokens),
      static_cast<unsigned long long>(n.duplicate_tokens),
      static_cast<unsigned long long>(n.duplicate_chunks), static_cast<unsigned long long>(n.gaps),
      static_cast<unsigned long long>(n.index_errors), static_cast<unsigned long long>(n.foreign));
  std::printf(
      "outputs equal to an undisturbed run: %d of %d compared (reference daemon); "
      "chaos daemon undisturbed agrees with it on %d of %d\n",
      n.equal, n.compared, n.cross_equal, n.cross_checked);
  EXPECT_EQ(n.cross_checked, record.cross_checks_planned) << "some cross-check runs did not finish";
  std::printf(
      "daemon kills %d, board kills %d, faults injected %d (%s), faults refused:%s, "
      "connection cuts %d, sockets abandoned %d (jobs resumed on a new client %d)\n",
      counts[0], counts[1], faults, fault_kinds.empty() ? "none" : fault_kinds.c_str() + 1,
      refusals.empty() ? " none" : refusals.c_str(), counts[3], counts[4], n.abandoned);
  std::printf("client retries (resubmits + resumes): %u; waferd starts %d, wafer-sim starts %d\n",
              record.client_retries, record.waferd_starts, record.sim_starts);
  std::printf("recovery, disruption -> next chunk delivered to an affected job:\n");
  for (int k = 0; k < kDisruptionKinds; ++k) {
    std::printf("  %-34s %s (%d with no job in flight to measure)\n",
                KindName(static_cast<DisruptionKind>(k)), Percentiles(recovery[k]).c_str(),
                unmeasured[k]);
  }
  std::printf("  %-34s %s\n", "waferd kill -9 -> answering again", Percentiles(answering).c_str());
  std::printf("wall time %.1f s (budget %lld s)\n", record.elapsed_s(), record.budget_s);
  std::fflush(stdout);
}

}  // namespace wafer::testing

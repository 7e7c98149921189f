// Accepted means durable, tried on the shipped binary: waferd is killed with SIGKILL while jobs
// stream (and stopped with SIGTERM before they finish), started again on the same config and
// store, and every accepted job then finishes exactly once, its stream resumed gap-free and
// duplicate-free, its output (greedy, or seeded sampling) equal to an undisturbed run's.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "host/client/wafer_client.h"
#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"
#include "tests/slow_preset.h"

namespace wafer::testing {
namespace {

using host::JobMessage;

const std::string kBin = WAFER_BIN_DIR;

// What a client knows of one of its jobs.
struct Stream {
  uint64_t instance = 0;
  uint32_t next_seq = 0;
  std::vector<uint32_t> tokens;
  int finished = 0;  // JobFinished messages seen: must end at exactly 1.
  host::JobFinished ending;
};

class CrashRecoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteModel(dir_.path() + "/tiny", "tiny", 1));
    job_ep_ = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
    admin_ep_ = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
    WriteConfig("");
  }
  // `board_keys` are added to the embedded board's entry (e.g. a preset and pacing).
  void WriteConfig(const std::string& board_keys) {
    std::ofstream(dir_.path() + "/waferd.yaml")
        << "job_endpoint: " << job_ep_ << "\nadmin_endpoint: " << admin_ep_
        << "\nmetrics_address: \"\"\ndrain_timeout_ms: 0\n"
        << "store: {path: " << dir_.path() << "/jobs.db}\n"
        << "scheduler: {decode_tokens_per_step: 4}\n"
        << "boards:\n  - {endpoint: \"inproc://b0\"" << board_keys << "}\nmodels:\n"
        << "  - name: tiny\n    path: " << dir_.path() << "/tiny\n    slots: 4\n";
  }
  void TearDown() override {
    if (waferd_ > 0) {
      kill(waferd_, SIGKILL);
      waitpid(waferd_, nullptr, 0);
    }
  }

  // Starts waferd and waits until its model is ready.
  void Start() {
    waferd_ = SpawnProgram({kBin + "/waferd", "--config", dir_.path() + "/waferd.yaml"},
                           dir_.path() + "/waferd." + std::to_string(++starts_) + ".log");
    for (int i = 0; i < 200; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto admin = host::AdminClient::Connect(admin_ep_);
      host::StatusReply status;
      if (!admin.ok() || !(*admin)->QueryStatus(&status, 200).ok()) continue;
      if (status.models.size() == 1 && status.models[0].state == host::ModelState::kReady) {
        return;
      }
    }
    FAIL() << "waferd did not get its model ready\n" << Log();
  }
  std::string Log() { return ReadWholeFile(dir_.path() + "/waferd." + std::to_string(starts_) + ".log"); }

  // Kills waferd the hard way (no drain, no commit, no cleanup).
  void KillNine() {
    ASSERT_EQ(kill(waferd_, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(waferd_, &status, 0), waferd_);
    ASSERT_TRUE(WIFSIGNALED(status));
    waferd_ = -1;
  }

  static host::SubmitJob Job(uint32_t i, uint32_t max_tokens) {
    host::SubmitJob s;
    s.model = "tiny";
    s.prompt_tokens = {1 + i % 7, 2 + i % 5, 3 + i % 3, 4};
    s.max_tokens = max_tokens;
    s.idempotency_key = "job-" + std::to_string(i);
    s.want_text = false;
    if (i % 2 == 1) s.sampling = Sampling{0.8f, 20, 0.95f, 1000 + i};  // Seeded.
    return s;
  }

  // Submits jobs 0..jobs-1 (Job(i, max_tokens)), recording each in `streams` and `ids`.
  static void SubmitAll(host::JobClient& client, uint32_t jobs, uint32_t max_tokens,
                        std::map<uint64_t, Stream>* streams, std::vector<uint64_t>* ids) {
    for (uint32_t i = 0; i < jobs; ++i) {
      host::SubmitOutcome outcome;
      ASSERT_TRUE(client.Submit(Job(i, max_tokens), &outcome, 5000).ok());
      ASSERT_TRUE(outcome.accepted) << outcome.rejection.detail;
      ids->push_back(outcome.accepted_reply.job_id);
      (*streams)[ids->back()].instance = outcome.accepted_reply.instance_id;
    }
  }

  // Applies one message to `streams`, checking the stream rules on the way.
  static void Apply(const JobMessage& m, std::map<uint64_t, Stream>* streams) {
    if (const auto* chunk = std::get_if<host::TokenChunk>(&m)) {
      auto it = streams->find(chunk->job_id);
      ASSERT_NE(it, streams->end()) << "a chunk of job " << chunk->job_id << " nobody submitted";
      Stream& s = it->second;
      EXPECT_EQ(chunk->instance_id, s.instance) << chunk->job_id;
      EXPECT_EQ(chunk->seq, s.next_seq) << "gap or duplicate in job " << chunk->job_id;
      EXPECT_EQ(chunk->first_token_index, s.tokens.size()) << chunk->job_id;
      EXPECT_EQ(s.finished, 0) << "a chunk after the end of job " << chunk->job_id;
      s.next_seq = chunk->seq + 1;
      s.tokens.insert(s.tokens.end(), chunk->tokens.begin(), chunk->tokens.end());
    } else if (const auto* f = std::get_if<host::JobFinished>(&m)) {
      auto it = streams->find(f->job_id);
      ASSERT_NE(it, streams->end()) << f->job_id;
      EXPECT_EQ(f->instance_id, it->second.instance);
      ++it->second.finished;
      it->second.ending = *f;
    }
  }

  static bool AllFinished(const std::map<uint64_t, Stream>& streams) {
    for (const auto& [id, s] : streams) {
      if (s.finished == 0) return false;
    }
    return true;
  }

  // Receives until every stream finished (or `budget_ms` of silence).
  static void Drain(host::JobClient& client, std::map<uint64_t, Stream>* streams,
                    int budget_ms = 20000) {
    while (!AllFinished(*streams)) {
      JobMessage m;
      HostStatus s = client.Receive(&m, budget_ms);
      ASSERT_TRUE(s.ok()) << "stream stalled: " << Describe(s);
      Apply(m, streams);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }

  // Runs `jobs` undisturbed on the running daemon (fresh idempotency keys): the reference.
  std::vector<std::vector<uint32_t>> Reference(uint32_t jobs, uint32_t max_tokens) {
    auto client = host::JobClient::Connect(job_ep_);
    EXPECT_TRUE(client.ok());
    std::map<uint64_t, Stream> streams;
    std::vector<uint64_t> ids;
    for (uint32_t i = 0; i < jobs; ++i) {
      host::SubmitJob s = Job(i, max_tokens);
      s.idempotency_key = "reference-" + std::to_string(i);
      host::SubmitOutcome outcome;
      EXPECT_TRUE((*client)->Submit(s, &outcome, 5000).ok());
      EXPECT_TRUE(outcome.accepted) << outcome.rejection.detail;
      ids.push_back(outcome.accepted_reply.job_id);
      streams[ids.back()].instance = outcome.accepted_reply.instance_id;
    }
    Drain(**client, &streams);
    std::vector<std::vector<uint32_t>> outputs;
    for (uint64_t id : ids) outputs.push_back(streams[id].tokens);
    return outputs;
  }

  TempDir dir_;
  std::string job_ep_, admin_ep_;
  pid_t waferd_ = -1;
  int starts_ = 0;
};

TEST_F(CrashRecoveryTest, KillNineLosesNoAcceptedJobAndResumesEachStreamExactly) {
  constexpr uint32_t kJobs = 24, kMaxTokens = 300;
  Start();
  auto client = host::JobClient::Connect(job_ep_);
  ASSERT_TRUE(client.ok());
  std::map<uint64_t, Stream> streams;
  std::vector<uint64_t> ids;
  SubmitAll(**client, kJobs, kMaxTokens, &streams, &ids);
  ASSERT_FALSE(HasFatalFailure());
  const uint64_t instance = streams[ids[0]].instance;
  EXPECT_NE(instance, 0u);
  // Some tokens stream, then the daemon dies mid-flight.
  int chunks_before = 0;
  while (chunks_before < 20) {
    JobMessage m;
    ASSERT_TRUE((*client)->Receive(&m, 10000).ok());
    Apply(m, &streams);
    if (std::holds_alternative<host::TokenChunk>(m)) ++chunks_before;
  }
  KillNine();
  int finished_before = 0;
  for (const auto& [id, s] : streams) finished_before += s.finished;
  ASSERT_LT(finished_before, static_cast<int>(kJobs)) << "the kill came too late to test much";

  const auto restart = std::chrono::steady_clock::now();
  Start();
  // A new connection (the old one's routing id died with the daemon) resumes every stream
  // from the first chunk it lacks; the store's instance is the same.
  auto resumed = host::JobClient::Connect(job_ep_);
  ASSERT_TRUE(resumed.ok());
  for (uint64_t id : ids) {
    const Stream& s = streams[id];
    if (s.finished == 0) {
      ASSERT_TRUE((*resumed)->Send(host::ResumeStream{id, s.next_seq, instance}).ok());
    }
  }
  Drain(**resumed, &streams);
  ASSERT_FALSE(HasFatalFailure()) << Log();
  const double recovery_ms = std::chrono::duration<double, std::milli>(
                                 std::chrono::steady_clock::now() - restart)
                                 .count();

  // Exactly once, whole, and the same tokens as an undisturbed run.
  const std::vector<std::vector<uint32_t>> reference = Reference(kJobs, kMaxTokens);
  ASSERT_EQ(reference.size(), ids.size());
  int recovered = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const Stream& s = streams[ids[i]];
    EXPECT_EQ(s.finished, 1) << ids[i];
    EXPECT_EQ(s.ending.chunks, s.next_seq) << ids[i];
    EXPECT_EQ(s.ending.completion_tokens, s.tokens.size()) << ids[i];
    EXPECT_EQ(s.tokens, reference[i]) << "job " << i << " differs from an undisturbed run";
    recovered += s.ending.reason == host::FinishReason::kLength ? 1 : 0;
  }
  std::printf("crash recovery: %u jobs accepted, %d chunks before the kill, %d finished before, "
              "%d finished after; jobs lost 0; restart to all finished %.0f ms\n",
              kJobs, chunks_before, finished_before, recovered - finished_before, recovery_ms);

  // The idempotency keys survived: a retry gets its job back, another request under a used
  // key is refused with its own code.
  host::SubmitOutcome retry;
  ASSERT_TRUE((*resumed)->Submit(Job(3, kMaxTokens), &retry, 5000).ok());
  ASSERT_TRUE(retry.accepted);
  EXPECT_TRUE(retry.accepted_reply.duplicate);
  EXPECT_EQ(retry.accepted_reply.job_id, ids[3]);
  host::SubmitJob changed = Job(3, kMaxTokens);
  changed.prompt_tokens.push_back(9);
  host::SubmitOutcome conflict;
  ASSERT_TRUE((*resumed)->Submit(changed, &conflict, 5000).ok());
  EXPECT_FALSE(conflict.accepted);
  EXPECT_EQ(conflict.rejection.code, host::ErrorCode::kIdempotencyConflict);
  // A resume naming another store's instance is refused, never answered with this one's job.
  ASSERT_TRUE((*resumed)->Send(host::ResumeStream{ids[0], 0, instance ^ 1}).ok());
  JobMessage m;
  ASSERT_TRUE((*resumed)->Receive(&m, 5000).ok());
  ASSERT_TRUE(std::holds_alternative<host::ErrorReply>(m));
  EXPECT_EQ(std::get<host::ErrorReply>(m).code, host::ErrorCode::kUnknownJob);
}

TEST_F(CrashRecoveryTest, SigtermLeavesUnfinishedJobsForTheNextStart) {
  constexpr uint32_t kJobs = 12, kMaxTokens = 400;
  Start();
  auto client = host::JobClient::Connect(job_ep_);
  ASSERT_TRUE(client.ok());
  std::map<uint64_t, Stream> streams;
  std::vector<uint64_t> ids;
  SubmitAll(**client, kJobs, kMaxTokens, &streams, &ids);
  ASSERT_FALSE(HasFatalFailure());
  // drain_timeout_ms is 0: SIGTERM ends waferd at once, cancelling nothing.
  ASSERT_EQ(kill(waferd_, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(waferd_, &status, 0), waferd_);
  waferd_ = -1;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << Log();
  while (true) {  // What was sent before the stop (all of it durable).
    JobMessage m;
    if (!(*client)->Receive(&m, 200).ok()) break;
    Apply(m, &streams);
  }
  for (const auto& [id, s] : streams) {
    if (s.finished != 0) {
      EXPECT_NE(s.ending.reason, host::FinishReason::kError) << s.ending.detail;
    }
  }
  Start();
  auto resumed = host::JobClient::Connect(job_ep_);
  ASSERT_TRUE(resumed.ok());
  for (uint64_t id : ids) {
    if (streams[id].finished == 0) {
      ASSERT_TRUE((*resumed)->Send(host::ResumeStream{id, streams[id].next_seq, 0}).ok());
    }
  }
  Drain(**resumed, &streams);
  ASSERT_FALSE(HasFatalFailure()) << Log();
  for (uint64_t id : ids) {
    EXPECT_EQ(streams[id].finished, 1);
    EXPECT_EQ(streams[id].ending.reason, host::FinishReason::kLength);
    EXPECT_EQ(streams[id].tokens.size(), kMaxTokens);
  }
}

TEST_F(CrashRecoveryTest, ACancelTheClientWasToldOfSurvivesAKill) {
  constexpr uint32_t kMaxTokens = 1000;
  // Steps of 10 ms: the kill lands while the cancelled job's Step is still on the board, before
  // the job has ended; only the stored cancel keeps it from running again.
  ASSERT_TRUE(WriteSlowPreset(dir_.path() + "/slow.yaml"));
  WriteConfig(", preset: \"" + dir_.path() + "/slow.yaml\", pacing: realtime");
  Start();
  auto client = host::JobClient::Connect(job_ep_);
  ASSERT_TRUE(client.ok());
  std::map<uint64_t, Stream> streams;
  std::vector<uint64_t> ids;
  SubmitAll(**client, 1, kMaxTokens, &streams, &ids);
  ASSERT_FALSE(HasFatalFailure());
  const uint64_t id = ids[0];
  while (streams[id].next_seq < 2) {  // Running: a Step of it is in flight.
    JobMessage m;
    ASSERT_TRUE((*client)->Receive(&m, 10000).ok());
    Apply(m, &streams);
  }
  // CancelResult leaves only once the cancel is on disk; the daemon dies right after.
  host::CancelResult result;
  ASSERT_TRUE((*client)->Cancel(id, &result, 5000).ok());
  ASSERT_EQ(result.code, host::ErrorCode::kNone);
  KillNine();
  Start();
  auto resumed = host::JobClient::Connect(job_ep_);
  ASSERT_TRUE(resumed.ok());
  ASSERT_TRUE((*resumed)->Send(host::ResumeStream{id, streams[id].next_seq, 0}).ok());
  Drain(**resumed, &streams);
  ASSERT_FALSE(HasFatalFailure()) << Log();
  EXPECT_EQ(streams[id].finished, 1);
  EXPECT_EQ(streams[id].ending.reason, host::FinishReason::kCancelled);
  EXPECT_LT(streams[id].tokens.size(), kMaxTokens) << "the cancelled job ran again";
}

TEST_F(CrashRecoveryTest, ADamagedStoreStopsWaferdWithTheFileNamed) {
  // Not an SQLite file at all (a disk error, or somebody's editor): waferd refuses to start and
  // says which file, rather than starting empty and forgetting accepted jobs.
  std::ofstream(dir_.path() + "/jobs.db") << std::string(8192, '\x5a');
  const int code =
      RunProgram({kBin + "/waferd", "--config", dir_.path() + "/waferd.yaml"}, dir_.path() + "/bad.log");
  EXPECT_EQ(code, 3);
  const std::string log = ReadWholeFile(dir_.path() + "/bad.log");
  EXPECT_NE(log.find(dir_.path() + "/jobs.db"), std::string::npos) << log;
  EXPECT_NE(log.find("not a readable job store"), std::string::npos) << log;
}

}  // namespace
}  // namespace wafer::testing

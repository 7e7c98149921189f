// `waferctl jobs` against a daemon: on a model with one slot one job runs and the rest wait, and
// the admin socket lists them (states, order, queue positions as the job socket reports them,
// tenant and state filters, the limit), shows one in detail, and cancels queued and running
// jobs exactly as their clients' cancels would (each client gets JobFinished kCancelled). The
// real waferctl binary is driven for the table, --json and exit codes. With CURVE on, a viewer
// lists and shows but may not cancel, and the refusal and the admin's cancel are audited.
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/net/curve.h"
#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;
const std::string kBin = WAFER_BIN_DIR;

// Runs waferctl against `admin_endpoint` with `args`; returns its exit code, fills `out` with
// what it printed (stdout and stderr).
int Ctl(const std::string& admin_endpoint, const std::vector<std::string>& args,
        const std::string& dir, std::string* out) {
  std::vector<std::string> argv = {kBin + "/waferctl", "--admin-endpoint", admin_endpoint};
  argv.insert(argv.end(), args.begin(), args.end());
  const int code = RunProgram(argv, dir + "/ctl.out");
  *out = ReadWholeFile(dir + "/ctl.out");
  return code;
}

SubmitJob Job(const std::string& tenant, uint8_t priority, uint32_t max_tokens) {
  SubmitJob job;
  job.model = "m";
  job.tenant = tenant;
  job.priority = priority;
  job.prompt_tokens = {5, 6, 7};
  job.max_tokens = max_tokens;
  return job;
}

// The ids of `list`'s jobs, in order.
std::vector<uint64_t> Ids(const JobList& list) {
  std::vector<uint64_t> ids;
  for (const JobSummary& s : list.jobs) ids.push_back(s.job_id);
  return ids;
}

// Waits (bounded) for the JobFinished of `job_id` on `client`.
JobFinished WaitFinished(JobClient& client, uint64_t job_id) {
  JobMessage m;
  for (int i = 0; i < 100; ++i) {
    if (!client.Receive(&m, kTimeoutMs).ok()) break;
    if (auto* f = std::get_if<JobFinished>(&m); f != nullptr && f->job_id == job_id) return *f;
  }
  ADD_FAILURE() << "no JobFinished for job " << job_id;
  return JobFinished{};
}

// A job of many tokens that runs (streams) on a thread of its own until it ends.
class LongJob {
 public:
  LongJob(std::unique_ptr<JobClient> client, SubmitJob job) : client_(std::move(client)) {
    thread_ = std::thread([this, job] {
      SubmitOutcome outcome;
      status_ = client_->Run(
          job,
          [this](const TokenChunk& c) {
            id_ = c.job_id;
            streamed_ += static_cast<uint32_t>(c.tokens.size());
          },
          &outcome, &finished_, 60000);
    });
  }
  ~LongJob() { Join(); }
  // Waits (bounded) until it has streamed a token; returns its id (0 when it never did).
  uint64_t WaitRunning() {
    for (int i = 0; i < 10000 && streamed_.load() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return id_.load();
  }
  const JobFinished& Join() {
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(IsOk(status_));
    return finished_;
  }

 private:
  std::unique_ptr<JobClient> client_;
  std::thread thread_;
  std::atomic<uint64_t> id_{0};
  std::atomic<uint32_t> streamed_{0};
  HostStatus status_;
  JobFinished finished_;
};

TEST(JobsAdminTest, ListShowAndCancelQueuedAndRunningJobs) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/m", "small", 5));
  // Real-time pacing on the small preset keeps the long job running (about 100 tokens a second;
  // it would take some 20 s); FIFO keeps queue positions in arrival order.
  DaemonHarness h([&](DaemonConfig& c) {
    c.boards[0].pacing = "realtime";
    c.scheduler_policy = "fifo";
    c.security.audit_log_file = dir.path() + "/audit.log";
  });
  ASSERT_EQ(h.Load(dir.path() + "/m", "m", /*slots=*/1), ErrorCode::kNone);
  const std::string admin_ep = h.daemon().admin_endpoint();

  LongJob a(h.NewJobClient(), Job("team-a", 0, 2000));
  const uint64_t a_id = a.WaitRunning();
  ASSERT_NE(a_id, 0u) << "the long job never streamed";
  // Three more wait behind it: priorities 150 (standard), 0 (batch) and 250 (interactive).
  std::unique_ptr<JobClient> clients[3] = {h.NewJobClient(), h.NewJobClient(), h.NewJobClient()};
  const SubmitJob waiting[3] = {Job("team-b", 150, 4), Job("team-a", 0, 4), Job("team-b", 250, 4)};
  uint64_t id[3];
  for (int i = 0; i < 3; ++i) {
    SubmitOutcome o;
    SubmitJob job = waiting[i];
    if (i == 1) job.ttft_target_ms = 60000;
    ASSERT_TRUE(clients[i]->Submit(job, &o, kTimeoutMs).ok());
    ASSERT_TRUE(o.accepted) << o.rejection.detail;
    id[i] = o.accepted_reply.job_id;
  }
  const uint64_t b_id = id[0], c_id = id[1], d_id = id[2];

  // The default list: the queued jobs by position, then the running one.
  auto admin = h.NewAdminClient();
  JobList list;
  ASSERT_TRUE(IsOk(admin->ListJobs(ListJobs{}, &list, kTimeoutMs)));
  ASSERT_EQ(Ids(list), (std::vector<uint64_t>{b_id, c_id, d_id, a_id}));
  EXPECT_EQ(list.total, 4u);
  EXPECT_FALSE(list.truncated);
  const char* classes[3] = {"standard", "batch", "interactive"};
  for (uint32_t i = 0; i < 3; ++i) {
    const JobSummary& s = list.jobs[i];
    EXPECT_EQ(s.state, JobState::kQueued);
    EXPECT_EQ(s.queue_position, i);
    EXPECT_EQ(s.tenant, waiting[i].tenant);
    EXPECT_EQ(s.priority, waiting[i].priority);
    EXPECT_EQ(s.priority_class, classes[i]);
    EXPECT_EQ(s.model, "m");
    EXPECT_EQ(s.tokens_generated, 0u);
    EXPECT_EQ(s.finish_reason, "");
    JobStatusReply status;  // The job socket reports the same position.
    ASSERT_TRUE(clients[i]->QueryJob(s.job_id, &status, kTimeoutMs).ok());
    EXPECT_EQ(status.queue_position, i);
  }
  EXPECT_EQ(list.jobs[3].state, JobState::kRunning);
  EXPECT_EQ(list.jobs[3].priority_class, "batch");
  EXPECT_GT(list.jobs[3].tokens_generated, 0u);
  EXPECT_GE(list.jobs[3].age_ms, list.jobs[0].age_ms);  // Accepted first.

  // Filters and the limit.
  ASSERT_TRUE(admin->ListJobs(ListJobs{0, "team-b", {}, 0}, &list, kTimeoutMs).ok());
  EXPECT_EQ(Ids(list), (std::vector<uint64_t>{b_id, d_id}));
  ASSERT_TRUE(
      admin->ListJobs(ListJobs{0, "", JobStateFilter::kRunning, 0}, &list, kTimeoutMs).ok());
  EXPECT_EQ(Ids(list), (std::vector<uint64_t>{a_id}));
  ASSERT_TRUE(
      admin->ListJobs(ListJobs{0, "", JobStateFilter::kQueued, 2}, &list, kTimeoutMs).ok());
  EXPECT_EQ(Ids(list), (std::vector<uint64_t>{b_id, c_id}));
  EXPECT_EQ(list.total, 3u);
  EXPECT_TRUE(list.truncated);
  ASSERT_TRUE(
      admin->ListJobs(ListJobs{0, "nobody", JobStateFilter::kAll, 0}, &list, kTimeoutMs).ok());
  EXPECT_TRUE(list.jobs.empty());
  EXPECT_EQ(list.total, 0u);
  // A filter out of range is refused by the daemon, naming the field.
  HostStatus too_many =
      admin->ListJobs(ListJobs{0, "", JobStateFilter::kAll, 10001}, &list, kTimeoutMs);
  ASSERT_EQ(too_many.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(too_many.error().message,
            "INVALID_ARGUMENT: ListJobs.limit: 10001 is above the maximum of 10000");

  // One job in detail: a queued one, and the running one.
  JobDetail detail;
  ASSERT_TRUE(IsOk(admin->ShowJob(c_id, &detail, kTimeoutMs)));
  EXPECT_EQ(detail.summary.job_id, c_id);
  EXPECT_EQ(detail.summary.state, JobState::kQueued);
  EXPECT_EQ(detail.summary.queue_position, 1u);
  EXPECT_EQ(detail.prompt_tokens, 3u);
  EXPECT_EQ(detail.max_tokens, 4u);
  EXPECT_EQ(detail.ttft_target_ms, 60000u);
  EXPECT_FALSE(detail.first_token);
  EXPECT_GT(detail.ttft_ns, 0);  // Waited so far.
  EXPECT_GT(detail.accepted_unix_ms, 0);
  ASSERT_TRUE(admin->ShowJob(a_id, &detail, kTimeoutMs).ok());
  EXPECT_EQ(detail.summary.state, JobState::kRunning);
  EXPECT_TRUE(detail.first_token);
  EXPECT_GT(detail.ttft_ns, 0);
  EXPECT_GE(detail.total_ns, detail.ttft_ns);
  EXPECT_EQ(detail.max_tokens, 2000u);
  HostStatus unknown = admin->ShowJob(12345, &detail, kTimeoutMs);
  ASSERT_EQ(unknown.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(unknown.error().message.rfind("UNKNOWN_JOB: job 12345 is not known", 0), 0u)
      << unknown.error().message;

  // waferctl prints the same list as a table and as JSON.
  std::string out;
  ASSERT_EQ(Ctl(admin_ep, {"jobs"}, dir.path(), &out), 0) << out;
  EXPECT_EQ(out.rfind("JOB ", 0), 0u) << out;
  EXPECT_NE(out.find(std::to_string(c_id) + " "), std::string::npos) << out;
  EXPECT_NE(out.find("interactive"), std::string::npos) << out;
  ASSERT_EQ(Ctl(admin_ep, {"jobs", "--tenant", "team-a", "--state", "all", "--json"},
                dir.path(), &out),
            0)
      << out;
  nlohmann::json j = nlohmann::json::parse(out);
  ASSERT_EQ(j["jobs"].size(), 2u) << out;
  EXPECT_EQ(j["jobs"][0]["job_id"].get<uint64_t>(), c_id);
  EXPECT_EQ(j["jobs"][0]["queue_position"], 1);
  EXPECT_EQ(j["jobs"][1]["job_id"].get<uint64_t>(), a_id);
  EXPECT_EQ(j["jobs"][1]["state"], "running");
  ASSERT_EQ(Ctl(admin_ep, {"jobs", "show", std::to_string(d_id)}, dir.path(), &out), 0) << out;
  EXPECT_NE(out.find("queued (position 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("interactive (priority 250)"), std::string::npos) << out;
  EXPECT_EQ(Ctl(admin_ep, {"jobs", "show", "12345"}, dir.path(), &out), 1);
  EXPECT_NE(out.find("UNKNOWN_JOB: job 12345"), std::string::npos) << out;
  EXPECT_EQ(Ctl(admin_ep, {"jobs", "--state", "done"}, dir.path(), &out), 2) << out;

  // Cancel the queued job in the middle: its client is told, the one behind it moves up.
  OperationResult r;
  ASSERT_TRUE(admin->Operate(CancelJobRequest{0, c_id}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
  EXPECT_EQ(r.detail, "job " + std::to_string(c_id) + " cancelled (was queued)");
  JobFinished f = WaitFinished(*clients[1], c_id);
  EXPECT_EQ(f.reason, FinishReason::kCancelled);
  EXPECT_EQ(f.completion_tokens, 0u);
  ASSERT_TRUE(admin->ListJobs(ListJobs{}, &list, kTimeoutMs).ok());
  EXPECT_EQ(Ids(list), (std::vector<uint64_t>{b_id, d_id, a_id}));
  EXPECT_EQ(list.jobs[1].queue_position, 1u);
  // A finished job is no longer cancellable, and an unknown one never was: exit 1 for both.
  ASSERT_TRUE(admin->Operate(CancelJobRequest{0, c_id}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kUnknownJob);
  EXPECT_EQ(r.detail, "job " + std::to_string(c_id) + " has already finished (cancelled)");
  EXPECT_EQ(Ctl(admin_ep, {"jobs", "cancel", "12345", "--json"}, dir.path(), &out), 1);
  j = nlohmann::json::parse(out);
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_EQ(j["code"], "UNKNOWN_JOB");

  // Cancel the running job through waferctl: its stream ends kCancelled, and B gets the slot.
  ASSERT_TRUE(admin->ShowJob(a_id, &detail, kTimeoutMs).ok());
  ASSERT_EQ(detail.summary.state, JobState::kRunning) << "the long job ended before its cancel";
  std::printf("the long job had streamed %u of 2000 tokens before its cancel\n",
              detail.summary.tokens_generated);
  ASSERT_EQ(Ctl(admin_ep, {"jobs", "cancel", std::to_string(a_id)}, dir.path(), &out), 0) << out;
  EXPECT_EQ(out, "job " + std::to_string(a_id) + " cancelled (was running)\n");
  EXPECT_EQ(a.Join().reason, FinishReason::kCancelled);
  EXPECT_EQ(WaitFinished(*clients[0], b_id).reason, FinishReason::kLength);
  EXPECT_EQ(WaitFinished(*clients[2], d_id).reason, FinishReason::kLength);

  // The finished ones, most recently finished first; a cancelled job shows its reason.
  ASSERT_TRUE(
      admin->ListJobs(ListJobs{0, "", JobStateFilter::kFinished, 0}, &list, kTimeoutMs).ok());
  EXPECT_EQ(Ids(list), (std::vector<uint64_t>{d_id, b_id, a_id, c_id}));
  EXPECT_EQ(list.jobs[2].finish_reason, "cancelled");
  EXPECT_EQ(list.jobs[0].finish_reason, "length");
  EXPECT_EQ(list.jobs[0].tokens_generated, 4u);
  ASSERT_TRUE(admin->ShowJob(c_id, &detail, kTimeoutMs).ok());
  EXPECT_EQ(detail.summary.state, JobState::kFinished);
  EXPECT_EQ(detail.prompt_tokens, 3u);  // From the ending: the prompt itself was let go of.
  EXPECT_FALSE(detail.first_token);
  EXPECT_EQ(detail.ttft_ns, 0);

  // Both cancels are in the audit log: requested, and their outcome.
  const std::string audit = ReadWholeFile(dir.path() + "/audit.log");
  EXPECT_NE(audit.find("event=admin_action who=\"anonymous\" what=\"CancelJob job=" +
                       std::to_string(c_id) + " tag="),
            std::string::npos)
      << audit;
  EXPECT_NE(audit.find("outcome=\"OK: job " + std::to_string(a_id) + " cancelled (was running)\""),
            std::string::npos)
      << audit;
  EXPECT_NE(audit.find("outcome=\"UNKNOWN_JOB: job 12345 is not known\""), std::string::npos)
      << audit;
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text << "\n";
  chmod(path.c_str(), mode);
}

TEST(JobsAdminTest, AViewerListsAndShowsJobsButMayNotCancelThem) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/m", "small", 5));
  Result<net::CurveKeyPair> server = net::GenerateCurveKeyPair();
  Result<net::CurveKeyPair> viewer = net::GenerateCurveKeyPair();
  Result<net::CurveKeyPair> ops = net::GenerateCurveKeyPair();
  Result<net::CurveKeyPair> sched = net::GenerateCurveKeyPair();
  ASSERT_TRUE(server.ok() && viewer.ok() && ops.ok() && sched.ok());
  WriteFile(dir.path() + "/server.key", server->secret_key, 0600);
  WriteFile(dir.path() + "/server.pub", server->public_key, 0644);
  WriteFile(dir.path() + "/viewer.key", viewer->secret_key, 0600);
  DaemonHarness h([&](DaemonConfig& c) {
    c.boards[0].pacing = "realtime";
    c.security.server_secret_key_file = dir.path() + "/server.key";
    c.security.audit_log_file = dir.path() + "/audit.log";
    c.security.clients = {{"sched", sched->public_key, "submitter", "team-a"},
                          {"grafana", viewer->public_key, "viewer", ""},
                          {"ops", ops->public_key, "admin", ""}};
  });
  const std::string admin_ep = h.daemon().admin_endpoint();
  auto connect = [&](const net::CurveKeyPair& keys) {
    return std::move(AdminClient::Connect(admin_ep, ClientKeys{server->public_key,
                                                               keys.public_key, keys.secret_key}))
        .value();
  };
  auto as_ops = connect(*ops);
  LoadModel load;
  load.path = dir.path() + "/m";
  load.name = "m";
  load.slots = 1;
  OperationResult r;
  ASSERT_TRUE(IsOk(as_ops->Operate(load, nullptr, &r, kTimeoutMs)));
  ASSERT_EQ(r.code, ErrorCode::kNone) << r.detail;

  auto job_client = std::move(JobClient::Connect(h.daemon().job_endpoint(),
                                                 ClientKeys{server->public_key,
                                                            sched->public_key, sched->secret_key}))
                        .value();
  LongJob job(std::move(job_client), Job("", 0, 2000));
  const uint64_t id = job.WaitRunning();
  ASSERT_NE(id, 0u);

  auto as_viewer = connect(*viewer);
  JobList list;
  ASSERT_TRUE(IsOk(as_viewer->ListJobs(ListJobs{}, &list, kTimeoutMs)));
  ASSERT_EQ(Ids(list), std::vector<uint64_t>{id});
  EXPECT_EQ(list.jobs[0].tenant, "team-a");  // The submitter key's tenant.
  JobDetail detail;
  ASSERT_TRUE(IsOk(as_viewer->ShowJob(id, &detail, kTimeoutMs)));
  EXPECT_EQ(detail.summary.state, JobState::kRunning);
  ASSERT_TRUE(as_viewer->Operate(CancelJobRequest{0, id}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(r.detail,
            "key 'grafana' is a viewer: it may read status, boards, logs, jobs and health, and change "
            "nothing");
  // waferctl with the viewer's keys: the list works, the cancel is refused (exit 1).
  const std::vector<std::string> keys = {"--server-key", dir.path() + "/server.pub", "--key",
                                         dir.path() + "/viewer.key"};
  std::vector<std::string> args = keys;
  args.insert(args.end(), {"jobs", "--json"});
  std::string out;
  ASSERT_EQ(Ctl(admin_ep, args, dir.path(), &out), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["jobs"][0]["job_id"].get<uint64_t>(), id) << out;
  args = keys;
  args.insert(args.end(), {"jobs", "cancel", std::to_string(id)});
  EXPECT_EQ(Ctl(admin_ep, args, dir.path(), &out), 1) << out;
  EXPECT_NE(out.find("PERMISSION_DENIED"), std::string::npos) << out;
  ASSERT_TRUE(as_viewer->ShowJob(id, &detail, kTimeoutMs).ok());
  EXPECT_EQ(detail.summary.state, JobState::kRunning);  // Nothing changed.
  EXPECT_FALSE(detail.cancel_requested);

  ASSERT_TRUE(as_ops->Operate(CancelJobRequest{0, id}, nullptr, &r, kTimeoutMs).ok());
  EXPECT_EQ(r.code, ErrorCode::kNone) << r.detail;
  EXPECT_EQ(job.Join().reason, FinishReason::kCancelled);

  const std::string audit = ReadWholeFile(dir.path() + "/audit.log");
  const std::string what = "what=\"CancelJob job=" + std::to_string(id) + " tag=";
  EXPECT_NE(audit.find("event=admin_denied who=\"grafana\" " + what), std::string::npos) << audit;
  EXPECT_NE(audit.find("event=admin_action who=\"ops\" " + what), std::string::npos) << audit;
}

}  // namespace
}  // namespace wafer::testing

// CURVE on the job and admin sockets, tried as an attacker on the same host would: plaintext and
// unknown keys get no answer, a submitter cannot reach the admin socket, a viewer reads and
// changes nothing, a submitter's jobs run under its key's tenant and other tenants' jobs do not
// exist for it; a secret key file others can read, and plaintext on a non-loopback address, stop
// the daemon at start. Waits for "no answer" are bounded (kSilenceMs); nothing asserts a timing.
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "common/net/curve.h"
#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"
#include "tests/http_get.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;
constexpr int kSilenceMs = 700;  // How long a refused client waits before the test moves on.

net::CurveKeyPair NewKeys() {
  Result<net::CurveKeyPair> keys = net::GenerateCurveKeyPair();
  EXPECT_TRUE(keys.ok());
  return keys.ok() ? *keys : net::CurveKeyPair{};
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text << "\n";
  chmod(path.c_str(), mode);
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteModel(dir_.path() + "/models/tiny", "tiny", 3));
    server_ = NewKeys();
    WriteFile(dir_.path() + "/server.key", server_.secret_key, 0600);
    WriteFile(dir_.path() + "/metrics.auth", "prom:s3cret", 0600);
    harness_ = std::make_unique<DaemonHarness>([&](DaemonConfig& c) {
      c.security.metrics_auth_file = dir_.path() + "/metrics.auth";
      c.security.server_secret_key_file = dir_.path() + "/server.key";
      c.security.audit_log_file = dir_.path() + "/audit.log";
      c.security.model_roots = {dir_.path() + "/models"};
      c.security.clients = {{"sched-a", a_.public_key, "submitter", "team-a"},
                            {"sched-b", b_.public_key, "submitter", "team-b"},
                            {"grafana", viewer_.public_key, "viewer", ""},
                            {"ops", admin_.public_key, "admin", ""}};
    });
    auto admin = Admin(admin_);
    LoadModel load;
    load.path = dir_.path() + "/models/tiny";
    load.name = "tiny";
    load.slots = 4;
    OperationResult r;
    ASSERT_TRUE(IsOk(admin->Operate(load, nullptr, &r, kTimeoutMs)));
    ASSERT_EQ(r.code, ErrorCode::kNone) << r.detail;
  }

  // SIGHUP, as the config file would now say: the same key file, only sched-a and ops listed.
  void ReloadKeepingOnlySchedAAndOps() {
    harness_->daemon().set_config_source([this]() -> HostResult<DaemonConfig> {
      DaemonConfig config;
      config.security.server_secret_key_file = dir_.path() + "/server.key";
      config.security.clients = {{"sched-a", a_.public_key, "submitter", "team-a"},
                                 {"ops", admin_.public_key, "admin", ""}};
      return config;
    });
    harness_->daemon().RequestReload();
  }

  ClientKeys KeysOf(const net::CurveKeyPair& pair) const {
    return ClientKeys{server_.public_key, pair.public_key, pair.secret_key};
  }
  std::unique_ptr<JobClient> Jobs(const net::CurveKeyPair& pair) {
    return std::move(JobClient::Connect(harness_->daemon().job_endpoint(), KeysOf(pair))).value();
  }
  std::unique_ptr<AdminClient> Admin(const net::CurveKeyPair& pair) {
    return std::move(AdminClient::Connect(harness_->daemon().admin_endpoint(), KeysOf(pair)))
        .value();
  }
  static SubmitJob Job(const std::string& tenant = "") {
    SubmitJob j;
    j.model = "tiny";
    j.prompt_tokens = {1, 2, 3};
    j.max_tokens = 8;
    j.tenant = tenant;
    return j;
  }

  std::string AuditLines() {
    std::ifstream in(dir_.path() + "/audit.log");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  TempDir dir_;
  net::CurveKeyPair server_, a_ = NewKeys(), b_ = NewKeys(), viewer_ = NewKeys(),
                            admin_ = NewKeys(), stranger_ = NewKeys();
  std::unique_ptr<DaemonHarness> harness_;
};

TEST_F(SecurityTest, PlaintextClientsAndUnknownKeysGetNoAnswer) {
  SubmitOutcome outcome;
  auto plain = harness_->NewJobClient();
  EXPECT_EQ(plain->Submit(Job(), &outcome, kSilenceMs).code(), StatusCode::kDeadlineExceeded);
  auto stranger = Jobs(stranger_);
  EXPECT_EQ(stranger->Submit(Job(), &outcome, kSilenceMs).code(), StatusCode::kDeadlineExceeded);
  // A client that trusts the wrong server key never gets through either.
  ClientKeys wrong = KeysOf(a_);
  wrong.server_public_key = stranger_.public_key;
  auto misled =
      std::move(JobClient::Connect(harness_->daemon().job_endpoint(), wrong)).value();
  EXPECT_EQ(misled->Submit(Job(), &outcome, kSilenceMs).code(), StatusCode::kDeadlineExceeded);
  // The same job from a listed key runs.
  JobFinished finished;
  ASSERT_TRUE(Jobs(a_)->Run(Job(), [](const TokenChunk&) {}, &outcome, &finished, kTimeoutMs).ok());
  EXPECT_TRUE(outcome.accepted);
  EXPECT_EQ(finished.completion_tokens, 8u);
  // Every refusal is in the audit log: the plaintext client's (which libzmq drops before any
  // key is seen; it reports a mechanism mismatch, or a broken-off handshake when the client
  // hangs up first) as well as the unknown key's.
  const std::string audit = AuditLines();
  EXPECT_TRUE(audit.find("what=\"job socket\" outcome=\"refused: plaintext or another security "
                         "mechanism on tcp://127.0.0.1:") != std::string::npos ||
              audit.find("what=\"job socket\" outcome=\"refused: a handshake the client broke "
                         "off") != std::string::npos)
      << audit;
  EXPECT_NE(audit.find("event=auth_refused who=\"key " + stranger_.public_key + "\""),
            std::string::npos)
      << audit;
  // A refused client retries about every 100 ms: the log holds one line per refused peer kind
  // and key (within 10 s), the counter every refusal.
  auto lines = [&](const std::string& what) {
    size_t n = 0;
    for (size_t at = audit.find(what); at != std::string::npos; at = audit.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_LE(lines("what=\"job socket\" outcome=\"refused: plaintext"), 1u) << audit;
  EXPECT_LE(lines("what=\"job socket\" outcome=\"refused: a handshake the client broke off"), 1u)
      << audit;
  EXPECT_EQ(lines("who=\"key " + stranger_.public_key + "\""), 1u) << audit;
}

TEST_F(SecurityTest, ASubmitterCannotReachTheAdminSocketAndAViewerChangesNothing) {
  StatusReply status;
  EXPECT_EQ(Admin(a_)->QueryStatus(&status, kSilenceMs).code(), StatusCode::kDeadlineExceeded);
  // The admin socket's keys are no submitters either.
  SubmitOutcome outcome;
  EXPECT_EQ(Jobs(admin_)->Submit(Job(), &outcome, kSilenceMs).code(),
            StatusCode::kDeadlineExceeded);

  auto viewer = Admin(viewer_);
  ASSERT_TRUE(IsOk(viewer->QueryStatus(&status, kTimeoutMs)));
  ASSERT_EQ(status.models.size(), 1u);
  OperationResult r;
  for (const AdminMessage& change : {AdminMessage(UnloadModel{0, "tiny", -1}), AdminMessage(Drain{}),
                                     AdminMessage(ResetBoard{0, 0}),
                                     AdminMessage(DrainBoard{0, 0, true, false})}) {
    ASSERT_TRUE(viewer->Operate(change, nullptr, &r, kTimeoutMs).ok());
    EXPECT_EQ(r.code, ErrorCode::kPermissionDenied) << r.detail;
  }
  EXPECT_NE(r.detail.find("key 'grafana' is a viewer"), std::string::npos) << r.detail;
  ASSERT_TRUE(viewer->QueryStatus(&status, kTimeoutMs).ok());
  EXPECT_EQ(status.models[0].state, ModelState::kReady);  // Nothing changed.
  EXPECT_FALSE(status.draining);

  // Each refusal is in the audit log, beside the admin's load and the key turned away.
  const std::string audit = AuditLines();
  EXPECT_NE(audit.find("event=admin_action who=\"ops\" what=\"LoadModel path="), std::string::npos)
      << audit;
  EXPECT_NE(audit.find("event=admin_denied who=\"grafana\" what=\"UnloadModel name=tiny tag="),
            std::string::npos)
      << audit;
  EXPECT_NE(audit.find("event=auth_refused who=\"key " + a_.public_key + "\" what=\"waferd-admin\""),
            std::string::npos)
      << audit;
}

TEST_F(SecurityTest, AKeyRemovedByAReloadIsRefusedOnItsOpenConnectionAndAnyNewOne) {
  auto b = Jobs(b_);
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE(b->Run(Job(), [](const TokenChunk&) {}, &outcome, &finished, kTimeoutMs).ok());
  ASSERT_TRUE(outcome.accepted);
  // The allowlist without sched-b, as the config file would now say.
  ReloadKeepingOnlySchedAAndOps();
  // The loop takes the reload before the next message it reads on this connection... or a
  // little after: ask until the refusal comes (each answer is a complete exchange).
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    ASSERT_TRUE(b->Submit(Job(), &outcome, kTimeoutMs).ok());
    refused = !outcome.accepted;
  }
  ASSERT_TRUE(refused);
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(outcome.rejection.detail, "key 'sched-b' is no longer allowed");
  EXPECT_EQ(Jobs(b_)->Submit(Job(), &outcome, kSilenceMs).code(), StatusCode::kDeadlineExceeded);
  StatusReply status;
  EXPECT_EQ(Admin(viewer_)->QueryStatus(&status, kSilenceMs).code(),
            StatusCode::kDeadlineExceeded);  // Gone from the list too.
  ASSERT_TRUE(Jobs(a_)->Run(Job(), [](const TokenChunk&) {}, &outcome, &finished, kTimeoutMs).ok());
  EXPECT_TRUE(outcome.accepted);  // Kept keys go on working.
  EXPECT_NE(AuditLines().find("event=reload who=\"-\" what=\"security.clients\" outcome=\"OK: 2 keys\""),
            std::string::npos)
      << AuditLines();
}

TEST_F(SecurityTest, ANewServerKeyIsTakenOnReloadWithoutARestart) {
  SubmitOutcome outcome;
  JobFinished finished;
  ASSERT_TRUE(Jobs(a_)->Run(Job(), [](const TokenChunk&) {}, &outcome, &finished, kTimeoutMs).ok());
  // The operator rotates the server key (a new file content) and sends SIGHUP.
  const net::CurveKeyPair old_server = server_;
  server_ = NewKeys();
  WriteFile(dir_.path() + "/server.key", server_.secret_key, 0600);
  ReloadKeepingOnlySchedAAndOps();
  // Clients that know the new public key get in (once the loop has taken the reload)...
  bool in = false;
  for (int i = 0; i < 50 && !in; ++i) {
    in = Jobs(a_)->Submit(Job(), &outcome, kSilenceMs).ok() && outcome.accepted;
  }
  EXPECT_TRUE(in);
  StatusReply status;
  EXPECT_TRUE(Admin(admin_)->QueryStatus(&status, kTimeoutMs).ok());
  // ...and those that only know the old one no longer do, on either socket.
  server_ = old_server;
  EXPECT_EQ(Jobs(a_)->Submit(Job(), &outcome, kSilenceMs).code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Admin(admin_)->QueryStatus(&status, kSilenceMs).code(),
            StatusCode::kDeadlineExceeded);
  EXPECT_NE(AuditLines().find("what=\"security.server_secret_key_file\" outcome=\"OK: sockets "
                              "rebound"),
            std::string::npos)
      << AuditLines();
}

TEST_F(SecurityTest, MetricsAskForTheirUserAndPassword) {
  int status = 0;
  HttpGet(harness_->daemon().metrics_port(), "/metrics", &status);
  EXPECT_EQ(status, 401);
  HttpGet(harness_->daemon().metrics_port(), "/metrics", &status,
          "Basic cHJvbTp3cm9uZw==");  // prom:wrong
  EXPECT_EQ(status, 401);
  const std::string body = HttpGet(harness_->daemon().metrics_port(), "/metrics", &status,
                                   "Basic cHJvbTpzM2NyZXQ=");  // prom:s3cret
  EXPECT_EQ(status, 200);
  EXPECT_NE(body.find("wafer_audit_events_total{event=\"admin_action\"}"), std::string::npos);
}

TEST_F(SecurityTest, AnAdminLoadsOnlyUnderTheModelRoots) {
  auto admin = Admin(admin_);
  OperationResult r;
  for (const std::string& path :
       {std::string("/etc"), dir_.path() + "/models/../audit.log", dir_.path()}) {
    LoadModel load;
    load.path = path;
    load.name = "x";
    ASSERT_TRUE(admin->Operate(load, nullptr, &r, kTimeoutMs).ok());
    EXPECT_EQ(r.code, ErrorCode::kPermissionDenied) << path << ": " << r.detail;
  }
  EXPECT_EQ(r.detail, "path " + dir_.path() + " is not under a configured model root");
}

TEST_F(SecurityTest, JobsRunUnderTheKeysTenantAndOtherTenantsJobsDoNotExist) {
  auto a = Jobs(a_);
  SubmitOutcome outcome;
  ASSERT_TRUE(a->Submit(Job("team-b"), &outcome, kTimeoutMs).ok());  // Forged tenant.
  ASSERT_FALSE(outcome.accepted);
  EXPECT_EQ(outcome.rejection.code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(outcome.rejection.detail, "key 'sched-a' submits as tenant 'team-a', not 'team-b'");

  JobFinished finished;
  SubmitJob job = Job("team-a");  // Naming its own tenant is fine.
  job.max_tokens = 1000;
  job.idempotency_key = "k1";
  ASSERT_TRUE(a->Submit(job, &outcome, kTimeoutMs).ok());
  ASSERT_TRUE(outcome.accepted) << outcome.rejection.detail;
  const uint64_t id = outcome.accepted_reply.job_id;

  auto b = Jobs(b_);
  JobStatusReply status;
  ASSERT_TRUE(b->QueryJob(id, &status, kTimeoutMs).ok());
  EXPECT_EQ(status.state, JobState::kUnknown);
  CancelResult cancel;
  ASSERT_TRUE(b->Cancel(id, &cancel, kTimeoutMs).ok());
  EXPECT_EQ(cancel.code, ErrorCode::kUnknownJob);
  ASSERT_TRUE(b->Send(ResumeStream{id, 0}).ok());
  JobMessage reply;
  ASSERT_TRUE(b->Receive(&reply, kTimeoutMs).ok());
  ASSERT_TRUE(std::holds_alternative<ErrorReply>(reply));
  EXPECT_EQ(std::get<ErrorReply>(reply).code, ErrorCode::kUnknownJob);
  // The same idempotency key under another tenant is another job.
  job.tenant = "";
  ASSERT_TRUE(b->Submit(job, &outcome, kTimeoutMs).ok());
  ASSERT_TRUE(outcome.accepted);
  EXPECT_NE(outcome.accepted_reply.job_id, id);
  EXPECT_FALSE(outcome.accepted_reply.duplicate);

  // A's own view: its job is there and runs to the end, untouched by B.
  ASSERT_TRUE(a->QueryJob(id, &status, kTimeoutMs).ok());
  EXPECT_NE(status.state, JobState::kUnknown);
}

TEST(SecurityStartTest, AReadableSecretKeyFileAndPlaintextBeyondLoopbackStopTheDaemon) {
  TempDir dir;
  const std::string key_file = dir.path() + "/server.key";
  WriteFile(key_file, NewKeys().secret_key, 0644);
  zmq::context_t context(1);
  // Creates a daemon from `config` and stops it again: the Error (code OK if it started).
  auto start = [&](const DaemonConfig& config) {
    HostResult<std::unique_ptr<Daemon>> daemon = Daemon::Create(
        context, config, SystemClock::Get(), ZmqBoardLinkFactory(context, SystemClock::Get()));
    return daemon.ok() ? Error{StatusCode::kOk, {}} : std::move(daemon).error();
  };
  DaemonConfig config;
  config.job_endpoint = "tcp://127.0.0.1:*";
  config.admin_endpoint = "ipc://" + dir.path() + "/admin.sock";
  config.metrics_address = "";
  config.boards[0].timeout_ms = 100;  // No board listens: its worker gives up quickly.
  config.store.path = dir.path() + "/jobs.db";
  config.security.server_secret_key_file = key_file;
  Error started = start(config);
  std::string detail = started.message;
  EXPECT_EQ(started.code, StatusCode::kInvalidArgument);
  EXPECT_NE(detail.find(key_file), std::string::npos) << detail;
  EXPECT_NE(detail.find("chmod 600"), std::string::npos) << detail;

  config.security = SecurityConfig{};
  config.job_endpoint = "tcp://0.0.0.0:*";
  started = start(config);
  detail = started.message;
  EXPECT_EQ(started.code, StatusCode::kInvalidArgument);
  EXPECT_NE(detail.find("tcp://0.0.0.0:* is reachable from other hosts"), std::string::npos)
      << detail;
  config.security.insecure = true;  // Said explicitly: it starts.
  started = start(config);
  EXPECT_EQ(started.code, StatusCode::kOk) << started.ToString();
}

// Daemon::Create's refusal keeps the bind's own words: which socket, which endpoint and why.
TEST(DaemonStartTest, AnEndpointInUseIsUnavailableNamingItAndWhy) {
  TempDir dir;
  zmq::context_t context(1);
  zmq::socket_t squatter(context, zmq::socket_type::router);
  squatter.set(zmq::sockopt::linger, 0);
  squatter.bind("tcp://127.0.0.1:*");
  const std::string taken = squatter.get(zmq::sockopt::last_endpoint);
  DaemonConfig config;
  config.job_endpoint = taken;
  config.admin_endpoint = "ipc://" + dir.path() + "/admin.sock";
  config.metrics_address = "";
  config.boards[0].timeout_ms = 100;  // No board listens: its worker gives up quickly.
  config.store.path = "memory";
  HostResult<std::unique_ptr<Daemon>> daemon = Daemon::Create(
      context, config, SystemClock::Get(), ZmqBoardLinkFactory(context, SystemClock::Get()));
  ASSERT_FALSE(daemon.ok());
  EXPECT_EQ(daemon.error().code, StatusCode::kUnavailable) << daemon.error().ToString();
  const std::string& message = daemon.error().message;
  EXPECT_NE(message.find("cannot bind the job endpoint"), std::string::npos) << message;
  EXPECT_NE(message.find(taken), std::string::npos) << message;
  EXPECT_NE(message.find("in use"), std::string::npos) << message;
}

}  // namespace
}  // namespace wafer::testing

// The cluster scheduler told: a real one-node Slurm (munged, slurmctld, slurmd from Debian's
// packages) on loopback, every config, key, state, spool, pid, log and socket file inside the
// test's own directory, beside a real waferd with two simulated boards. The node takes a job
// asking for a wafer (--gres=wafer:1). An uncorrectable ECC error quarantines board 1 (no reset
// allowed); scripts/slurm-health-check drains the node with the incident's code as the reason;
// once an operator clears the incident the script resumes the node. It never resumes a node an
// administrator drained, and a daemon that does not answer drains the node too. The second test
// leaves the running of the script to slurmd (HealthCheckProgram), as deployed.
//
// Bounded: every wait polls for at most 20 s, every Slurm client runs under timeout(1); each
// test takes about 10 s. Every process a test starts is stopped by PID (SIGTERM, then SIGKILL)
// and reaped, also when an assertion fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "tests/daemon_harness.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 30000;
const std::string kBin = WAFER_BIN_DIR;
const std::string kScript = std::string(WAFER_SOURCE_DIR) + "/scripts/slurm-health-check";
const std::string kNode = "wafernode1";  // slurmd -N: independent of this host's name.

// The full path of `name` on PATH or in the sbin directories (where Debian puts the daemons);
// "" when absent.
std::string FindProgram(const std::string& name) {
  std::string dirs = std::string(getenv("PATH") ? getenv("PATH") : "") + ":/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string ShortHostName() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  std::string s = name;
  return s.substr(0, s.find('.'));
}

// The processes this test started, stopped by PID in reverse order when it goes out of scope.
class Processes {
 public:
  ~Processes() {
    for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) Stop(*it);
  }
  pid_t Start(const std::vector<std::string>& argv, const std::string& log) {
    const pid_t pid = SpawnProgram(argv, log);
    if (pid > 0) pids_.push_back(pid);
    return pid;
  }
  // True while `pid` has not exited (reaps it if it has).
  static bool Alive(pid_t pid) {
    int status = 0;
    return waitpid(pid, &status, WNOHANG) == 0;
  }

 private:
  static void Stop(pid_t pid) {
    kill(pid, SIGTERM);
    for (int i = 0; i < 100; ++i) {  // 5 s, then SIGKILL.
      int status = 0;
      const pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid || r < 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
  }
  std::vector<pid_t> pids_;
};

class SlurmHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* p : {"munged", "munge", "slurmctld", "slurmd", "scontrol", "sinfo", "srun"}) {
      if (FindProgram(p).empty()) {
        GTEST_SKIP() << p << " is not installed (scripts/install-deps installs slurm-wlm and "
                     << "munge); skipping the Slurm integration test";
      }
    }
    if (geteuid() != 0) {
      GTEST_SKIP() << "slurmd must run as root to launch jobs; skipping the Slurm test";
    }
    ASSERT_FALSE(FindProgram("jq").empty()) << "scripts/slurm-health-check needs jq";
    dir_ = dir_holder_.path();
    // munged wants the socket's directory searchable by all; the key private to its owner.
    chmod(dir_.c_str(), 0711);
    StartMunge();
  }

  void StartMunge() {
    const std::string key = dir_ + "/munge.key";
    {
      std::ofstream out(key, std::ios::binary);
      std::ifstream random("/dev/urandom", std::ios::binary);
      char buf[1024];
      random.read(buf, sizeof(buf));
      out.write(buf, sizeof(buf));
    }
    chmod(key.c_str(), 0400);
    munge_socket_ = dir_ + "/munge.socket";
    // --force: munged as root (no munge user, no /run/munge), -F: in the foreground, so the
    // PID is munged's own.
    munged_ = procs_.Start({FindProgram("munged"), "-F", "--force", "--socket=" + munge_socket_,
                            "--key-file=" + key, "--pid-file=" + dir_ + "/munged.pid",
                            "--log-file=" + dir_ + "/munged.log",
                            "--seed-file=" + dir_ + "/munged.seed"},
                           dir_ + "/munged.out");
    ASSERT_GT(munged_, 0);
    for (int i = 0; i < 400 && access(munge_socket_.c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_EQ(access(munge_socket_.c_str(), F_OK), 0) << ReadWholeFile(dir_ + "/munged.out");
  }

  // Writes slurm.conf (with `extra` lines) and gres.conf, starts slurmctld and slurmd, and waits
  // for the node to be idle.
  void StartSlurm(const std::string& extra = "") {
    for (const char* d : {"/state", "/spool", "/log"}) mkdir((dir_ + d).c_str(), 0755);
    conf_ = dir_ + "/slurm.conf";
    const int ctld_port = FreePort(), slurmd_port = FreePort();
    ASSERT_GT(ctld_port, 0);
    ASSERT_GT(slurmd_port, 0);
    ASSERT_NE(ctld_port, slurmd_port);
    std::ofstream(dir_ + "/gres.conf") << "Name=wafer Count=1\n";
    std::ofstream conf(conf_);
    conf << "ClusterName=wafertest\n"
         << "SlurmctldHost=" << ShortHostName() << "(127.0.0.1)\n"
         << "SlurmctldPort=" << ctld_port << "\nSlurmdPort=" << slurmd_port << "\n"
         << "SlurmUser=root\nSlurmdUser=root\n"
         << "AuthType=auth/munge\nCredType=cred/munge\n"
         << "AuthInfo=socket=" << munge_socket_ << "\n"
         << "StateSaveLocation=" << dir_ << "/state\nSlurmdSpoolDir=" << dir_ << "/spool\n"
         << "SlurmctldPidFile=" << dir_ << "/slurmctld.pid\n"
         << "SlurmdPidFile=" << dir_ << "/slurmd.pid\n"
         << "SlurmctldLogFile=" << dir_ << "/log/slurmctld.log\n"
         << "SlurmdLogFile=" << dir_ << "/log/slurmd.log\n"
         << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
         << "JobAcctGatherType=jobacct_gather/none\n"
         << "AccountingStorageType=accounting_storage/none\n"
         << "SelectType=select/cons_tres\nMpiDefault=none\nReturnToService=2\n"
         << "MailProg=/bin/true\n" << extra
         << "GresTypes=wafer\n"
         << "NodeName=" << kNode << " NodeAddr=127.0.0.1 CPUs=2 Gres=wafer:1 State=UNKNOWN\n"
         << "PartitionName=wafers Nodes=" << kNode << " Default=YES MaxTime=INFINITE State=UP\n";
    conf.close();
    // -D: foreground (the PID is the daemon's); -i: ignore any saved state.
    ctld_ = procs_.Start({FindProgram("slurmctld"), "-D", "-i", "-f", conf_},
                         dir_ + "/log/slurmctld.out");
    ASSERT_GT(ctld_, 0);
    slurmd_ = procs_.Start({FindProgram("slurmd"), "-D", "-N", kNode, "-f", conf_},
                           dir_ + "/log/slurmd.out");
    ASSERT_GT(slurmd_, 0);
    ASSERT_TRUE(WaitForNode("idle", "")) << Logs();
  }

  std::string Logs() {
    return "\n--- slurmctld:\n" + ReadWholeFile(dir_ + "/log/slurmctld.out") + "\n--- slurmd:\n" +
           ReadWholeFile(dir_ + "/log/slurmd.out") + "\n--- last sinfo: " + last_sinfo_;
  }

  // Runs a Slurm client (or the health check) with SLURM_CONF set, under timeout(1); returns
  // its exit status; its output in `out` when given.
  int Slurm(std::vector<std::string> argv, std::string* out = nullptr,
            std::vector<std::string> env = {}) {
    std::vector<std::string> full = {"env", "SLURM_CONF=" + conf_};
    full.insert(full.end(), env.begin(), env.end());
    full.insert(full.end(), {"timeout", "20"});
    full.insert(full.end(), argv.begin(), argv.end());
    const int code = RunProgram(full, dir_ + "/client.out");
    if (out) *out = ReadWholeFile(dir_ + "/client.out");
    return code;
  }

  // "STATE|REASON" of the node as sinfo prints it (state in its long lower-case form: idle,
  // drained, draining, ...).
  std::string NodeLine() {
    std::string out;
    Slurm({"sinfo", "-h", "-N", "-n", kNode, "-o", "%T|%E"}, &out);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    if (out != last_sinfo_) std::printf("sinfo: %s %s\n", kNode.c_str(), out.c_str());
    last_sinfo_ = out;
    return out;
  }

  // Polls sinfo (bounded: 20 s) until the node is in `state` with a reason containing `reason`.
  bool WaitForNode(const std::string& state, const std::string& reason) {
    for (int i = 0; i < 100; ++i) {
      const std::string line = NodeLine();
      const size_t bar = line.find('|');
      if (bar != std::string::npos && line.substr(0, bar) == state &&
          line.find(reason, bar) != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return false;
  }

  // Runs scripts/slurm-health-check against `endpoint`, as slurmd's HealthCheckProgram would.
  int HealthCheck(const std::string& endpoint, std::string* out) {
    return Slurm({kScript}, out,
                 {"WAFERCTL=" + kBin + "/waferctl", "WAFERD_ADMIN_ENDPOINT=" + endpoint,
                  "WAFERD_TIMEOUT_MS=2000", "WAFERD_SLURM_NODENAME=" + kNode});
  }

  TempDir dir_holder_;
  std::string dir_;
  std::string conf_;
  std::string munge_socket_;
  std::string last_sinfo_;
  Processes procs_;
  pid_t munged_ = -1, ctld_ = -1, slurmd_ = -1;
};

// Two boards; with no reset allowed (max_recoveries 0) a FAIL quarantines the board at once and
// it stays drained until cleared.
std::unique_ptr<DaemonHarness> TwoBoards() {
  return std::make_unique<DaemonHarness>([](DaemonConfig& c) {
    c.boards.resize(2);
    for (size_t i = 0; i < c.boards.size(); ++i) {
      c.boards[i].endpoint = "inproc://slurm-board" + std::to_string(i);
    }
    c.health.window_s = 2;
    c.health.recovery_backoff_ms = 100;
    c.health.return_after_s = 1;
    c.health.max_recoveries = 0;
  });
}

// Injects an uncorrectable ECC error on board 1 (row 100: a PE no model uses) and waits (bounded:
// about 20 s) for its incident to quarantine the board; returns the incident's id (0: none).
uint64_t QuarantineBoard1(DaemonHarness& h) {
  OperationResult r;
  EXPECT_TRUE(h.NewAdminClient()
                  ->Operate(InjectFault{0, 1, "ecc_uncorrectable", 0, 100, 0, 0}, nullptr, &r,
                            kTimeoutMs)
                  .ok());
  EXPECT_EQ(r.code, ErrorCode::kNone);
  HealthReply health;
  for (int i = 0; i < 1000; ++i) {
    if (!h.NewAdminClient()->QueryHealth(-1, &health, kTimeoutMs).ok()) return 0;
    if (health.boards[1].open && health.boards[1].open->state == "quarantined") {
      return health.boards[1].open->id;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

// Waits (bounded: about 20 s) until every rule of board 1 passes again: the error has left the
// rule's window (window_s, 2 s). Before that the rule still FAILs, and clearing the incident
// would open a new one at once. Then clears it with waferctl, as an operator would.
bool ClearBoard1(DaemonHarness& h, const std::string& dir) {
  bool rules_pass = false;
  for (int i = 0; i < 1000 && !rules_pass; ++i) {
    HealthReply health;
    if (!h.NewAdminClient()->QueryHealth(-1, &health, kTimeoutMs).ok()) return false;
    rules_pass = true;
    for (const HealthRuleState& rule : health.boards[1].rules) {
      rules_pass = rules_pass && rule.level == WireHealthLevel::kPass;
    }
    if (!rules_pass) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const int code = RunProgram({kBin + "/waferctl", "--admin-endpoint",
                               h.daemon().admin_endpoint(), "health", "--clear", "1"},
                              dir + "/ctl.out");
  EXPECT_EQ(code, 0) << ReadWholeFile(dir + "/ctl.out");
  return rules_pass && code == 0;
}

TEST_F(SlurmHealthTest, AnIncidentDrainsTheNodeAndItsClearResumesItNeverAnAdminsDrain) {
  auto daemon = TwoBoards();
  DaemonHarness& h = *daemon;
  const std::string endpoint = h.daemon().admin_endpoint();
  StartSlurm();
  if (HasFatalFailure()) return;
  std::string out;

  // Healthy: the script leaves the idle node alone; a job asking for a wafer runs, one asking
  // for two (the node has one) is refused.
  EXPECT_EQ(HealthCheck(endpoint, &out), 0) << out;
  EXPECT_EQ(NodeLine(), "idle|none");
  EXPECT_EQ(Slurm({"srun", "--gres=wafer:1", "true"}, &out), 0) << out << Logs();
  EXPECT_NE(Slurm({"srun", "--gres=wafer:2", "true"}, &out), 0) << out;
  EXPECT_NE(out.find("Requested node configuration is not available"), std::string::npos) << out;
  ASSERT_TRUE(WaitForNode("idle", "none")) << Logs();

  // An uncorrectable ECC error quarantines board 1; the check drains the node.
  const uint64_t incident = QuarantineBoard1(h);
  ASSERT_NE(incident, 0u);
  const std::string reason =
      "waferd: ECC_UNCORRECTABLE board 1 (incident " + std::to_string(incident) + ")";

  EXPECT_EQ(HealthCheck(endpoint, &out), 0) << out;
  EXPECT_NE(out.find("drained " + kNode), std::string::npos) << out;
  EXPECT_EQ(NodeLine(), "drained|" + reason) << Logs();
  std::string show;
  EXPECT_EQ(Slurm({"scontrol", "show", "node", kNode}, &show), 0);
  EXPECT_NE(show.find("DRAIN"), std::string::npos) << show;
  EXPECT_NE(show.find("Reason=" + reason), std::string::npos) << show;
  // Run again: nothing to do, the node stays drained with the same reason.
  EXPECT_EQ(HealthCheck(endpoint, &out), 0) << out;
  EXPECT_EQ(out, "");
  EXPECT_EQ(NodeLine(), "drained|" + reason);

  // The operator clears the incident: the next check resumes the node.
  ASSERT_TRUE(ClearBoard1(h, dir_));
  EXPECT_EQ(HealthCheck(endpoint, &out), 0) << out;
  EXPECT_NE(out.find("resumed " + kNode), std::string::npos) << out;
  EXPECT_TRUE(WaitForNode("idle", "none")) << Logs();
  EXPECT_EQ(Slurm({"srun", "--gres=wafer:1", "true"}, &out), 0) << out;

  // An administrator's drain is never lifted by the script, however healthy the boards.
  ASSERT_EQ(Slurm({"scontrol", "update", "nodename=" + kNode, "state=drain",
                   "reason=admin: cooling maintenance"},
                  &out),
            0)
      << out;
  ASSERT_TRUE(WaitForNode("drained", "admin: cooling maintenance")) << Logs();
  EXPECT_EQ(HealthCheck(endpoint, &out), 0) << out;
  EXPECT_EQ(NodeLine(), "drained|admin: cooling maintenance");
  ASSERT_EQ(Slurm({"scontrol", "update", "nodename=" + kNode, "state=resume"}, &out), 0) << out;
  ASSERT_TRUE(WaitForNode("idle", "none")) << Logs();

  // A daemon that does not answer (nothing listens on this port) drains the node; once it
  // answers again with no incident, the node resumes.
  const std::string nowhere = "tcp://127.0.0.1:" + std::to_string(FreePort());
  EXPECT_EQ(HealthCheck(nowhere, &out), 0) << out;
  EXPECT_EQ(NodeLine(), "drained|waferd: unreachable (" + nowhere + ")") << Logs();
  EXPECT_EQ(HealthCheck(endpoint, &out), 0) << out;
  EXPECT_TRUE(WaitForNode("idle", "none")) << Logs();

  // The Slurm daemons stayed up throughout.
  EXPECT_TRUE(Processes::Alive(ctld_)) << Logs();
  EXPECT_TRUE(Processes::Alive(slurmd_)) << Logs();
  EXPECT_TRUE(Processes::Alive(munged_));
}

// The sanitizer options of this run as `export` lines: slurmd gives its HealthCheckProgram an
// empty environment, and a sanitizer build's waferctl without its suppressions reports the
// uninstrumented libraries' accesses and exits 66 (TSan's exit code).
std::string SanitizerExports() {
  std::string out;
  for (const char* name : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"}) {
    if (const char* value = std::getenv(name)) out += "export " + std::string(name) + "='" + value + "'\n";
  }
  return out;
}

// As deployed: slurmd itself runs the check every second (HealthCheckProgram), through a
// wrapper that sets what slurmd's empty environment lacks (SLURM_CONF, waferctl, the endpoint);
// the node name comes from slurmd (SLURMD_NODENAME), PATH from the script's default.
TEST_F(SlurmHealthTest, SlurmdRunsTheCheckAndDrainsAndResumesTheNodeByItself) {
  auto daemon = TwoBoards();
  const std::string wrapper = dir_ + "/waferd-health-check";
  std::ofstream(wrapper) << "#!/bin/sh\n"
                         << "export SLURM_CONF='" << dir_ << "/slurm.conf'\n"
                         << "export WAFERCTL='" << kBin << "/waferctl'\n"
                         << "export WAFERD_ADMIN_ENDPOINT='" << daemon->daemon().admin_endpoint()
                         << "'\nexport WAFERD_TIMEOUT_MS=2000\n"
                         << SanitizerExports()
                         << "exec '" << kScript << "' >>'" << dir_ << "/health-check.log' 2>&1\n";
  chmod(wrapper.c_str(), 0755);
  StartSlurm("HealthCheckProgram=" + wrapper +
             "\nHealthCheckInterval=1\nHealthCheckNodeState=ANY\n");
  if (HasFatalFailure()) return;

  const uint64_t incident = QuarantineBoard1(*daemon);
  ASSERT_NE(incident, 0u);
  EXPECT_TRUE(WaitForNode("drained", "waferd: ECC_UNCORRECTABLE board 1 (incident " +
                                         std::to_string(incident) + ")"))
      << Logs() << ReadWholeFile(dir_ + "/health-check.log");
  ASSERT_TRUE(ClearBoard1(*daemon, dir_));
  EXPECT_TRUE(WaitForNode("idle", "none")) << Logs() << ReadWholeFile(dir_ + "/health-check.log");
  const std::string log = ReadWholeFile(dir_ + "/health-check.log");
  EXPECT_NE(log.find("drained " + kNode), std::string::npos) << log;
  EXPECT_NE(log.find("resumed " + kNode), std::string::npos) << log;
}

}  // namespace
}  // namespace wafer::testing

#include "tests/daemon_harness.h"
#include "tests/host_result_assertions.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace wafer::testing {

pid_t SpawnProgram(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int RunProgram(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = SpawnProgram(argv, log);
  if (pid < 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/waferd-test-XXXXXX";
  path_ = mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool WriteModel(const std::string& dir, const std::string& preset, uint64_t seed,
                const std::string& extra_flag) {
  std::vector<std::string> argv = {WAFER_BIN_DIR "/wafer-mkmodel", "--out", dir, "--preset",
                                   preset, "--seed", std::to_string(seed)};
  if (!extra_flag.empty()) argv.push_back(extra_flag);
  return RunProgram(argv) == 0;
}

GreedyStream::GreedyStream(DaemonHarness& h, const std::string& model, uint32_t max_tokens,
                           int timeout_ms)
    : client(h.NewJobClient()) {
  thread = std::thread([this, model, max_tokens, timeout_ms] {
    EXPECT_TRUE(IsOk(client
                    ->Run(GreedyJob(model, max_tokens),
                          [&](const host::TokenChunk& c) {
                            tokens.insert(tokens.end(), c.tokens.begin(), c.tokens.end());
                            streamed += static_cast<uint32_t>(c.tokens.size());
                          },
                          &outcome, &finished, timeout_ms)
                    ));
  });
}

GreedyStream::~GreedyStream() {
  if (thread.joinable()) thread.join();
}

std::vector<uint32_t> GreedyReference(DaemonHarness& h, const std::string& model,
                                      uint32_t max_tokens, int timeout_ms) {
  GreedyStream undisturbed(h, model, max_tokens, timeout_ms);
  undisturbed.thread.join();
  return undisturbed.tokens;
}

host::SubmitJob GreedyJob(const std::string& model, uint32_t max_tokens) {
  host::SubmitJob job;
  job.model = model;
  job.prompt_tokens = {5, 6, 7};
  job.max_tokens = max_tokens;
  job.sampling.temperature = 0;
  return job;
}

bool WriteShapeOnlyModel(const std::string& dir) {
  TempDir full;
  if (!WriteModel(full.path(), "tiny", 1)) return false;
  std::filesystem::create_directories(dir);
  std::error_code ec;
  std::filesystem::copy_file(full.path() + "/config.json", dir + "/config.json", ec);
  return !ec;
}

DaemonHarness::DaemonHarness(
    const std::function<void(host::DaemonConfig&)>& tweak,
    const std::function<host::BoardLinkFactory(host::BoardLinkFactory)>& wrap_links) {
  config_.job_endpoint = "tcp://127.0.0.1:*";
  config_.admin_endpoint = "tcp://127.0.0.1:*";
  config_.metrics_address = "127.0.0.1:0";
  config_.boards = {host::BoardConfig{}};
  config_.boards[0].endpoint = "inproc://test-board0";
  config_.drain_timeout_ms = 5000;
  config_.store.path = store_dir_.path() + "/jobs.db";
  if (tweak) tweak(config_);
  // One embedded board per configured inproc:// board (a tweak may configure several).
  for (const host::BoardConfig& b : config_.boards) {
    if (!b.embedded()) continue;
    sim::BoardOptions options;
    options.preset = b.preset;  // "mini" unless a tweak names another (a name or a .yaml path).
    options.realtime = b.pacing == "realtime";
    auto board = sim::StartEmbeddedBoard(context_, b.endpoint, options);
    if (!board.ok()) {
      ADD_FAILURE() << "embedded board " << b.endpoint << ": " << board.error().message;
      return;
    }
    boards_.push_back(std::move(board).value());
  }
  host::BoardLinkFactory links = host::ZmqBoardLinkFactory(context_, SystemClock::Get());
  if (wrap_links) links = wrap_links(std::move(links));
  HostResult<std::unique_ptr<host::Daemon>> daemon =
      host::Daemon::Create(context_, config_, SystemClock::Get(), std::move(links));
  if (!daemon.ok()) {
    ADD_FAILURE() << "daemon: " << daemon.error().message;
    return;
  }
  daemon_ = std::move(daemon).value();
  loop_ = std::thread([this] { daemon_->Run(); });
}

DaemonHarness::~DaemonHarness() {
  Stop();
  daemon_.reset();
  boards_.clear();
}

void DaemonHarness::Stop() {
  if (daemon_ && loop_.joinable()) {
    daemon_->RequestStop();
    loop_.join();
  }
}

host::ErrorCode DaemonHarness::Load(const std::string& dir, const std::string& name,
                                    uint32_t slots) {
  auto admin = NewAdminClient();
  host::LoadModel load;
  load.path = dir;
  load.name = name;
  load.slots = slots;
  host::OperationResult result;
  HostStatus s = admin->Operate(load, nullptr, &result, 30000);
  if (!s.ok()) {
    ADD_FAILURE() << "load: " << s.error().message;
    return host::ErrorCode::kInternal;
  }
  return result.code;
}

std::unique_ptr<host::JobClient> DaemonHarness::NewJobClient() {
  auto c = host::JobClient::Connect(daemon_->job_endpoint());
  EXPECT_TRUE(c.ok());
  return std::move(c).value();
}

std::unique_ptr<host::AdminClient> DaemonHarness::NewAdminClient() {
  auto c = host::AdminClient::Connect(daemon_->admin_endpoint());
  EXPECT_TRUE(c.ok());
  return std::move(c).value();
}

void RunJobsThenARejection(DaemonHarness& h, const std::string& model, int n,
                           uint32_t max_tokens) {
  auto client = h.NewJobClient();
  for (int i = 0; i < n; ++i) {
    host::SubmitJob j;
    j.model = model;
    j.prompt_text = "job " + std::to_string(i);
    j.max_tokens = max_tokens;
    host::SubmitOutcome o;
    host::JobFinished f;
    ASSERT_TRUE(client->Run(j, [](const host::TokenChunk&) {}, &o, &f, 30000).ok());
    ASSERT_TRUE(o.accepted);
  }
  host::SubmitJob bad;
  bad.model = "no-such-model";
  bad.prompt_text = "x";
  bad.max_tokens = 1;
  host::SubmitOutcome o;
  ASSERT_TRUE(client->Submit(bad, &o, 30000).ok());
  ASSERT_FALSE(o.accepted);
}

}  // namespace wafer::testing

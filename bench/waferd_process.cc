#include "bench/waferd_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "host/client/wafer_client.h"
#include "tests/http_get.h"

namespace wafer::bench {
namespace {

// How long waferd may take to answer its first status query.
constexpr int kStartupQueries = 120;  // x 250 ms.

}  // namespace

HostResult<std::unique_ptr<WaferdProcess>> WaferdProcess::Start(const WaferdOptions& options) {
  std::unique_ptr<WaferdProcess> process(new WaferdProcess(options.dir));
  WAFER_HOST_RETURN_IF_ERROR(process->Launch(options));
  return process;
}

HostStatus WaferdProcess::Launch(const WaferdOptions& o) {
  job_ep_ = "tcp://127.0.0.1:" + std::to_string(testing::FreeLoopbackPort());
  admin_ep_ = "tcp://127.0.0.1:" + std::to_string(testing::FreeLoopbackPort());
  std::ofstream(o.dir + "/config.json") << o.shape;
  {
    std::ofstream yaml(o.dir + "/waferd.yaml");
    yaml << "job_endpoint: " << job_ep_ << "\nadmin_endpoint: " << admin_ep_
         << "\nmetrics_address: \"\"\nstore: {path: " << o.store << "}\n"
         << o.extra_yaml << "scheduler:\n"
         << o.scheduler_yaml << "boards:\n";
    if (!o.board_endpoint.empty()) {
      yaml << "  - endpoint: " << o.board_endpoint << "\n";
    } else {
      for (uint32_t b = 0; b < o.boards; ++b) {
        yaml << "  - endpoint: inproc://board" << b << "\n    preset: wse3\n    pacing: "
             << o.pacing << "\n";
      }
    }
  }
  pid_ = fork();
  if (pid_ == 0) {
    FILE* log = std::fopen((o.dir + "/waferd.log").c_str(), "w");
    if (log != nullptr) dup2(fileno(log), 2);
    std::string bin = o.bin_dir + "/waferd", cfg = o.dir + "/waferd.yaml";
    execl(bin.c_str(), bin.c_str(), "--config", cfg.c_str(), nullptr);
    _exit(127);
  }
  auto admin = host::AdminClient::Connect(admin_ep_);
  if (!admin.ok()) {
    return Error{StatusCode::kUnavailable, "cannot make an admin socket: " + admin.error().message};
  }
  // Wait until waferd answers, or has exited (a refused config).
  bool up = false;
  for (int i = 0; i < kStartupQueries && !up; ++i) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        return Error{StatusCode::kNotFound, "could not run " + o.bin_dir + "/waferd"};
      }
      return Error{StatusCode::kFailedPrecondition, "waferd exited at start: " + LastLogLine()};
    }
    host::StatusReply reply;
    up = (*admin)->QueryStatus(&reply, 250).ok();
  }
  if (!up) {
    return Error{StatusCode::kUnavailable, "waferd did not answer within 30 s: " + LastLogLine()};
  }
  if (!o.load_shape) return HostOk();
  host::OperationResult r;
  host::LoadModel load;
  load.name = "shape";
  load.path = o.dir;
  load.slots = o.slots;
  load.context_length = o.context;
  for (uint32_t b = 0; b < o.boards; ++b) load.boards.push_back(b);
  if (HostStatus s = (*admin)->Operate(load, nullptr, &r, 60000); !s.ok()) {
    return Error{s.code(), "load failed: " + s.error().message};
  }
  if (r.code != host::ErrorCode::kNone) {
    return Error{StatusCode::kFailedPrecondition, "load failed: " + r.detail};
  }
  return HostOk();
}

WaferdProcess::~WaferdProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
}

HostResult<double> WaferdProcess::LoadModel(const std::string& path, const std::string& name,
                                            uint32_t slots, uint32_t context) const {
  auto admin = host::AdminClient::Connect(admin_ep_);
  if (!admin.ok()) return Error{admin.code(), "cannot make an admin socket"};
  host::LoadModel load;
  load.name = name;
  load.path = path;
  load.slots = slots;
  load.context_length = context;
  host::OperationResult r;
  const auto start = std::chrono::steady_clock::now();
  const HostStatus done = (*admin)->Operate(load, nullptr, &r, 120000);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!done.ok()) return Error{done.code(), "no answer: " + LastLogLine()};
  if (r.code != host::ErrorCode::kNone) {
    return Error{StatusCode::kFailedPrecondition, "load failed: " + r.detail};
  }
  return seconds;
}

bool WaferdProcess::UnloadModel(const std::string& name) const {
  auto admin = host::AdminClient::Connect(admin_ep_);
  if (!admin.ok()) return false;
  host::UnloadModel unload;
  unload.name = name;
  host::OperationResult r;
  return (*admin)->Operate(unload, nullptr, &r, 60000).ok() && r.code == host::ErrorCode::kNone;
}

double WaferdProcess::RssMb() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

double WaferdProcess::CpuSeconds() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  // Fields after the command name (which may hold spaces) start after its closing ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; fields >> field; ++i) {  // Field 3 is the state.
    if (i == 14) utime = std::stod(field);
    if (i == 15) {
      stime = std::stod(field);
      return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  return -1;
}

std::string WaferdProcess::LastLogLine() const {
  std::ifstream in(dir_ + "/waferd.log");
  std::string line, last = "(waferd.log is empty)";
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  return last;
}

}  // namespace wafer::bench

// A waferd for cross-component tests: embedded simulated boards (one, or one per inproc:// board
// a config tweak lists) and the daemon's step loop in this process, on loopback with ephemeral
// ports.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "board_sim/board_runner.h"
#include "host/client/wafer_client.h"
#include "host/daemon/daemon.h"

namespace wafer::testing {

// Starts a program (argv[0] without a '/' is looked up on PATH) with stdout and stderr in `log`;
// returns its PID (<= 0 if fork failed) without waiting. The caller stops and reaps it.
pid_t SpawnProgram(const std::vector<std::string>& argv, const std::string& log);

// Runs a program and waits for it; returns its exit status (or -1). Output goes to `log`.
int RunProgram(const std::vector<std::string>& argv, const std::string& log = "/dev/null");

// The whole content of the file at `path` ("" when it cannot be read).
std::string ReadWholeFile(const std::string& path);

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes a model with the project's wafer-mkmodel into `dir`; returns success.
bool WriteModel(const std::string& dir, const std::string& preset, uint64_t seed,
                const std::string& extra_flag = "");

// Writes a shape-only model (config.json only) of the tiny shape into `dir`.
bool WriteShapeOnlyModel(const std::string& dir);

// A greedy job of `max_tokens` tokens on `model`, prompt {5, 6, 7}: the same tokens on any board.
host::SubmitJob GreedyJob(const std::string& model, uint32_t max_tokens);

class DaemonHarness;

// Runs `n` jobs of `max_tokens` tokens on `model` to completion, then submits one for a model
// that does not exist (refused), so the job, token and rejection counters all move.
void RunJobsThenARejection(DaemonHarness& h, const std::string& model, int n,
                           uint32_t max_tokens);

class DaemonHarness {
 public:
  // Starts the board and the daemon, with a job store of its own in a temporary directory.
  // `tweak` may adjust the config first; `wrap_links`, when
  // given, wraps the ZeroMQ board-link factory the daemon gets (to observe or script links).
  explicit DaemonHarness(
      const std::function<void(host::DaemonConfig&)>& tweak = nullptr,
      const std::function<host::BoardLinkFactory(host::BoardLinkFactory)>& wrap_links = nullptr);
  ~DaemonHarness();  // Stops the daemon (drain) and the board.

  // Loads `dir` as `name` through the admin socket; returns the OperationResult's code.
  host::ErrorCode Load(const std::string& dir, const std::string& name, uint32_t slots = 8);

  std::unique_ptr<host::JobClient> NewJobClient();
  std::unique_ptr<host::AdminClient> NewAdminClient();

  host::Daemon& daemon() { return *daemon_; }
  const host::DaemonConfig& config() const { return config_; }
  // Stops the loop (drain) and waits for Run() to return.
  void Stop();

 private:
  TempDir store_dir_;  // The daemon's own job store, per harness: tests never share one.
  zmq::context_t context_{1};
  host::DaemonConfig config_;
  std::vector<std::unique_ptr<sim::EmbeddedBoard>> boards_;
  std::unique_ptr<host::Daemon> daemon_;
  std::thread loop_;
};

// Runs GreedyJob(model, max_tokens) on a client and a thread of its own, collecting its tokens;
// the destructor joins. Read `tokens`, `outcome` and `finished` after joining `thread`.
struct GreedyStream {
  std::unique_ptr<host::JobClient> client;
  std::vector<uint32_t> tokens;
  std::atomic<uint32_t> streamed{0};  // Tokens so far, readable while it runs.
  host::SubmitOutcome outcome;
  host::JobFinished finished;
  std::thread thread;

  GreedyStream(DaemonHarness& h, const std::string& model, uint32_t max_tokens,
               int timeout_ms = 60000);
  ~GreedyStream();
};

// The tokens of GreedyJob(model, max_tokens) run to its end undisturbed: what a disturbed run
// (moved, preempted, recomputed) must stream too.
std::vector<uint32_t> GreedyReference(DaemonHarness& h, const std::string& model,
                                      uint32_t max_tokens, int timeout_ms = 60000);

}  // namespace wafer::testing

// The shipped binaries as an operator runs them: waferd with a separate wafer-sim process over
// ipc://, waferctl's commands, --json output and exit codes, config errors, and SIGTERM drain.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/daemon_harness.h"
#include "tests/http_get.h"

namespace wafer::testing {
namespace {

const std::string kBin = WAFER_BIN_DIR;

// Sends SIGTERM and returns the exit code (or -1 when killed by a signal / timed out).
int TerminateAndWait(pid_t pid, int timeout_s = 20) {
  kill(pid, SIGTERM);
  for (int i = 0; i < timeout_s * 10; ++i) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

// Runs waferctl; returns its exit code and fills `out` with what it printed.
int Ctl(const std::vector<std::string>& args, std::string* out, const std::string& dir) {
  std::vector<std::string> argv = {kBin + "/waferctl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = dir + "/ctl.out";
  int code = RunProgram(argv, log);
  *out = ReadWholeFile(log);
  return code;
}

TEST(ProcessTest, ConfigErrorsNameKeyAndLineAndExit2) {
  TempDir dir;
  std::ofstream(dir.path() + "/bad.yaml") << "scheduler:\n  max_batch: 0\n";
  EXPECT_EQ(RunProgram({kBin + "/waferd", "--config", dir.path() + "/bad.yaml"}, dir.path() + "/log"), 2);
  std::string log = ReadWholeFile(dir.path() + "/log");
  EXPECT_NE(log.find("line 2: scheduler.max_batch"), std::string::npos) << log;
  EXPECT_EQ(RunProgram({kBin + "/waferd", "--bogus"}, dir.path() + "/log"), 2);
  EXPECT_EQ(RunProgram({kBin + "/waferd", "--print-default-config"}, dir.path() + "/default.yaml"), 0);
  // The printed defaults are a valid config.
  std::string text = ReadWholeFile(dir.path() + "/default.yaml");
  EXPECT_NE(text.find("job_endpoint:"), std::string::npos);
  EXPECT_NE(text.find("boards:"), std::string::npos);
}

// --log-level and --log-format: a bad value is a usage error (exit 2) naming the flag and the
// values it takes, for waferd and wafer-sim alike; wafer-sim's runtime errors are JSON lines when
// asked for.
TEST(ProcessTest, LogFlagsAreCheckedAndWaferSimLogsJson) {
  TempDir dir;
  const std::string log = dir.path() + "/log";
  EXPECT_EQ(RunProgram({kBin + "/waferd", "--log-level", "verbose"}, log), 2);
  EXPECT_NE(ReadWholeFile(log).find(
                "--log-level: 'verbose' is not a log level (trace, debug, info, warn, error or off)"),
            std::string::npos)
      << ReadWholeFile(log);
  EXPECT_EQ(RunProgram({kBin + "/waferd", "--log-format", "xml"}, log), 2);
  EXPECT_NE(ReadWholeFile(log).find("--log-format: 'xml' is not a log format (text or json)"),
            std::string::npos)
      << ReadWholeFile(log);
  EXPECT_EQ(RunProgram({kBin + "/waferd", "--log-level"}, log), 2);  // No value at all.
  EXPECT_EQ(RunProgram({kBin + "/waferd", "--help"}, log), 0);
  EXPECT_NE(ReadWholeFile(log).find("--log-format text|json"), std::string::npos);

  EXPECT_EQ(RunProgram({kBin + "/wafer-sim", "--endpoint", "ipc://x", "--log-level", "loud"}, log),
            2);
  EXPECT_NE(ReadWholeFile(log).find(
                "--log-level: 'loud' is not a log level (trace, debug, info, warn, error or off)"),
            std::string::npos)
      << ReadWholeFile(log);
  EXPECT_EQ(RunProgram({kBin + "/wafer-sim", "--endpoint", "ipc://x", "--log-format", "yaml"}, log),
            2);
  EXPECT_NE(ReadWholeFile(log).find("--log-format: 'yaml' is not a log format (text or json)"),
            std::string::npos)
      << ReadWholeFile(log);

  // An endpoint ZeroMQ refuses: the failure is one JSON line, an error of the "sim" component.
  EXPECT_EQ(RunProgram({kBin + "/wafer-sim", "--endpoint", "bogus://nowhere", "--log-format",
                        "json"},
                       log),
            1);
  std::istringstream lines(ReadWholeFile(log));
  std::string line;
  int errors = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    if (j["level"] == "error" && j["component"] == "sim") ++errors;
  }
  EXPECT_EQ(errors, 1) << ReadWholeFile(log);
}

TEST(ProcessTest, WaferdWithSeparateWaferSimServesWaferctl) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 9));
  const std::string board_ep = "ipc://" + dir.path() + "/board0.sock";
  pid_t sim = SpawnProgram({kBin + "/wafer-sim", "--endpoint", board_ep, "--preset", "mini",
                     "--board-id", "sim-ipc"},
                    dir.path() + "/sim.log");
  const int job_port = FreeLoopbackPort(), admin_port = FreeLoopbackPort(),
            metrics_port = FreeLoopbackPort();
  const std::string job_ep = "tcp://127.0.0.1:" + std::to_string(job_port);
  const std::string admin_ep = "tcp://127.0.0.1:" + std::to_string(admin_port);
  std::ofstream(dir.path() + "/waferd.yaml")
      << "job_endpoint: " << job_ep << "\nadmin_endpoint: " << admin_ep
      << "\nstore: {path: " << dir.path() << "/jobs.db}"
      << "\nmetrics_address: 127.0.0.1:" << metrics_port << "\nboards:\n  - endpoint: " << board_ep
      << "\nmodels:\n  - name: tiny\n    path: " << dir.path() << "/tiny\n    slots: 4\n";
  pid_t waferd = SpawnProgram({kBin + "/waferd", "--config", dir.path() + "/waferd.yaml"},
                       dir.path() + "/waferd.log");
  const std::vector<std::string> eps = {"--endpoint", job_ep, "--admin-endpoint", admin_ep};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), eps.begin(), eps.end());
    return args;
  };

  // Wait until the model (loaded from the config) is ready.
  std::string out;
  bool ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Ctl(with({"status", "--json"}), &out, dir.path()) != 0) continue;
    auto j = nlohmann::json::parse(out, nullptr, false);
    ready = !j.is_discarded() && j["models"].size() == 1 && j["models"][0]["state"] == "ready" &&
            j["boards"][0]["state"] == "ready";
  }
  ASSERT_TRUE(ready) << out << ReadWholeFile(dir.path() + "/waferd.log");
  auto status = nlohmann::json::parse(out);
  EXPECT_EQ(status["boards"][0]["board_id"], "sim-ipc");
  EXPECT_EQ(status["boards"][0]["endpoint"], board_ep);

  // submit streams text and exits 0; --json gives one event per line.
  EXPECT_EQ(Ctl(with({"submit", "--model", "tiny", "--prompt", "hello", "--max-tokens", "6"}), &out,
                dir.path()),
            0)
      << out;
  EXPECT_NE(out.find("length"), std::string::npos) << out;
  EXPECT_EQ(Ctl(with({"submit", "--model", "tiny", "--tokens", "1,2,3", "--max-tokens", "5", "--json"}),
                &out, dir.path()),
            0);
  std::istringstream lines(out);
  std::string line, last;
  int chunks = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    if (j["event"] == "chunk") ++chunks;
    last = line;
  }
  EXPECT_GT(chunks, 0);
  auto finished = nlohmann::json::parse(last);
  EXPECT_EQ(finished["event"], "finished");
  EXPECT_EQ(finished["completion_tokens"], 5);

  // A rejection exits 1 with the typed code; a usage error exits 2.
  EXPECT_EQ(Ctl(with({"submit", "--model", "nope", "--prompt", "x", "--json"}), &out, dir.path()), 1);
  EXPECT_EQ(nlohmann::json::parse(out)["code"], "UNKNOWN_MODEL");
  EXPECT_EQ(Ctl(with({"submit", "--prompt", "x"}), &out, dir.path()), 2);
  EXPECT_EQ(Ctl(with({"frobnicate"}), &out, dir.path()), 2);

  // unload and load with --json; loading a missing directory exits 1.
  EXPECT_EQ(Ctl(with({"unload", "tiny", "--json"}), &out, dir.path()), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out)["ok"], true);
  EXPECT_EQ(Ctl(with({"load", dir.path() + "/tiny", "--name", "tiny", "--json"}), &out, dir.path()), 0)
      << out;
  EXPECT_NE(out.find("\"progress\""), std::string::npos);
  EXPECT_EQ(Ctl(with({"load", dir.path() + "/missing", "--json"}), &out, dir.path()), 1);

  // The board's firmware log, through the daemon.
  EXPECT_EQ(Ctl(with({"logs", "0", "--json"}), &out, dir.path()), 0) << out;
  EXPECT_FALSE(nlohmann::json::parse(out)["records"].empty()) << out;
  EXPECT_EQ(Ctl(with({"logs", "9"}), &out, dir.path()), 1);

  // The metrics endpoint answers.
  int http_status = 0;
  HttpGet(metrics_port, "/metrics", &http_status);
  EXPECT_EQ(http_status, 200);

  // SIGTERM drains and exits 0; then waferctl reports the daemon unreachable (exit 3).
  EXPECT_EQ(TerminateAndWait(waferd), 0) << ReadWholeFile(dir.path() + "/waferd.log");
  EXPECT_EQ(Ctl(with({"--timeout-ms", "300", "status"}), &out, dir.path()), 3);

  // A new waferd finds the board still holding the old daemon's model: it resets the board to
  // reclaim its SRAM (the same model id and rows would otherwise collide) and loads afresh.
  waferd = SpawnProgram({kBin + "/waferd", "--config", dir.path() + "/waferd.yaml"},
                 dir.path() + "/waferd2.log");
  ready = false;
  for (int i = 0; i < 100 && !ready; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Ctl(with({"status", "--json"}), &out, dir.path()) != 0) continue;
    auto j = nlohmann::json::parse(out, nullptr, false);
    ready = !j.is_discarded() && j["models"].size() == 1 && j["models"][0]["state"] == "ready";
  }
  ASSERT_TRUE(ready) << out << ReadWholeFile(dir.path() + "/waferd2.log");
  EXPECT_NE(ReadWholeFile(dir.path() + "/waferd2.log").find("did not load; resetting it"),
            std::string::npos);
  EXPECT_EQ(Ctl(with({"submit", "--model", "tiny", "--tokens", "1,2", "--max-tokens", "3"}), &out,
                dir.path()),
            0)
      << out;
  EXPECT_EQ(TerminateAndWait(waferd), 0) << ReadWholeFile(dir.path() + "/waferd2.log");
  EXPECT_EQ(TerminateAndWait(sim), 0) << ReadWholeFile(dir.path() + "/sim.log");
}

TEST(ProcessTest, TwoEmbeddedBoardsServeAModelEach) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/a", "tiny", 1));
  ASSERT_TRUE(WriteModel(dir.path() + "/b", "tiny", 2));
  const std::string job_ep = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  const std::string admin_ep = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  std::ofstream(dir.path() + "/waferd.yaml")
      << "job_endpoint: " << job_ep << "\nadmin_endpoint: " << admin_ep
      << "\nstore: {path: " << dir.path() << "/jobs.db}"
      << "\nmetrics_address: \"\"\nboards:\n  - endpoint: inproc://b0\n  - endpoint: inproc://b1\n"
      << "    seed: 5\nmodels:\n  - {name: a, path: " << dir.path() << "/a, board: 0, slots: 2}\n"
      << "  - {name: b, path: " << dir.path() << "/b, board: 1, slots: 2}\n";
  // As JSON lines: checked below, once it has drained.
  pid_t waferd = SpawnProgram({kBin + "/waferd", "--config", dir.path() + "/waferd.yaml",
                               "--log-format", "json", "--log-level", "debug"},
                       dir.path() + "/waferd.log");
  const std::vector<std::string> eps = {"--endpoint", job_ep, "--admin-endpoint", admin_ep};
  std::string out;
  nlohmann::json status;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::vector<std::string> args = eps;
    args.insert(args.end(), {"status", "--json"});
    if (Ctl(args, &out, dir.path()) != 0) continue;
    status = nlohmann::json::parse(out, nullptr, false);
    if (!status.is_discarded() && status["models"].size() == 2 &&
        status["models"][0]["state"] == "ready" && status["models"][1]["state"] == "ready") {
      break;
    }
  }
  ASSERT_EQ(status["boards"].size(), 2u) << out;
  for (const auto& m : status["models"]) {
    EXPECT_EQ(m["state"], "ready") << ReadWholeFile(dir.path() + "/waferd.log");
    EXPECT_EQ(m["board"], m["name"] == "a" ? 0 : 1);
  }
  for (const char* model : {"a", "b"}) {
    std::vector<std::string> args = eps;
    args.insert(args.end(), {"submit", "--model", model, "--prompt", "hi", "--max-tokens", "7", "--json"});
    EXPECT_EQ(Ctl(args, &out, dir.path()), 0) << out;
    EXPECT_NE(out.find("\"completion_tokens\":7"), std::string::npos) << out;
  }
  std::vector<std::string> args = eps;
  args.insert(args.end(), {"status", "--json"});
  ASSERT_EQ(Ctl(args, &out, dir.path()), 0);
  status = nlohmann::json::parse(out);
  EXPECT_GT(status["boards"][0]["steps"].get<int>(), 0);  // Each board ran its own model.
  EXPECT_GT(status["boards"][1]["steps"].get<int>(), 0);
  EXPECT_EQ(TerminateAndWait(waferd), 0);

  // Everything waferd wrote is JSON lines with ts, level, component and msg; the lines of its
  // start, each model's load, each board's state and its drain are among them.
  std::istringstream lines(ReadWholeFile(dir.path() + "/waferd.log"));
  std::string line;
  std::set<std::string> seen;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    for (const char* key : {"ts", "level", "component", "msg"}) {
      ASSERT_TRUE(j.contains(key) && j[key].is_string()) << key << " in " << line;
    }
    const std::string msg = j["msg"];
    if (msg.rfind("waferd ", 0) == 0 && msg.find("2 board(s)") != std::string::npos) {
      seen.insert(j["component"].get<std::string>() + ": start");
    }
    if (msg.rfind("model a ready", 0) == 0 || msg.rfind("model b ready", 0) == 0) {
      seen.insert(j["component"].get<std::string>() + ": " + msg.substr(0, 7));
    }
    if (msg.find("-> ready") != std::string::npos) seen.insert(j["component"].get<std::string>());
    if (msg == "drained, exiting") seen.insert(j["level"].get<std::string>() + ": drained");
  }
  EXPECT_EQ(seen, (std::set<std::string>{"daemon: start", "models: model a", "models: model b",
                                         "board[0]", "board[1]", "info: drained"}))
      << ReadWholeFile(dir.path() + "/waferd.log");
}

// Submits `job` and reads its stream to the end, calling `interrupt` (if any) once the first
// chunk has arrived; returns every token. The job must be accepted and finish by length;
// `log` (waferd's) is quoted when it does not.
std::vector<uint32_t> StreamJob(host::JobClient& client, const host::SubmitJob& job,
                                const std::function<void()>& interrupt, const std::string& log) {
  std::vector<uint32_t> tokens;
  host::SubmitOutcome outcome;
  if (!client.Submit(job, &outcome, 30000).ok() || !outcome.accepted) {
    ADD_FAILURE() << "not accepted: " << outcome.rejection.detail;
    return tokens;
  }
  bool interrupted = !interrupt;
  for (;;) {
    host::JobMessage m;
    if (!client.Receive(&m, 30000).ok()) {
      ADD_FAILURE() << "the stream stopped: " << ReadWholeFile(log);
      return tokens;
    }
    if (auto* c = std::get_if<host::TokenChunk>(&m)) {
      tokens.insert(tokens.end(), c->tokens.begin(), c->tokens.end());
      if (!interrupted) {
        interrupted = true;
        interrupt();
      }
    } else if (auto* f = std::get_if<host::JobFinished>(&m)) {
      EXPECT_EQ(f->reason, host::FinishReason::kLength) << f->detail;
      return tokens;
    }
  }
}

// A model split over two wafer-sim processes: the first hands its hidden states to the second
// over ipc:// itself (the log says so), and the stream survives kill -9 of the second mid-stream:
// the first board gives up on it, the model is reloaded once the process is back, and the job is
// recomputed to exactly the tokens of an undisturbed run.
TEST(ProcessTest, ASplitModelOverTwoWaferSimProcessesSurvivesKillingItsLastBoard) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/small", "small", 21));
  std::vector<std::string> board_eps;
  std::vector<pid_t> sims;
  for (int b = 0; b < 2; ++b) {
    board_eps.push_back("ipc://" + dir.path() + "/board" + std::to_string(b) + ".sock");
    sims.push_back(SpawnProgram({kBin + "/wafer-sim", "--endpoint", board_eps[b]},
                                dir.path() + "/sim" + std::to_string(b) + ".log"));
  }
  const std::string job_ep = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  const std::string admin_ep = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  std::ofstream(dir.path() + "/waferd.yaml")
      << "job_endpoint: " << job_ep << "\nadmin_endpoint: " << admin_ep
      << "\nstore: {path: memory}\nmetrics_address: \"\"\nboards:\n  - endpoint: " << board_eps[0]
      << "\n    timeout_ms: 1000\n  - endpoint: " << board_eps[1]
      << "\n    timeout_ms: 1000\nmodels:\n  - name: split\n    path: " << dir.path()
      << "/small\n    boards: [0, 1]\n    slots: 4\n";
  pid_t waferd = SpawnProgram({kBin + "/waferd", "--config", dir.path() + "/waferd.yaml"},
                              dir.path() + "/waferd.log");
  const std::vector<std::string> eps = {"--endpoint", job_ep, "--admin-endpoint", admin_ep};
  auto model_state = [&]() -> std::string {
    std::vector<std::string> args = eps;
    args.insert(args.end(), {"status", "--json"});
    std::string out;
    if (Ctl(args, &out, dir.path()) != 0) return "";
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded() || j["models"].empty()) return "";
    return j["models"][0]["state"].get<std::string>();
  };
  auto wait_ready = [&](int tenths) {
    std::string state;
    for (int i = 0; i < tenths && state != "ready"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      state = model_state();
    }
    return state;
  };
  ASSERT_EQ(wait_ready(150), "ready") << ReadWholeFile(dir.path() + "/waferd.log");
  EXPECT_NE(ReadWholeFile(dir.path() + "/waferd.log")
                .find("(boards hand hidden states to each other)"),
            std::string::npos)
      << ReadWholeFile(dir.path() + "/waferd.log");

  auto client = host::JobClient::Connect(job_ep);
  ASSERT_TRUE(client.ok());
  host::SubmitJob job;
  job.model = "split";
  job.prompt_text = "for stage in pipeline:";
  job.max_tokens = 400;
  const std::string log_path = dir.path() + "/waferd.log";
  const std::vector<uint32_t> reference = StreamJob(**client, job, nullptr, log_path);
  ASSERT_EQ(reference.size(), 400u);

  const std::vector<uint32_t> tokens = StreamJob(**client, job, [&] {
    kill(sims[1], SIGKILL);  // The last stage, mid-stream.
    waitpid(sims[1], nullptr, 0);
    // The model leaves the ready state before the process is back: the first board gave up
    // waiting for its answer (half of board 1's timeout_ms), or board 1's worker saw it gone,
    // whichever came first.
    std::string state = "ready";
    for (int i = 0; i < 100 && state == "ready"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      state = model_state();
    }
    EXPECT_NE(state, "ready");
    const std::string log = ReadWholeFile(log_path);
    const bool pass_failed = log.find("stage 1 (board 1) failed the pass: UNAVAILABLE: the next "
                                      "stage did not answer in time") != std::string::npos;
    EXPECT_TRUE(pass_failed || log.find("lost with board 1") != std::string::npos) << log;
    std::fprintf(stderr, "board 1's loss was seen %s\n",
                 pass_failed ? "by board 0 (the pass failed)" : "by its worker");
    sims[1] = SpawnProgram({kBin + "/wafer-sim", "--endpoint", board_eps[1]},
                           dir.path() + "/sim1-again.log");
  }, log_path);
  EXPECT_EQ(tokens, reference) << ReadWholeFile(log_path);
  EXPECT_EQ(TerminateAndWait(waferd), 0);
  for (pid_t sim : sims) TerminateAndWait(sim);
}

TEST(ProcessTest, JobsSurviveAWaferSimCrash) {
  TempDir dir;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 9));
  const std::string board_ep = "ipc://" + dir.path() + "/board0.sock";
  pid_t sim = SpawnProgram({kBin + "/wafer-sim", "--endpoint", board_ep}, dir.path() + "/sim.log");
  const std::string job_ep = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  const std::string admin_ep = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  std::ofstream(dir.path() + "/waferd.yaml")
      << "job_endpoint: " << job_ep << "\nadmin_endpoint: " << admin_ep
      << "\nstore: {path: " << dir.path() << "/jobs.db}"
      << "\nmetrics_address: \"\"\nboards:\n  - endpoint: " << board_ep
      << "\n    timeout_ms: 500\nmodels:\n  - name: tiny\n    path: " << dir.path()
      << "/tiny\n    slots: 4\n";
  pid_t waferd = SpawnProgram({kBin + "/waferd", "--config", dir.path() + "/waferd.yaml"},
                       dir.path() + "/waferd.log");
  const std::vector<std::string> eps = {"--endpoint", job_ep, "--admin-endpoint", admin_ep};
  std::string out;
  auto state_of = [&](const char* what) -> std::string {
    std::vector<std::string> args = eps;
    args.insert(args.end(), {"status", "--json"});
    if (Ctl(args, &out, dir.path()) != 0) return "";
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_discarded()) return "";
    if (std::string(what) == "board") return j["boards"][0]["state"].get<std::string>();
    return j["models"].empty() ? "" : j["models"][0]["state"].get<std::string>();
  };
  auto wait_for = [&](const char* what, const std::string& want, int tenths) {
    std::string state;
    for (int i = 0; i < tenths && state != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      state = state_of(what);
    }
    return state;
  };
  ASSERT_EQ(wait_for("model", "ready", 100), "ready") << ReadWholeFile(dir.path() + "/waferd.log");

  // A reference run, then the same greedy job with the board process killed under it.
  auto client = host::JobClient::Connect(job_ep);
  ASSERT_TRUE(client.ok());
  host::SubmitJob job;
  job.model = "tiny";
  job.prompt_text = "crash";
  job.max_tokens = 1000;
  const std::string log_path = dir.path() + "/waferd.log";
  const std::vector<uint32_t> reference = StreamJob(**client, job, nullptr, log_path);
  ASSERT_EQ(reference.size(), 1000u);
  host::SubmitOutcome outcome;
  host::JobFinished finished;

  // A PE under the model fails and is repaired in place (the daemon reads fault report 1).
  auto pe_fault_then_job = [&]() {
    std::vector<std::string> args = eps;
    args.insert(args.end(), {"fault", "0", "pe_stop", "--row", "0", "--pe", "0"});
    ASSERT_EQ(Ctl(args, &out, dir.path()), 0) << out;
    host::SubmitJob small = job;
    small.max_tokens = 4;
    ASSERT_TRUE((*client)->Run(small, [](const host::TokenChunk&) {}, &outcome, &finished,
                               30000).ok());
    EXPECT_EQ(finished.reason, host::FinishReason::kLength) << finished.detail;
  };
  pe_fault_then_job();

  const std::vector<uint32_t> tokens = StreamJob(**client, job, [&] {
    kill(sim, SIGKILL);  // Mid-stream: the job has at most a few chunks.
    waitpid(sim, nullptr, 0);
    EXPECT_EQ(wait_for("board", "offline", 100), "offline");  // Noticed; still answering.
    sim = SpawnProgram({kBin + "/wafer-sim", "--endpoint", board_ep}, dir.path() + "/sim2.log");
    EXPECT_EQ(wait_for("model", "ready", 150), "ready") << ReadWholeFile(log_path);
  }, log_path);
  EXPECT_EQ(tokens, reference);  // Recomputed on the new board process: nothing lost.

  // The new board process numbers its fault reports from the start again: a PE fault on it is
  // still repaired in place, not by a full reload.
  pe_fault_then_job();
  const std::string log = ReadWholeFile(dir.path() + "/waferd.log");
  size_t repairs = 0;
  for (size_t at = log.find("repaired on board"); at != std::string::npos;
       at = log.find("repaired on board", at + 1)) {
    ++repairs;
  }
  EXPECT_EQ(repairs, 2u) << log;
  EXPECT_EQ(log.find("repair failed"), std::string::npos) << log;
  EXPECT_EQ(TerminateAndWait(waferd), 0);
  EXPECT_EQ(TerminateAndWait(sim), 0);
}

}  // namespace
}  // namespace wafer::testing

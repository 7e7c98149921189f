// waferctl as an operator runs it: the real binary against a real waferd process (an embedded,
// slowed real-time board so that jobs are seen running), every command with --json parsed,
// the exit code of every failure class, jobs tail following a running job, firmware update and
// rollback on a wafer-sim process that trusts a signing key, and `top` in a real terminal
// (tmux): its screen captured, "reconnecting" after the daemon is killed, back after it
// restarts, and q quitting it.
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/daemon_harness.h"
#include "tests/http_get.h"
#include "tests/slow_preset.h"

namespace wafer::testing {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

const std::string kBin = WAFER_BIN_DIR;
// Tokens of the job that top, jobs and jobs tail watch running (the tiny model's context is
// 1024).
constexpr int kLongJobTokens = 900;

struct Ran {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `argv` with stdout and stderr in files of their own; waits at most `budget_s`.
Ran RunSplit(const std::vector<std::string>& argv, const std::string& dir, int budget_s = 60) {
  const std::string out_path = dir + "/run.out", err_path = dir + "/run.err";
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  Ran r;
  const auto deadline = Clock::now() + std::chrono::seconds(budget_s);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << argv[1] << " did not end within " << budget_s << " s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status)) r.code = WEXITSTATUS(status);
  r.out = ReadWholeFile(out_path);
  r.err = ReadWholeFile(err_path);
  return r;
}

// Stops a process this test started: SIGTERM, then SIGKILL after `grace_s`; reaps it.
void Stop(pid_t pid, int grace_s = 20) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(grace_s);
  while (Clock::now() < deadline) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// Polls `done` every 100 ms for at most `budget_s`.
bool WaitFor(const std::function<bool()>& done, int budget_s) {
  const auto deadline = Clock::now() + std::chrono::seconds(budget_s);
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

// Every JSON line of `text`; a line that is not JSON fails the test.
std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << line;
    if (!j.is_discarded()) lines.push_back(std::move(j));
  }
  return lines;
}

// A waferd process with one embedded board on the slowed preset at real-time pacing (a job of
// a few hundred tokens streams for several seconds) and the tiny model loaded from its config, on
// fresh loopback ports; or, with `board_endpoint`, a wafer-sim board there instead.
class WaferdProcess {
 public:
  WaferdProcess(const std::string& dir, const std::string& board_endpoint = "")
      : dir_(dir),
        job_ep_("tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort())),
        admin_ep_("tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort())) {
    EXPECT_TRUE(WriteModel(dir + "/tiny", "tiny", 9));
    std::ofstream config(dir + "/waferd.yaml");
    config << "job_endpoint: " << job_ep_ << "\nadmin_endpoint: " << admin_ep_
           << "\nstore: {path: " << dir << "/jobs.db}"
           << "\nmetrics_address: 127.0.0.1:" << FreeLoopbackPort() << "\nboards:\n";
    if (board_endpoint.empty()) {
      // 30 ms a Step at least: a job of kLongJobTokens streams for seconds.
      EXPECT_TRUE(WriteSlowPreset(dir + "/slow.yaml", 30000));
      config << "  - endpoint: inproc://board0\n    preset: " << dir
             << "/slow.yaml\n    pacing: realtime\n";
    } else {
      config << "  - endpoint: " << board_endpoint << "\n";
    }
    config << "models:\n  - name: tiny\n    path: " << dir << "/tiny\n    slots: 4\n";
  }
  ~WaferdProcess() { Stop(pid_); }

  // Starts waferd and waits (at most 30 s) until its model is ready.
  bool Start() {
    pid_ = SpawnProgram({kBin + "/waferd", "--config", dir_ + "/waferd.yaml"},
                        dir_ + "/waferd." + std::to_string(++starts_) + ".log");
    return WaitFor(
        [&] {
          Ran r = RunSplit({kBin + "/waferctl", "--admin-endpoint", admin_ep_, "--timeout-ms",
                            "500", "status", "--json"},
                           dir_);
          json j = json::parse(r.out, nullptr, false);
          return r.code == 0 && !j.is_discarded() && j["models"].size() == 1 &&
                 j["models"][0]["state"] == "ready" && j["boards"][0]["state"] == "ready";
        },
        30);
  }
  void Kill() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  // waferctl with this daemon's endpoints and `args`.
  Ran Ctl(const std::vector<std::string>& args, int budget_s = 60) const {
    std::vector<std::string> argv = {kBin + "/waferctl", "--endpoint", job_ep_,
                                     "--admin-endpoint", admin_ep_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunSplit(argv, dir_, budget_s);
  }
  const std::string& admin_endpoint() const { return admin_ep_; }
  const std::string& job_endpoint() const { return job_ep_; }
  std::string log() const { return ReadWholeFile(dir_ + "/waferd." + std::to_string(starts_) + ".log"); }

 private:
  std::string dir_;
  std::string job_ep_, admin_ep_;
  pid_t pid_ = -1;
  int starts_ = 0;
};

// A `waferctl submit` of `max_tokens` tokens for `tenant` running in the background, its JSON
// events in `dir`/submit.N.out.
pid_t SubmitInBackground(const WaferdProcess& d, const std::string& dir, int n,
                         const std::string& tenant, int max_tokens) {
  return SpawnProgram({kBin + "/waferctl", "--endpoint", d.job_endpoint(), "submit", "--model",
                       "tiny", "--tokens", "1,2,3", "--max-tokens", std::to_string(max_tokens),
                       "--tenant", tenant, "--json"},
                      dir + "/submit." + std::to_string(n) + ".out");
}

TEST(WaferctlTest, EveryCommandThroughTheBinaryWithJsonAndExitCodes) {
  TempDir dir;
  WaferdProcess d(dir.path());
  ASSERT_TRUE(d.Start()) << d.log();

  // A job that streams for a while, so that top, jobs and jobs tail see it running.
  const pid_t submit = SubmitInBackground(d, dir.path(), 1, "team-a", kLongJobTokens);
  std::string job_id;
  ASSERT_TRUE(WaitFor(
      [&] {
        Ran r = d.Ctl({"jobs", "--state", "running", "--json"});
        json j = json::parse(r.out, nullptr, false);
        if (r.code != 0 || j.is_discarded() || j["jobs"].empty()) return false;
        job_id = std::to_string(j["jobs"][0]["job_id"].get<uint64_t>());
        return true;
      },
      30));

  // top --json: two refreshes; the second has rates, and the board is busy with the job.
  Ran r = d.Ctl({"top", "--json", "--count", "2", "--interval-ms", "500"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<json> samples = JsonLines(r.out);
  ASSERT_EQ(samples.size(), 2u) << r.out;
  EXPECT_TRUE(samples[0]["boards"][0]["utilization"].is_null());
  const json& sample = samples[1];
  EXPECT_EQ(sample["ok"], true);
  EXPECT_EQ(sample["boards"][0]["state"], "ready");
  EXPECT_GT(sample["boards"][0]["utilization"].get<double>(), 0.0) << sample;
  EXPECT_GT(sample["boards"][0]["tokens_per_s"].get<double>(), 0.0) << sample;
  EXPECT_FALSE(sample["boards"][0]["hottest_regions"].empty());
  EXPECT_GT(sample["boards"][0]["sram_used_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(sample["models"][0]["name"], "tiny");
  EXPECT_EQ(sample["models"][0]["replicas"], 1);
  EXPECT_EQ(sample["models"][0]["slots_used"], 1);
  EXPECT_FALSE(sample["models"][0]["queued_by_class"].empty());
  EXPECT_EQ(sample["tenants"][0]["tenant"], "team-a");
  EXPECT_EQ(sample["tenants"][0]["running"], 1);

  // jobs tail follows the running job to its end: the same tokens its own client got.
  r = d.Ctl({"jobs", "tail", job_id, "--json"}, 90);
  ASSERT_EQ(r.code, 0) << r.err;
  std::vector<json> events = JsonLines(r.out);
  ASSERT_GE(events.size(), 2u);
  std::vector<uint32_t> tailed;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    EXPECT_EQ(events[i]["event"], "chunk");
    EXPECT_EQ(events[i]["seq"], i);
    for (const json& t : events[i]["tokens"]) tailed.push_back(t.get<uint32_t>());
  }
  EXPECT_EQ(events.back()["event"], "finished");
  EXPECT_EQ(events.back()["reason"], "length");
  EXPECT_EQ(events.back()["tokens_generated"], kLongJobTokens);
  int status = 0;
  ASSERT_EQ(waitpid(submit, &status, 0), submit);
  std::vector<uint32_t> streamed;
  for (const json& e : JsonLines(ReadWholeFile(dir.path() + "/submit.1.out"))) {
    if (e["event"] == "chunk") {
      for (const json& t : e["tokens"]) streamed.push_back(t.get<uint32_t>());
    }
  }
  EXPECT_EQ(tailed, streamed);
  EXPECT_EQ(tailed.size(), static_cast<size_t>(kLongJobTokens));
  // From a later chunk, text mode: the tokens go to stdout, the summary to stderr.
  r = d.Ctl({"jobs", "tail", job_id, "--from", "2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("[job " + job_id + ": length, " + std::to_string(kLongJobTokens) +
                       " tokens]"),
            std::string::npos)
      << r.err;
  r = d.Ctl({"jobs", "tail", "12345", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["code"], "UNKNOWN_JOB");

  // The read-only commands, each as JSON.
  r = d.Ctl({"status", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["models"][0]["name"], "tiny");
  r = d.Ctl({"capacity", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["models"][0]["name"], "tiny");
  r = d.Ctl({"jobs", "--state", "finished", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["jobs"][0]["job_id"], std::stoull(job_id));
  r = d.Ctl({"jobs", "show", job_id, "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["tokens_generated"], kLongJobTokens);
  r = d.Ctl({"health", "--json"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["ok"], true);
  r = d.Ctl({"diag", "-r", "1", "--board", "0", "--json"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(json::parse(r.out)["ok"], true);
  r = d.Ctl({"logs", "0", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_FALSE(json::parse(r.out)["records"].empty());
  r = d.Ctl({"board", "show", "0", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_FALSE(json::parse(r.out, nullptr, false).is_discarded()) << r.out;
  r = d.Ctl({"firmware", "info", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json firmware = json::parse(r.out);
  EXPECT_EQ(firmware["active_slot"], 0);
  EXPECT_EQ(firmware["signing_key"], false);  // An embedded board trusts no key.
  EXPECT_EQ(firmware["slots"][0]["state"], "running");
  EXPECT_EQ(firmware["slots"][0]["version"], "waferfw-1.0.0");
  EXPECT_EQ(firmware["slots"][0]["signed"], false);
  EXPECT_EQ(firmware["slots"][1]["state"], "empty");
  r = d.Ctl({"firmware", "info", "0"});
  EXPECT_NE(r.out.find("waferfw-1.0.0"), std::string::npos) << r.out;

  // Operations, each as JSON.
  r = d.Ctl({"drain", "--board", "0", "--evacuate", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(json::parse(r.out)["detail"].get<std::string>().find("operator"), std::string::npos);
  r = d.Ctl({"undrain", "--board", "0", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["detail"], "board 0 takes work");
  r = d.Ctl({"submit", "--model", "tiny", "--tokens", "4,5", "--max-tokens", "3", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(JsonLines(r.out).back()["completion_tokens"], 3);
  r = d.Ctl({"keys", "generate", dir.path() + "/ops", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["public_key"].get<std::string>().size(), 40u);
  r = d.Ctl({"model", "plan", "--config", dir.path() + "/tiny/config.json", "--preset", "mini",
             "--json"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["fits"], true);

  // Refused requests exit 1, with the daemon's code in the JSON.
  std::ofstream(dir.path() + "/fw.bin") << "waferfw-9.9.9 not for this board\n";
  std::ofstream(dir.path() + "/fw.bin.sig") << std::string(128, 'a');
  r = d.Ctl({"firmware", "update", "0", dir.path() + "/fw.bin", "--json"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_EQ(JsonLines(r.out).back()["code"], "PERMISSION_DENIED") << r.out;
  r = d.Ctl({"firmware", "update", "0", dir.path() + "/fw.bin", "--signature",
             dir.path() + "/none.sig"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no signature"), std::string::npos) << r.err;
  r = d.Ctl({"firmware", "rollback", "0", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["code"], "FAILED_PRECONDITION") << r.out;
  r = d.Ctl({"jobs", "show", "12345", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["code"], "UNKNOWN_JOB");
  r = d.Ctl({"reset", "7", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["code"], "INVALID_ARGUMENT");

  // Usage errors exit 2 and say what was wrong.
  r = d.Ctl({"stauts"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'stauts'; did you mean 'status'?"), std::string::npos);
  r = d.Ctl({"jobs", "--limit", "0"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--limit"), std::string::npos) << r.err;
  r = d.Ctl({"firmware", "info"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("BOARD"), std::string::npos) << r.err;

  // Help for every command, on stdout, exit 0.
  for (const std::vector<std::string>& command : std::vector<std::vector<std::string>>{
           {"status"}, {"submit"}, {"load"}, {"unload"}, {"drain"}, {"undrain"}, {"reset"},
           {"logs"}, {"board", "show"}, {"fault"}, {"capacity"}, {"jobs"}, {"jobs", "list"},
           {"jobs", "show"}, {"jobs", "cancel"}, {"jobs", "tail"}, {"model", "plan"},
           {"health"}, {"diag"}, {"keys", "generate"}, {"top"}, {"firmware", "info"},
           {"firmware", "update"}, {"firmware", "rollback"}, {"completion"}}) {
    std::vector<std::string> args = command;
    args.push_back("--help");
    r = d.Ctl(args);
    std::string name = "waferctl";
    for (const std::string& w : command) name += " " + w;
    EXPECT_EQ(r.code, 0) << name;
    EXPECT_NE(r.out.find("Usage: " + name), std::string::npos) << name << "\n" << r.out;
  }

  // Last, the operations that disturb the board: a fault, a reset, the daemon's drain.
  r = d.Ctl({"fault", "0", "ecc_correctable", "--row", "1", "--pe", "1", "--value", "1",
             "--json"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["ok"], true);
  r = d.Ctl({"reset", "0", "--json"}, 90);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(json::parse(r.out)["ok"], true);
  r = d.Ctl({"drain", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(json::parse(r.out)["ok"], true);
}

TEST(WaferctlTest, NoDaemonAnsweringIsOneLineNamingTheEndpointAndTheWait) {
  TempDir dir;
  const std::string nowhere = "tcp://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  Ran r = RunSplit({kBin + "/waferctl", "--admin-endpoint", nowhere, "--timeout-ms", "300",
                    "status"},
                   dir.path());
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.err, "waferctl: no waferd answering at " + nowhere +
                       ": nothing answered within 0.3 s (is waferd running there? a CURVE "
                       "daemon answers only listed client keys)\n");
  r = RunSplit({kBin + "/waferctl", "--admin-endpoint", nowhere, "--timeout-ms", "300",
                "firmware", "info", "0", "--json"},
               dir.path());
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(json::parse(r.out)["ok"], false);
  r = RunSplit({kBin + "/waferctl", "--admin-endpoint", nowhere, "--timeout-ms", "300", "top",
                "--count", "1"},
               dir.path());
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.out.find("reconnecting: no waferd answering at " + nowhere), std::string::npos)
      << r.out;
}

TEST(WaferctlTest, CompletionIsGeneratedBesideTheBinary) {
  TempDir dir;
  Ran r = RunSplit({kBin + "/waferctl", "completion", "bash"}, dir.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("complete -F _waferctl waferctl"), std::string::npos);
  // The build wrote the same script beside the binary.
  EXPECT_EQ(ReadWholeFile(kBin + "/waferctl.bash"), r.out);
  // bash accepts it.
  EXPECT_EQ(RunProgram({"bash", "-n", kBin + "/waferctl.bash"}), 0);
}

// Ed25519 keys and signatures, as a vendor signs firmware.
struct VendorKey {
  std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> pk{};
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
  VendorKey() {
    EXPECT_GE(sodium_init(), 0);
    crypto_sign_keypair(pk.data(), sk.data());
  }
  std::string SignHex(const std::string& message) const {
    std::array<unsigned char, crypto_sign_BYTES> sig{};
    crypto_sign_detached(sig.data(), nullptr,
                         reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                         sk.data());
    return Hex(sig.data(), sig.size());
  }
  static std::string Hex(const unsigned char* bytes, size_t n) {
    static const char* kDigits = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < n; ++i) {
      out += kDigits[bytes[i] >> 4];
      out += kDigits[bytes[i] & 15];
    }
    return out;
  }
};

TEST(WaferctlTest, FirmwareUpdateAndRollbackOnABoardThatTrustsAKey) {
  TempDir dir;
  VendorKey vendor;
  const std::string board_ep = "ipc://" + dir.path() + "/board0.sock";
  const pid_t sim = SpawnProgram(
      {kBin + "/wafer-sim", "--endpoint", board_ep, "--preset", "mini", "--firmware-key",
       VendorKey::Hex(vendor.pk.data(), vendor.pk.size()), "--factory-signature",
       vendor.SignHex("waferfw-1.0.0 factory image\n")},
      dir.path() + "/sim.log");
  WaferdProcess d(dir.path(), board_ep);
  ASSERT_TRUE(d.Start()) << d.log() << ReadWholeFile(dir.path() + "/sim.log");

  Ran r = d.Ctl({"firmware", "info", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  json info = json::parse(r.out);
  EXPECT_EQ(info["signing_key"], true);
  EXPECT_EQ(info["active_slot"], 0);
  EXPECT_EQ(info["slots"][0]["signed"], true);
  EXPECT_EQ(info["slots"][0]["signature"], vendor.SignHex("waferfw-1.0.0 factory image\n"));
  EXPECT_EQ(info["slots"][1]["state"], "empty");

  // A 300 KB image: several chunks, so several progress lines.
  std::string image = "waferfw-1.1.0 test build\n";
  for (int i = 0; image.size() < 300'000; ++i) image += static_cast<char>(i * 31 + 7);
  std::ofstream(dir.path() + "/fw.bin", std::ios::binary) << image;
  // Signed by another key: refused by the board, exit 1.
  std::ofstream(dir.path() + "/fw.bin.sig") << VendorKey().SignHex(image) << "\n";
  r = d.Ctl({"firmware", "update", "0", dir.path() + "/fw.bin", "--json"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_EQ(JsonLines(r.out).back()["code"], "PERMISSION_DENIED") << r.out;

  // Signed by the board's key: accepted, with a progress bar (a line per update off a tty).
  std::ofstream(dir.path() + "/fw.bin.sig") << vendor.SignHex(image) << "\n";
  r = d.Ctl({"firmware", "update", "0", dir.path() + "/fw.bin"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("flashing ["), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("100.0%"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("accepted into slot 1"), std::string::npos) << r.out;
  r = d.Ctl({"firmware", "info", "0", "--json"});
  info = json::parse(r.out);
  EXPECT_EQ(info["pending"], true);
  EXPECT_EQ(info["pending_slot"], 1);
  EXPECT_EQ(info["slots"][1]["version"], "waferfw-1.1.0");
  EXPECT_EQ(info["slots"][1]["size"], image.size());
  EXPECT_EQ(info["slots"][1]["state"], "boots at next reset");
  // An image already waits: no rollback on top of it.
  r = d.Ctl({"firmware", "rollback", "0", "--json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(json::parse(r.out)["code"], "FAILED_PRECONDITION");

  // The reset boots slot 1 on trial; it reaches ready and is confirmed.
  r = d.Ctl({"reset", "0", "--json"}, 90);
  ASSERT_EQ(r.code, 0) << r.out;
  r = d.Ctl({"firmware", "info", "0", "--json"});
  info = json::parse(r.out);
  EXPECT_EQ(info["active_slot"], 1) << info;
  EXPECT_EQ(info["trial"], false) << info;
  EXPECT_EQ(info["slots"][0]["state"], "valid") << info;

  // Rollback: slot 0 boots at the next reset, on trial, and stays.
  r = d.Ctl({"firmware", "rollback", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(json::parse(r.out)["detail"].get<std::string>().find("slot 0 boots"),
            std::string::npos);
  r = d.Ctl({"logs", "0", "--json"});
  bool requested = false;
  const json log = json::parse(r.out);
  for (const json& record : log["records"]) {
    requested = requested || record["code"] == "kRollbackRequested";
  }
  EXPECT_TRUE(requested) << r.out;
  r = d.Ctl({"reset", "0", "--json"}, 90);
  ASSERT_EQ(r.code, 0) << r.out;
  r = d.Ctl({"firmware", "info", "0"});
  EXPECT_NE(r.out.find("running from slot 0"), std::string::npos) << r.out;
  Stop(sim);
}

// Whether a line of `screen` starts with `prefix` and holds each of `parts`.
bool HasRow(const std::string& screen, const std::string& prefix,
            const std::vector<std::string>& parts) {
  std::istringstream in(screen);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) != 0) continue;
    if (std::all_of(parts.begin(), parts.end(),
                    [&](const std::string& p) { return line.find(p) != std::string::npos; })) {
      return true;
    }
  }
  return false;
}

// tmux on a server of this test's own (-L), so nothing of the user's is touched.
struct Tmux {
  std::string socket = "waferctl-top-" + std::to_string(getpid());
  std::string dir;
  int Run(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"tmux", "-L", socket};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProgram(argv, dir + "/tmux.log");
  }
  std::string Capture() const {
    RunProgram({"tmux", "-L", socket, "capture-pane", "-p", "-t", "top"}, dir + "/screen.txt");
    return ReadWholeFile(dir + "/screen.txt");
  }
  std::string PanePid() const {
    RunProgram({"tmux", "-L", socket, "display-message", "-p", "-t", "top", "#{pane_pid}"},
               dir + "/pid.txt");
    return ReadWholeFile(dir + "/pid.txt");
  }
};

TEST(WaferctlTopTest, LiveScreenInATerminalSurvivesADaemonRestartAndQuitsOnQ) {
  if (RunProgram({"tmux", "-V"}) != 0) GTEST_SKIP() << "tmux is not installed";
  TempDir dir;
  WaferdProcess d(dir.path());
  ASSERT_TRUE(d.Start()) << d.log();
  const pid_t submit = SubmitInBackground(d, dir.path(), 1, "team-a", 400);

  Tmux tmux;
  tmux.dir = dir.path();
  ASSERT_EQ(tmux.Run({"new-session", "-d", "-s", "top", "-x", "150", "-y", "40",
                      kBin + "/waferctl --admin-endpoint " + d.admin_endpoint() + " top"}),
            0);
  const std::string pane_pid_text = tmux.PanePid();
  const pid_t pane_pid = static_cast<pid_t>(std::atoi(pane_pid_text.c_str()));
  ASSERT_GT(pane_pid, 0) << pane_pid_text;
  auto cleanup = [&] {
    if (kill(pane_pid, 0) == 0) kill(pane_pid, SIGKILL);
    tmux.Run({"kill-server"});
  };

  // The screen: a board row, the model with its replica, the tenant with its running job.
  std::string screen;
  const bool drawn = WaitFor(
      [&] {
        screen = tmux.Capture();
        return screen.find("BOARD") != std::string::npos &&
               screen.find("0     ready") != std::string::npos &&
               HasRow(screen, "tiny ", {" ready ", "/4"}) && HasRow(screen, "team-a ", {}) &&
               screen.find(" tokens/s") != std::string::npos;
      },
      30);
  std::ofstream(dir.path() + "/top-screen.txt") << screen;
  EXPECT_TRUE(drawn) << screen;
  EXPECT_EQ(screen.find("reconnecting"), std::string::npos) << screen;

  // The daemon dies: top stays, says it is reconnecting, keeps the last figures.
  d.Kill();
  EXPECT_TRUE(WaitFor(
      [&] {
        screen = tmux.Capture();
        return screen.find("reconnecting: no waferd answering at " + d.admin_endpoint()) !=
               std::string::npos;
      },
      30))
      << screen;
  EXPECT_NE(screen.find("tiny"), std::string::npos) << screen;
  EXPECT_EQ(kill(pane_pid, 0), 0) << "top exited when the daemon went away";

  // It comes back: the banner goes, fresh figures come.
  ASSERT_TRUE(d.Start()) << d.log();
  EXPECT_TRUE(WaitFor(
      [&] {
        screen = tmux.Capture();
        return screen.find("reconnecting") == std::string::npos &&
               screen.find("0     ready") != std::string::npos &&
               screen.find("tiny") != std::string::npos;
      },
      30))
      << screen;

  // q quits: the pane's process ends and the terminal is left as it was (no alternate screen).
  tmux.Run({"send-keys", "-t", "top", "q"});
  EXPECT_TRUE(WaitFor([&] { return kill(pane_pid, 0) != 0; }, 10)) << tmux.Capture();
  cleanup();
  Stop(submit);
}

}  // namespace
}  // namespace wafer::testing

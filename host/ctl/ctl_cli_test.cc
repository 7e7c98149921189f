// waferctl's command line without a daemon: what each command line parses into, the usage
// errors (unknown commands with suggestions, values out of range), per-command help, the bash
// completion the parser generates (run in a real bash), and the line printed when no daemon
// answers.
#include "host/ctl/ctl_cli.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "host/ctl/ctl_commands.h"
#include "host/ctl/exit_codes.h"

namespace wafer::host {
namespace {

struct Parsed {
  std::optional<int> exit;
  CtlOptions options;
  std::string out, err;
};

Parsed Parse(const std::vector<std::string>& args) {
  Parsed p;
  std::ostringstream out, err;
  p.exit = ParseCommandLine(args, &p.options, out, err);
  p.out = out.str();
  p.err = err.str();
  return p;
}

struct Ran {
  int code;
  std::string out, err;
};

Ran RunCtl(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = RunWaferctl(args, CtlIo{out, err});
  return {code, out.str(), err.str()};
}

TEST(CtlCliTest, ParsesJobsListShowCancelAndTail) {
  Parsed p = Parse({"jobs"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.command, CtlCommand::kJobs);
  EXPECT_EQ(p.options.jobs.kind, JobsCommand::Kind::kList);
  EXPECT_EQ(p.options.jobs.list.state, JobStateFilter::kUnfinished);
  EXPECT_EQ(p.options.jobs.list.tenant, "");
  EXPECT_EQ(p.options.jobs.list.limit, kDefaultJobListLimit);

  p = Parse({"jobs", "list", "--tenant", "team-a", "--state", "all", "--limit", "10000", "--json"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.jobs.list.tenant, "team-a");
  EXPECT_EQ(p.options.jobs.list.state, JobStateFilter::kAll);
  EXPECT_EQ(p.options.jobs.list.limit, 10000u);
  EXPECT_TRUE(p.options.json);
  for (const auto& [word, filter] :
       std::vector<std::pair<std::string, JobStateFilter>>{{"queued", JobStateFilter::kQueued},
                                                           {"running", JobStateFilter::kRunning},
                                                           {"finished", JobStateFilter::kFinished},
                                                           {"unfinished",
                                                            JobStateFilter::kUnfinished}}) {
    p = Parse({"jobs", "--state", word});
    ASSERT_FALSE(p.exit) << word << ": " << p.err;
    EXPECT_EQ(p.options.jobs.list.state, filter) << word;
  }
  // Job ids are random 64-bit numbers: the largest parses.
  p = Parse({"jobs", "show", "18446744073709551615"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.jobs.kind, JobsCommand::Kind::kShow);
  EXPECT_EQ(p.options.jobs.job_id, 18446744073709551615ull);
  p = Parse({"jobs", "cancel", "42"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.jobs.kind, JobsCommand::Kind::kCancel);
  EXPECT_EQ(p.options.jobs.job_id, 42u);
  p = Parse({"jobs", "tail", "7", "--from", "3"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.command, CtlCommand::kJobsTail);
  EXPECT_EQ(p.options.job_id, 7u);
  EXPECT_EQ(p.options.from, 3u);
}

TEST(CtlCliTest, RefusesJobsWordsAndFlagsThatDoNotFit) {
  Parsed p = Parse({"jobs", "--state", "done"});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("--state"), std::string::npos) << p.err;
  for (const char* limit : {"0", "10001", "-1", "ten", ""}) {
    p = Parse({"jobs", "--limit", limit});
    EXPECT_EQ(p.exit, kExitUsage) << limit;
    EXPECT_NE(p.err.find("--limit"), std::string::npos) << limit << ": " << p.err;
  }
  EXPECT_EQ(Parse({"jobs", "--tenant", std::string(257, 't')}).exit, kExitUsage);
  EXPECT_EQ(Parse({"jobs", "show"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"jobs", "show", "0"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"jobs", "show", "18446744073709551616"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"jobs", "cancel", "12x"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"jobs", "cancel", "1", "2"}).exit, kExitUsage);
  p = Parse({"jobs", "cancel", "1", "--tenant", "a"});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("--tenant"), std::string::npos) << p.err;
  EXPECT_EQ(Parse({"jobs", "kill", "1"}).exit, kExitUsage);
}

TEST(CtlCliTest, UnknownCommandsAreNamedWithTheNearestOnes) {
  Parsed p = Parse({"frobnicate"});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("unknown command 'frobnicate'"), std::string::npos) << p.err;
  EXPECT_EQ(p.err.find("did you mean"), std::string::npos) << p.err;  // Nothing is near.
  EXPECT_NE(p.err.find("waferctl --help"), std::string::npos) << p.err;

  p = Parse({"stauts"});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("did you mean 'status'?"), std::string::npos) << p.err;

  // Global options and their values before the command are skipped over.
  p = Parse({"--admin-endpoint", "tcp://127.0.0.1:1", "--timeout-ms", "300", "helth"});
  EXPECT_NE(p.err.find("unknown command 'helth'; did you mean 'health'?"), std::string::npos)
      << p.err;

  p = Parse({"jobs", "lst"});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("unknown jobs command 'lst'; did you mean 'list'?"), std::string::npos)
      << p.err;
  p = Parse({"firmware", "rollbak", "0"});
  EXPECT_NE(p.err.find("unknown firmware command 'rollbak'; did you mean 'rollback'?"),
            std::string::npos)
      << p.err;

  EXPECT_EQ(SuggestCommands("stat", {"status", "start", "capacity"}),
            (std::vector<std::string>{"start", "status"}));
  EXPECT_TRUE(SuggestCommands("xyz", {"status", "top"}).empty());
}

TEST(CtlCliTest, NoCommandIsAUsageErrorWithTheHelp) {
  Parsed p = Parse({});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("a command is required"), std::string::npos);
  EXPECT_NE(p.err.find("status"), std::string::npos);  // The list of commands.
  p = Parse({"firmware"});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("info, update, rollback"), std::string::npos) << p.err;
}

TEST(CtlCliTest, EveryCommandHasItsOwnHelp) {
  Parsed p = Parse({"--help"});
  EXPECT_EQ(p.exit, kExitOk);
  for (const char* word : {"status", "submit", "load", "unload", "drain", "undrain", "reset",
                           "logs", "board", "fault", "capacity", "jobs", "model", "health",
                           "diag", "keys", "top", "firmware", "completion", "Exit codes",
                           "--admin-endpoint", "--timeout-ms"}) {
    EXPECT_NE(p.out.find(word), std::string::npos) << word << "\n" << p.out;
  }
  p = Parse({"diag", "--help"});
  EXPECT_EQ(p.exit, kExitOk);
  EXPECT_NE(p.out.find("waferctl diag"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("--level"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("--board"), std::string::npos) << p.out;
  EXPECT_EQ(p.out.find("--tenant"), std::string::npos) << p.out;  // Not diag's.
  p = Parse({"jobs", "tail", "--help"});
  EXPECT_EQ(p.exit, kExitOk);
  EXPECT_NE(p.out.find("waferctl jobs tail"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("--from"), std::string::npos) << p.out;
  p = Parse({"firmware", "update", "-h"});
  EXPECT_EQ(p.exit, kExitOk);
  EXPECT_NE(p.out.find("--signature"), std::string::npos) << p.out;
  // Help wins over a mistake elsewhere on the line.
  EXPECT_EQ(Parse({"top", "--interval-ms", "5", "--help"}).exit, kExitOk);
}

TEST(CtlCliTest, TypedOptionsWithRanges) {
  Parsed p = Parse({"diag", "-r", "4"});
  EXPECT_EQ(p.exit, kExitUsage);
  EXPECT_NE(p.err.find("--level"), std::string::npos) << p.err;
  EXPECT_NE(p.err.find("waferctl diag --help"), std::string::npos) << p.err;
  EXPECT_EQ(Parse({"diag"}).exit, kExitUsage);  // -r is required.
  p = Parse({"diag", "-r", "2", "--board", "1"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.level, 2u);
  EXPECT_EQ(p.options.board, 1u);
  EXPECT_EQ(Parse({"--timeout-ms", "0", "status"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"top", "--interval-ms", "5"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"reset", "one"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"reset"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"fault", "0", "meteor"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"drain", "--evacuate"}).exit, kExitUsage);  // Needs --board.
  EXPECT_EQ(Parse({"undrain"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"health", "1", "--clear", "1"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"submit", "--prompt", "x"}).exit, kExitUsage);  // --model is required.
  EXPECT_EQ(Parse({"submit", "--model", "m", "--tokens", "1,x"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"submit", "--model", "m", "--top-p", "1.5"}).exit, kExitUsage);
  EXPECT_EQ(Parse({"completion", "fish"}).exit, kExitUsage);

  p = Parse({"load", "/m", "--board", "0,1,2", "--slots", "8"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.boards, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_EQ(p.options.slots, 8u);
  p = Parse({"load", "/m"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.boards, (std::vector<uint32_t>{0}));
  p = Parse({"submit", "--model", "m", "--tokens", "1,2,3", "--max-tokens", "5"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.submit.tokens, (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(p.options.submit.max_tokens, 5u);
  p = Parse({"health", "--clear", "3"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.command, CtlCommand::kHealthClear);
  EXPECT_EQ(p.options.board, 3u);
  p = Parse({"model", "plan", "--config", "c.json", "--preset", "mini", "--fabric", "300x400"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.plan.fabric_width, 300u);
  EXPECT_EQ(p.options.plan.fabric_height, 400u);
}

TEST(CtlCliTest, GlobalOptionsGoBeforeOrAfterTheCommand) {
  Parsed p = Parse({"status", "--admin-endpoint", "ipc:///tmp/x", "--json", "--timeout-ms", "9"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.command, CtlCommand::kStatus);
  EXPECT_EQ(p.options.admin_endpoint, "ipc:///tmp/x");
  EXPECT_EQ(p.options.timeout_ms, 9u);
  EXPECT_TRUE(p.options.json);
  p = Parse({"--json", "--endpoint", "tcp://h:1", "capacity"});
  ASSERT_FALSE(p.exit) << p.err;
  EXPECT_EQ(p.options.command, CtlCommand::kCapacity);
  EXPECT_EQ(p.options.job_endpoint, "tcp://h:1");
  EXPECT_TRUE(p.options.json);
  EXPECT_EQ(p.options.admin_endpoint, kDefaultAdminEndpoint);
}

// A loopback TCP port nothing listens on (bound, then closed).
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(CtlCliTest, NoDaemonAnsweringSaysWhereAndHowLongOnOneLine) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(UnusedPort());
  Ran r = RunCtl({"--admin-endpoint", endpoint, "--timeout-ms", "200", "status"});
  EXPECT_EQ(r.code, kExitUnreachable);
  EXPECT_EQ(r.err, "waferctl: no waferd answering at " + endpoint +
                       ": nothing answered within 0.2 s (is waferd running there? a CURVE "
                       "daemon answers only listed client keys)\n");
  EXPECT_EQ(r.err.find("DEADLINE_EXCEEDED"), std::string::npos);
  // The same for the other admin commands, and as JSON.
  for (const std::vector<std::string>& command :
       std::vector<std::vector<std::string>>{{"health"}, {"jobs"}, {"firmware", "info", "0"},
                                             {"jobs", "tail", "5"}, {"diag", "-r", "1"}}) {
    std::vector<std::string> args = {"--admin-endpoint", endpoint, "--timeout-ms", "200"};
    args.insert(args.end(), command.begin(), command.end());
    r = RunCtl(args);
    EXPECT_EQ(r.code, kExitUnreachable) << command[0];
    EXPECT_NE(r.err.find("no waferd answering at " + endpoint), std::string::npos) << r.err;
    args.push_back("--json");
    r = RunCtl(args);
    EXPECT_EQ(r.code, kExitUnreachable) << command[0];
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["ok"], false);
    EXPECT_NE(j["detail"].get<std::string>().find(endpoint), std::string::npos);
  }
  r = RunCtl({"--admin-endpoint", "nonsense", "status"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("bad endpoint 'nonsense'"), std::string::npos) << r.err;
}

// Runs `script` in a real bash with the completion loaded; returns what it printed.
std::string Bash(const std::string& script) {
  const std::string dir = ::testing::TempDir();
  const std::string base = dir + "/waferctl_completion." + std::to_string(getpid());
  std::ofstream(base + ".bash") << BashCompletionScript();
  std::ofstream(base + ".sh") << "source " << base << ".bash\n" << script;
  const std::string command = "bash " + base + ".sh 2>&1";
  std::string output;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
    pclose(pipe);
  }
  std::remove((base + ".bash").c_str());
  std::remove((base + ".sh").c_str());
  return output;
}

// What completing the last of `words` offers.
std::string Complete(const std::vector<std::string>& words) {
  std::string array;
  for (const std::string& w : words) array += "'" + w + "' ";
  return Bash("COMP_WORDS=(" + array + ")\nCOMP_CWORD=" + std::to_string(words.size() - 1) +
              "\n_waferctl\necho \"${COMPREPLY[*]}\"\n");
}

TEST(CtlCliTest, BashCompletionComesFromTheParser) {
  const std::string script = BashCompletionScript();
  EXPECT_NE(script.find("complete -F _waferctl waferctl"), std::string::npos);
  EXPECT_EQ(Bash("complete -p waferctl\n"), "complete -F _waferctl waferctl\n");
  EXPECT_EQ(Complete({"waferctl", "jo"}), "jobs\n");
  EXPECT_EQ(Complete({"waferctl", "fi"}), "firmware\n");
  const std::string jobs = Complete({"waferctl", "jobs", ""});
  for (const char* word : {"list", "show", "cancel", "tail", "--state", "--json"}) {
    EXPECT_NE(jobs.find(word), std::string::npos) << word << ": " << jobs;
  }
  EXPECT_EQ(Complete({"waferctl", "jobs", "--state", "r"}), "running\n");
  // Global options and their values are skipped while finding the command.
  EXPECT_EQ(Complete({"waferctl", "--admin-endpoint", "tcp://h:1", "firmware", "r"}),
            "rollback\n");
  EXPECT_EQ(Complete({"waferctl", "fault", "thermal_r"}), "thermal_runaway\n");
  EXPECT_EQ(Complete({"waferctl", "diag", "--l"}), "--level\n");
  EXPECT_EQ(Complete({"waferctl", "completion", ""}), "bash\n");
  // `waferctl completion bash` prints exactly this script.
  Ran r = RunCtl({"completion", "bash"});
  EXPECT_EQ(r.code, kExitOk);
  EXPECT_EQ(r.out, script);
}

}  // namespace
}  // namespace wafer::host

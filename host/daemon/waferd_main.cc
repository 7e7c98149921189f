// waferd: the host daemon. With no arguments it starts an embedded simulated board and serves
// on the default loopback endpoints, which waferctl reaches without flags.
//
//   waferd [--config FILE] [--print-default-config] [--log-level LEVEL] [--log-format text|json]
//
// Logs go to stderr through common/log: --log-level trace|debug|info|warn|error|off (default
// info), --log-format text (default) or json (one object per line).
//
// SIGTERM or SIGINT drains: new jobs are refused, accepted ones finish (up to drain_timeout_ms;
// what is unfinished then stays in the job store for the next start), then it exits 0.
// Exit codes: 0 clean shutdown, 2 usage or configuration error, 3 startup failure (an endpoint
// taken, a job store that is damaged, from a newer waferd or in use by another).
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "board_sim/board_runner.h"
#include "common/log/log.h"
#include "host/config/daemon_config.h"
#include "host/daemon/daemon.h"
#include "host/frontend/access.h"

namespace {

wafer::host::Daemon* g_daemon = nullptr;

void OnSignal(int) {
  if (g_daemon != nullptr) g_daemon->RequestStop();  // Async-signal-safe: writes an eventfd.
}

void OnHangup(int) {
  if (g_daemon != nullptr) g_daemon->RequestReload();  // Async-signal-safe: writes an eventfd.
}

int Usage(FILE* out) {
  std::fputs("usage: waferd [--config FILE] [--print-default-config]\n"
             "              [--log-level trace|debug|info|warn|error|off] [--log-format text|json]\n"
             "  Logs go to stderr: --log-level (default info), --log-format (default text; json\n"
             "  writes one object per line with ts, level, component and msg).\n"
             "  Accepted jobs are kept in the job store (store.path; default\n"
             "  $XDG_STATE_HOME/waferd/jobs.db, else ~/.local/state/waferd/jobs.db) and survive\n"
             "  a crash or restart: clients resume their streams with ResumeStream.\n"
             "  SIGTERM/SIGINT: drain and exit (unfinished jobs stay in the store);\n"
             "  SIGHUP: re-read security.clients from FILE\n"
             "  exit codes: 0 clean shutdown, 2 usage or configuration error, 3 startup failure\n",
             out);
  return out == stdout ? 0 : 2;
}

// A usage error, printed before the logger is configured: the flag, what was wrong with its
// value and the values it accepts (in `error`), then the usage text. Returns 2.
int BadFlagValue(const char* flag, const wafer::Error& error) {
  std::fprintf(stderr, "waferd: %s: %s\n", flag, error.message.c_str());
  return Usage(stderr);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wafer;
  std::string config_path;
  log::Options log_options;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--print-default-config") == 0) {
      std::fputs(host::DefaultConfigYaml().c_str(), stdout);
      return 0;
    } else if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config_path = argv[++i];
    } else if (std::strcmp(argv[i], "--help") == 0) {
      return Usage(stdout);
    } else if (std::strcmp(argv[i], "--log-level") == 0) {
      auto level = log::ParseLevel(i + 1 < argc ? argv[++i] : "");
      if (!level.ok()) return BadFlagValue("--log-level", level.error());
      log_options.level = *level;
    } else if (std::strcmp(argv[i], "--log-format") == 0) {
      auto format = log::ParseFormat(i + 1 < argc ? argv[++i] : "");
      if (!format.ok()) return BadFlagValue("--log-format", format.error());
      log_options.format = *format;
    } else {
      std::fprintf(stderr, "waferd: unknown argument '%s'\n", argv[i]);
      return Usage(stderr);
    }
  }
  log::Configure(log_options);
  HostResult<host::DaemonConfig> loaded = host::DaemonConfig{};
  if (!config_path.empty()) loaded = host::LoadDaemonConfig(config_path);
  if (!loaded.ok()) {
    log::Error("daemon", "config error: {}", loaded.error().message);
    return 2;
  }
  const host::DaemonConfig config = std::move(loaded).value();

  zmq::context_t context(2);
  // Embedded boards first: the daemon's board workers connect to them over inproc://.
  std::vector<std::unique_ptr<sim::EmbeddedBoard>> embedded;
  for (size_t i = 0; i < config.boards.size(); ++i) {
    const host::BoardConfig& b = config.boards[i];
    if (!b.embedded()) continue;
    sim::BoardOptions options;
    options.preset = b.preset;
    options.board_id = "sim-" + std::to_string(i);
    options.seed = b.seed;
    options.realtime = b.pacing == "realtime";
    auto board = sim::StartEmbeddedBoard(context, b.endpoint, options);
    if (!board.ok()) {
      log::Error(log::BoardComponent(static_cast<uint32_t>(i)),
                 "cannot start the embedded board on {}: {}", b.endpoint,
                 board.error().message);
      return 3;
    }
    embedded.push_back(std::move(board).value());
  }

  // The daemon's own CURVE pair also authenticates it to wafer-sim boards that have keys.
  std::string secret_key;
  if (config.security.curve()) {
    auto key = host::ReadSecretKeyFile(config.security.server_secret_key_file);
    if (!key.ok()) {
      log::Error("daemon", "{}", key.error().message);
      return 2;
    }
    secret_key = *key;
  }
  HostResult<std::unique_ptr<host::Daemon>> created =
      host::Daemon::Create(context, config, SystemClock::Get(),
                           host::ZmqBoardLinkFactory(context, SystemClock::Get(), secret_key));
  if (!created.ok()) {
    log::Error("daemon", "{}", created.error().message);
    return 3;
  }
  std::unique_ptr<host::Daemon> daemon = std::move(created).value();
  g_daemon = daemon.get();
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // SIGHUP re-reads security.clients from the config file (nothing else is reloaded).
  if (!config_path.empty()) {
    daemon->set_config_source([config_path] { return host::LoadDaemonConfig(config_path); });
  }
  struct sigaction hangup {};
  hangup.sa_handler = OnHangup;
  sigemptyset(&hangup.sa_mask);
  sigaction(SIGHUP, &hangup, nullptr);

  log::Info("daemon", "waferd {}: jobs on {}, admin on {}, metrics on {}, {} board(s)",
            host::kWaferdVersion, daemon->job_endpoint(), daemon->admin_endpoint(),
            config.metrics_address.empty()
                ? std::string("(disabled)")
                : "http://127.0.0.1:" + std::to_string(daemon->metrics_port()) + "/metrics",
            config.boards.size());
  daemon->Run();
  g_daemon = nullptr;
  daemon.reset();
  embedded.clear();
  log::Info("daemon", "drained, exiting");
  return 0;
}

// waferd: the host daemon. With no arguments it starts an embedded simulated board and serves
// on the default loopback endpoints, which waferctl reaches without flags.
//
//   waferd [--config FILE] [--print-default-config]
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
             "  Accepted jobs are kept in the job store (store.path; default\n"
             "  $XDG_STATE_HOME/waferd/jobs.db, else ~/.local/state/waferd/jobs.db) and survive\n"
             "  a crash or restart: clients resume their streams with ResumeStream.\n"
             "  SIGTERM/SIGINT: drain and exit (unfinished jobs stay in the store);\n"
             "  SIGHUP: re-read security.clients from FILE\n"
             "  exit codes: 0 clean shutdown, 2 usage or configuration error, 3 startup failure\n",
             out);
  return out == stdout ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wafer;
  std::string config_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--print-default-config") == 0) {
      std::fputs(host::DefaultConfigYaml().c_str(), stdout);
      return 0;
    } else if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config_path = argv[++i];
    } else if (std::strcmp(argv[i], "--help") == 0) {
      return Usage(stdout);
    } else {
      std::fprintf(stderr, "waferd: unknown argument '%s'\n", argv[i]);
      return Usage(stderr);
    }
  }
  host::DaemonConfig config;
  std::string detail;
  if (!config_path.empty() && !host::LoadDaemonConfig(config_path, &config, &detail).ok()) {
    std::fprintf(stderr, "waferd: config error: %s\n", detail.c_str());
    return 2;
  }

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
    std::string error;
    auto board = sim::StartEmbeddedBoard(context, b.endpoint, options, &error);
    if (!board.ok()) {
      std::fprintf(stderr, "waferd: cannot start embedded board %zu on %s: %s\n", i,
                   b.endpoint.c_str(), error.c_str());
      return 3;
    }
    embedded.push_back(std::move(board).value());
  }

  // The daemon's own CURVE pair also authenticates it to wafer-sim boards that have keys.
  std::string secret_key;
  if (config.security.curve()) {
    auto key = host::ReadSecretKeyFile(config.security.server_secret_key_file, &detail);
    if (!key.ok()) {
      std::fprintf(stderr, "waferd: %s\n", detail.c_str());
      return 2;
    }
    secret_key = *key;
  }
  std::unique_ptr<host::Daemon> daemon;
  if (!host::Daemon::Create(context, config, SystemClock::Get(),
                            host::ZmqBoardLinkFactory(context, SystemClock::Get(), secret_key),
                            &daemon, &detail)
           .ok()) {
    std::fprintf(stderr, "waferd: %s\n", detail.c_str());
    return 3;
  }
  g_daemon = daemon.get();
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  // SIGHUP re-reads security.clients from the config file (nothing else is reloaded).
  if (!config_path.empty()) {
    daemon->set_config_source([config_path](host::DaemonConfig* config, std::string* detail) {
      return host::LoadDaemonConfig(config_path, config, detail);
    });
  }
  struct sigaction hangup {};
  hangup.sa_handler = OnHangup;
  sigemptyset(&hangup.sa_mask);
  sigaction(SIGHUP, &hangup, nullptr);

  std::fprintf(stderr, "waferd %s: jobs on %s, admin on %s, metrics on %s, %zu board(s)\n",
               host::kWaferdVersion, daemon->job_endpoint().c_str(),
               daemon->admin_endpoint().c_str(),
               config.metrics_address.empty()
                   ? "(disabled)"
                   : ("http://127.0.0.1:" + std::to_string(daemon->metrics_port()) + "/metrics").c_str(),
               config.boards.size());
  daemon->Run();
  g_daemon = nullptr;
  daemon.reset();
  embedded.clear();
  std::fprintf(stderr, "waferd: drained, exiting\n");
  return 0;
}

// wafer-sim: a simulated board in its own process, so a board crash cannot take waferd down.
//
//   wafer-sim --endpoint ipc:///tmp/board0.sock|tcp://127.0.0.1:5600 [--preset mini|PATH.yaml]
//             [--preset-dir DIR] [--seed N] [--board-id NAME] [--firmware-key HEX]
//             [--factory-signature HEX] [--pacing realtime|fast]
//             [--curve-secret-key FILE --curve-host-key Z85]
//             [--log-level trace|debug|info|warn|error|off] [--log-format text|json]
//
// --firmware-key is the Ed25519 public key (64 hex digits) firmware images must be signed with;
// without it the board refuses every image and boots its unsigned factory image after a CRC
// check. --factory-signature (128 hex digits, needs --firmware-key) is manufacture's Ed25519
// signature of the factory image, the 28 bytes "waferfw-1.0.0 factory image\n": a board with a
// key boots its factory image only when this verifies (otherwise its first Boot faults, and only
// a signed image installed through the firmware update brings it up).
//
// Prints "wafer-sim: serving <endpoint>" on stdout once bound (the line a parent process waits
// for); SIGTERM or SIGINT exits cleanly (status 0). Logs go to stderr through common/log, at
// --log-level (default info) as --log-format text (default) or json (one object per line).
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <zmq.hpp>

#include "board_sim/board_runner.h"
#include "common/log/log.h"

namespace {

int Usage(const char* why) {
  std::fprintf(stderr,
               "wafer-sim: %s\nusage: wafer-sim --endpoint ENDPOINT [--preset NAME|PATH] "
               "[--preset-dir DIR] [--seed N] [--board-id NAME] [--firmware-key HEX] "
               "[--factory-signature HEX] [--pacing realtime|fast]\n"
               "                 [--curve-secret-key FILE --curve-host-key Z85]  (CURVE: this "
               "board's secret key file, the one host public key it admits)\n"
               "                 [--log-level trace|debug|info|warn|error|off] "
               "[--log-format text|json]  (logs on stderr; default info, text)\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint;
  wafer::sim::BoardOptions options;
  wafer::log::Options log_options;
  options.allow_process_crash = true;  // A crash takes down this process only.
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      Usage("a simulated wafer-scale board");
      return 0;
    }
    if (i + 1 >= argc) return Usage(("missing value for " + flag).c_str());
    const std::string value = argv[++i];
    if (flag == "--endpoint") {
      endpoint = value;
    } else if (flag == "--preset") {
      options.preset = value;
    } else if (flag == "--pacing") {
      if (value != "realtime" && value != "fast") return Usage("--pacing wants realtime or fast");
      options.realtime = value == "realtime";
    } else if (flag == "--curve-secret-key") {
      std::ifstream in(value);
      std::getline(in, options.curve_secret_key);
      if (options.curve_secret_key.size() != 40) {
        return Usage("--curve-secret-key wants a file holding a 40-character Z85 key");
      }
    } else if (flag == "--curve-host-key") {
      if (value.size() != 40) return Usage("--curve-host-key wants a 40-character Z85 key");
      options.curve_host_public_key = value;
    } else if (flag == "--preset-dir") {
      options.preset_dir = value;
    } else if (flag == "--board-id") {
      options.board_id = value;
    } else if (flag == "--firmware-key") {
      auto key = wafer::sim::ParseFirmwarePublicKey(value);
      if (!key.ok()) return Usage("--firmware-key wants 64 hex digits (an Ed25519 public key)");
      options.firmware_public_key = *key;
    } else if (flag == "--factory-signature") {
      auto sig = wafer::sim::ParseFirmwareSignature(value);
      if (!sig.ok()) {
        return Usage("--factory-signature wants 128 hex digits (an Ed25519 signature)");
      }
      options.factory_image_signature = *sig;
    } else if (flag == "--log-level") {
      auto level = wafer::log::ParseLevel(value);
      if (!level.ok()) return Usage(("--log-level: " + level.error().message).c_str());
      log_options.level = *level;
    } else if (flag == "--log-format") {
      auto format = wafer::log::ParseFormat(value);
      if (!format.ok()) return Usage(("--log-format: " + format.error().message).c_str());
      log_options.format = *format;
    } else if (flag == "--seed") {
      char* end = nullptr;
      options.seed = std::strtoull(value.c_str(), &end, 10);
      if (end == value.c_str() || *end != '\0') return Usage("--seed wants an unsigned integer");
    } else {
      return Usage(("unknown flag " + flag).c_str());
    }
  }
  if (endpoint.empty()) return Usage("--endpoint is required");
  if (options.curve_secret_key.empty() != options.curve_host_public_key.empty()) {
    return Usage("CURVE needs both --curve-secret-key and --curve-host-key");
  }
  wafer::log::Configure(log_options);

  // A closed stdout (the parent stopped reading) must not kill the board.
  std::signal(SIGPIPE, SIG_IGN);
  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  {
    zmq::context_t context(1);
    auto board = wafer::sim::StartEmbeddedBoard(context, endpoint, options);
    if (!board.ok()) {
      wafer::log::Error("sim", "{} ({})", board.error().message, board.status().name());
      return 1;
    }
    std::printf("wafer-sim: serving %s (board %s, preset %s, seed %llu)\n",
                (*board)->endpoint().c_str(), options.board_id.c_str(), options.preset.c_str(),
                static_cast<unsigned long long>(options.seed));
    std::fflush(stdout);
    wafer::log::Info("sim", "serving {} (board {}, preset {}, seed {})", (*board)->endpoint(),
                     options.board_id, options.preset, options.seed);
    int sig = 0;
    sigwait(&stop_signals, &sig);
    wafer::log::Info("sim", "signal {}, stopping", sig);
  }  // The board thread stops and joins; then the context closes (linger 0).
  return 0;
}

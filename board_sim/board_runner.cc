#include "board_sim/board_runner.h"

#include <atomic>
#include <cstdlib>
#include <future>
#include <thread>

#include "board_sim/sim_firmware_flash.h"
#include "board_sim/sodium_signature_verifier.h"
#include "board_sim/zmq_host_port.h"
#include "board_sim/zmq_stage_link.h"
#include "common/net/curve.h"
#include "common/net/socket.h"
#include "firmware/link/firmware_loop.h"

namespace wafer::sim {
namespace {

constexpr int64_t kPollSliceNs = 50'000'000;  // How long a stop request can go unnoticed.

// Not thread-safe to share; the board thread owns the socket, the wafer and the firmware.
class BoardThread final : public EmbeddedBoard {
 public:
  BoardThread(zmq::context_t& context, std::string endpoint, wafer_model::Preset preset,
              BoardOptions options)
      : context_(context),
        endpoint_(std::move(endpoint)),
        preset_(std::move(preset)),
        options_(std::move(options)) {}

  ~BoardThread() override {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  // Starts the thread and waits until the socket is bound (or failed to bind: UNAVAILABLE, the
  // message naming the endpoint and libzmq's reason).
  HostStatus Start() {
    std::future<std::string> bound = bound_.get_future();
    thread_ = std::thread([this] { Run(); });
    std::string failure = bound.get();
    if (failure.empty()) return HostOk();
    thread_.join();
    return Error{StatusCode::kUnavailable, std::move(failure)};
  }

  const std::string& endpoint() const override { return endpoint_; }

 private:
  void Run() {
    net::SocketOptions socket_options;
    if (!options_.curve_secret_key.empty()) {
      // The ZAP handler first: a CURVE socket bound without one accepts any client.
      const std::string host = options_.curve_host_public_key;
      auto zap = net::ZapHandler::Start(
          context_,
          [host](const std::string&, const std::string& key) -> std::optional<std::string> {
            if (key == host) return std::string("host");
            return std::nullopt;
          });
      if (!zap.ok()) {
        bound_.set_value(zap.error().message);
        return;
      }
      zap_ = std::move(zap).value();
      socket_options.curve_secret_key = options_.curve_secret_key;
      socket_options.zap_domain = "wafer-sim";
    }
    auto bound = net::Socket::Bind(context_, net::SocketType::kRouter, endpoint_, socket_options);
    if (!bound.ok()) {
      const std::string& detail = bound.error().message;
      bound_.set_value(detail.empty() ? "cannot bind " + endpoint_ : detail);  // Never "": OK.
      return;
    }
    net::Socket& socket = **bound;
    endpoint_ = socket.last_endpoint();  // Resolves tcp://...:* ports.
    const Clock& sensor_clock = options_.clock != nullptr ? *options_.clock : SystemClock::Get();
    SimFirmwareFlash flash;  // Manufacture: the factory image in slot 0, signed if we can.
    if (options_.factory_image_signature.has_value()) {
      flash.ProvisionFactoryImage(SimFirmwareFlash::factory_image(),
                                  &*options_.factory_image_signature)
          .IgnoreError();  // Fits: the default slots are megabytes.
    }
    SodiumSignatureVerifier verifier(options_.firmware_public_key);
    SimWaferOptions wafer_options;
    wafer_options.board_id = options_.board_id;
    wafer_options.seed = options_.seed;
    wafer_options.faults = options_.faults;
    wafer_options.realtime = options_.realtime;
    wafer_options.firmware = &flash;
    if (options_.allow_process_crash) {
      // wafer-sim only: die like a crashed process, without unwinding or flushing anything.
      wafer_options.crash = [] { std::_Exit(kCrashExitCode); };
    }
    SimWafer wafer(preset_, sensor_clock, std::move(wafer_options));
    SystemClock& clock = SystemClock::Get();
    ZmqHostPort port(socket, clock);
    // The inter-wafer links to next stages: clients of those boards' link endpoints, in this
    // board's context (an embedded board reaches the other embedded boards' inproc:// ones).
    ZmqStageLink stage_link(context_);
    // Init: the firmware's fixed buffers are allocated once, here. Its error log is stamped with
    // the same clock as the sensors, so a test's FakeClock drives both.
    auto firmware = std::make_unique<fw::FirmwareLoop>(
        port, fw::Platform{wafer, flash, verifier, sensor_clock}, &stage_link);
    for (const fw::hal::FaultSpec& f : options_.faults.faults) {
      if (f.kind != fw::hal::FaultKind::kFirmwareHang) continue;
      fw::Command hang;  // The plan's hang, applied as InjectFault would.
      hang.kind = fw::CommandKind::kInjectFault;
      hang.fault = f;
      auto ignored = std::make_unique<fw::Reply>();
      firmware->processor().Handle(hang, *ignored);
    }
    bound_.set_value("");
    while (!stop_.load()) {
      if (!firmware->PollOnce(clock.NowNanos() + kPollSliceNs).ok()) break;
    }
  }

  zmq::context_t& context_;
  std::string endpoint_;
  wafer_model::Preset preset_;
  BoardOptions options_;
  std::promise<std::string> bound_;
  std::unique_ptr<net::ZapHandler> zap_;  // CURVE only; outlives the socket (Run's).
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

HostResult<std::unique_ptr<EmbeddedBoard>> StartEmbeddedBoard(zmq::context_t& context,
                                                              const std::string& endpoint,
                                                              const BoardOptions& options) {
  if (options.factory_image_signature.has_value() && !options.firmware_public_key.has_value()) {
    // A board without a key cannot check the trailer it would find, and would never boot.
    return Error{StatusCode::kInvalidArgument,
                 "a factory image signature needs a firmware public key"};
  }
  HostResult<wafer_model::Preset> preset =
      wafer_model::LoadPreset(options.preset, options.preset_dir);
  if (!preset.ok()) return std::move(preset).error();
  auto board = std::make_unique<BoardThread>(context, endpoint, std::move(preset).value(), options);
  WAFER_HOST_RETURN_IF_ERROR(board->Start());
  return std::unique_ptr<EmbeddedBoard>(std::move(board));
}

}  // namespace wafer::sim

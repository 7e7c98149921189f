// Runs a simulated board (firmware superloop + SimWafer) on its own thread, serving the board
// link on a ZeroMQ ROUTER. Used by waferd for an embedded board (inproc://) and by wafer-sim.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "board_sim/sim_firmware_flash.h"
#include "board_sim/sim_wafer.h"
#include "board_sim/sodium_signature_verifier.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/result.h"

namespace wafer::sim {

struct BoardOptions {
  std::string preset = "mini";  // A name in preset_dir, or a path to a .yaml file.
  std::string preset_dir;       // Empty: the source tree's wafer_model/presets.
  std::string board_id = "sim-0";
  uint64_t seed = 0;  // See SimWaferOptions::seed.
  FaultPlan faults;
  const Clock* clock = nullptr;  // Drives sensors; nullptr: SystemClock. Must outlive the board.
  // The Ed25519 key firmware images must be signed with (the board's fused key). Without one the
  // board refuses every image, and boots its unsigned factory image after a CRC check only.
  std::optional<FirmwarePublicKey> firmware_public_key;
  // Manufacture's Ed25519 signature of the factory image (SimFirmwareFlash::factory_image()) by
  // firmware_public_key's key: slot 0 then carries it in a signature trailer. A board that trusts
  // a key boots its factory image only when this verifies; without it (or with a wrong one) the
  // first Boot faults with kImageSignatureInvalid logged, and only an image installed through the
  // firmware update brings the board up. Requires firmware_public_key.
  std::optional<FirmwareSignature> factory_image_signature;
  // wafer-sim sets this: an injected kProcessCrash then exits the process at once with
  // kCrashExitCode. An embedded board (inside waferd) refuses kProcessCrash.
  bool allow_process_crash = false;
  // See SimWaferOptions::realtime.
  bool realtime = false;
  // CURVE on the board's link (ipc:// and tcp://): the board's secret key and the one host
  // public key it admits (both Z85). Empty: plaintext.
  std::string curve_secret_key;
  std::string curve_host_public_key;
};

inline constexpr int kCrashExitCode = 70;

// Owns the board thread. Destruction stops the superloop and joins (within ~50 ms).
class EmbeddedBoard {
 public:
  virtual ~EmbeddedBoard() = default;
  virtual const std::string& endpoint() const = 0;
};

// Loads the preset, binds a ROUTER on `endpoint` (inproc://, ipc:// or tcp://) in `context`, and
// starts serving. Returns when bound.
// Returns:
//   OK                           - the board, serving.
//   INVALID_ARGUMENT / NOT_FOUND - the preset is bad or missing (the message names the key or
//                                  file), or INVALID_ARGUMENT: a factory_image_signature without
//                                  a firmware_public_key.
//   UNAVAILABLE                  - the endpoint could not be bound (the message says why).
HostResult<std::unique_ptr<EmbeddedBoard>> StartEmbeddedBoard(zmq::context_t& context,
                                                              const std::string& endpoint,
                                                              const BoardOptions& options);

}  // namespace wafer::sim

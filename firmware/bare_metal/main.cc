// The board controller's firmware image: builds the HAL port's devices and the firmware loop
// once, in static storage (no heap), then runs the superloop forever.
#include <cstddef>
#include <new>

#include "firmware/bare_metal/board_clock.h"
#include "firmware/bare_metal/board_firmware_flash.h"
#include "firmware/bare_metal/board_host_port.h"
#include "firmware/bare_metal/board_map.h"
#include "firmware/bare_metal/board_signature_verifier.h"
#include "firmware/bare_metal/board_stage_link.h"
#include "firmware/bare_metal/board_wafer.h"
#include "firmware/link/firmware_loop.h"

namespace wafer::fw::board {
namespace {

// Room for one T, constructed in main and never destroyed (main never returns), so no static
// constructor or destructor registration is needed.
template <typename T>
struct Storage {
  alignas(T) std::byte bytes[sizeof(T)];
  template <typename... Args>
  T& Construct(Args&&... args) {
    return *::new (bytes) T(static_cast<Args&&>(args)...);
  }
};

Storage<BoardClock> clock_storage;
Storage<BoardWafer> wafer_storage;
Storage<BoardFirmwareFlash> flash_storage;
Storage<BoardSignatureVerifier> verifier_storage;
Storage<BoardHostPort> host_port_storage;
Storage<BoardStageLink> stage_link_storage;
// The loop's buffers (frames, arenas, a step's tokens and hidden states) live in SDRAM.
static_assert(sizeof(FirmwareLoop) <= kSdramFirmwareBytes, "the firmware loop must fit SDRAM");
__attribute__((section(".sdram_bss"))) Storage<FirmwareLoop> loop_storage;

// How long one PollOnce waits for a frame before running the idle health checks.
constexpr int64_t kPollPeriodNs = 1'000'000;

}  // namespace
}  // namespace wafer::fw::board

int main() {
  using namespace wafer::fw::board;
  BoardClock& clock = clock_storage.Construct();
  BoardWafer& wafer = wafer_storage.Construct();
  BoardFirmwareFlash& flash = flash_storage.Construct();
  BoardSignatureVerifier& verifier = verifier_storage.Construct();
  BoardHostPort& host_port = host_port_storage.Construct(clock);
  BoardStageLink& stage_link = stage_link_storage.Construct(clock);
  host_port.Init();
  stage_link.Init();
  // A wafer that does not answer yet still gets a firmware that answers the host: Identify
  // reports what is known, and Boot's self-test fails with a typed reply.
  wafer.Init().IgnoreError();
  const wafer::fw::Platform platform{wafer, flash, verifier, clock};
  wafer::fw::FirmwareLoop& loop = loop_storage.Construct(host_port, platform, &stage_link);
  for (;;) {
    // UNAVAILABLE (the host link is down) is retried: the link may come back.
    loop.PollOnce(clock.NowNanos() + kPollPeriodNs).IgnoreError();
  }
}

// The board controller's memory map and register maps: the one place that names its addresses.
//
// HARDWARE.md describes the wafer, not the board controller that runs this firmware, so this
// header defines the controller: a Cortex-M4F microcontroller with 2 MiB of on-chip NOR flash,
// 256 KiB of on-chip SRAM and 64 MiB of SDRAM behind its memory controller, a 64-bit timer,
// an Ed25519 accelerator with the board's key in OTP fuses, and DMA channels to the host link,
// to the inter-wafer links and to the wafer's management core. Each DMA channel moves whole
// frames between the wire and a window of SDRAM and is driven through a register block; the
// wafer's management core takes commands through a mailbox (a request window, a response
// window and a doorbell). The linker script (board_controller.ld) uses the same numbers.
//
// Access types: RO read-only, WO write-only, RW read-write; each register is 32 bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "firmware/bare_metal/register_bus.h"

namespace wafer::fw::board {

// ---- Memory. ----

// The boot ROM (in the first 64 KiB of flash) maps the active firmware slot at 0 before it
// jumps to its reset vector (BootState kRemap), so every image is linked for address 0.
inline constexpr uintptr_t kExecWindowBase = 0x0000'0000;
inline constexpr uintptr_t kFlashBase = 0x0800'0000;
inline constexpr size_t kFlashBytes = 2u << 20;
inline constexpr size_t kFlashSectorBytes = 64u << 10;
inline constexpr uintptr_t kSlotBase[2] = {0x0801'0000, 0x0810'0000};
inline constexpr size_t kSlotBytes = 960u << 10;  // 15 sectors each.
inline constexpr uintptr_t kBootControlBase = 0x081F'0000;  // One sector.
static_assert(kBootControlBase + kFlashSectorBytes == kFlashBase + kFlashBytes);

inline constexpr uintptr_t kSramBase = 0x2000'0000;
inline constexpr size_t kSramBytes = 256u << 10;

inline constexpr uintptr_t kSdramBase = 0x6000'0000;
inline constexpr size_t kSdramBytes = 64u << 20;
// The firmware's large buffers (the linker's .sdram section): the first 32 MiB.
inline constexpr size_t kSdramFirmwareBytes = 32u << 20;
// DMA windows in the rest of SDRAM.
inline constexpr uintptr_t kHostRxWindow = 0x6200'0000;  // 4 slots of 3 MiB: frame + attachment.
inline constexpr size_t kHostRxSlots = 4;
inline constexpr size_t kHostRxSlotBytes = 3u << 20;
inline constexpr uintptr_t kHostTxWindow = 0x62C0'0000;  // One frame.
inline constexpr size_t kHostTxBytes = 2u << 20;
inline constexpr uintptr_t kStageWindow = 0x6300'0000;   // Per channel: 2 MiB RX, 2 MiB TX.
inline constexpr size_t kStageChannels = 2;
inline constexpr size_t kStageWindowBytes = 2u << 20;
inline constexpr uintptr_t kWaferRequestWindow = 0x6380'0000;   // 4 MiB.
inline constexpr uintptr_t kWaferResponseWindow = 0x63C0'0000;  // 4 MiB.
inline constexpr size_t kWaferWindowBytes = 4u << 20;
static_assert(kWaferResponseWindow + kWaferWindowBytes == kSdramBase + kSdramBytes);

// ---- Peripherals. ----

// System control (architectural, ARMv7-M): CPACR enables the FPU.
inline constexpr uintptr_t kScbBase = 0xE000'E000;
namespace scb {
inline constexpr Register kCpacr{0xD88, Access::kReadWrite};
inline constexpr uint32_t kCpacrFpuFull = 0xFu << 20;  // CP10 and CP11: full access.
}  // namespace scb

// 64-bit timer: a monotonic nanosecond counter from reset, and the wall clock the board
// management controller sets (milliseconds since the Unix epoch).
inline constexpr uintptr_t kTimerBase = 0x4000'0000;
namespace timer {
inline constexpr Register kMonoNsLo{0x00, Access::kRead};  // Reading LO latches HI.
inline constexpr Register kMonoNsHi{0x04, Access::kRead};
inline constexpr Register kUnixMsLo{0x08, Access::kRead};  // Reading LO latches HI.
inline constexpr Register kUnixMsHi{0x0C, Access::kRead};
}  // namespace timer

// SDRAM controller: started by the reset handler before anything touches SDRAM.
inline constexpr uintptr_t kSdramCtrlBase = 0x4000'1000;
namespace sdram {
inline constexpr Register kControl{0x00, Access::kReadWrite};
inline constexpr uint32_t kControlEnable = 1u << 0;
inline constexpr Register kStatus{0x04, Access::kRead};
inline constexpr uint32_t kStatusReady = 1u << 0;  // Initialized and refreshing.
}  // namespace sdram

// NOR flash controller. Program and erase are unlocked by writing kUnlockKey to KEY before each
// operation; DATA0/DATA1 hold the double word a program writes at ADDRESS (8-byte aligned).
// Programming only clears bits (no ECC), so a double word may be programmed again with 0xFF in
// the bytes already written: chunks need not be 8-byte aligned. Reads are memory-mapped.
inline constexpr uintptr_t kFlashCtrlBase = 0x4000'2000;
namespace flash {
inline constexpr Register kKey{0x00, Access::kWrite};
inline constexpr uint32_t kUnlockKey = 0x4F4B'5944u;
inline constexpr Register kAddress{0x04, Access::kReadWrite};  // Absolute flash address.
inline constexpr Register kData0{0x08, Access::kReadWrite};
inline constexpr Register kData1{0x0C, Access::kReadWrite};
inline constexpr Register kCommand{0x10, Access::kWrite};
inline constexpr uint32_t kCommandEraseSector = 1;
inline constexpr uint32_t kCommandProgram = 2;
inline constexpr Register kStatus{0x14, Access::kRead};
inline constexpr uint32_t kStatusBusy = 1u << 0;
inline constexpr uint32_t kStatusError = 1u << 1;  // Sticky until the next command.
}  // namespace flash

// Ed25519 verification engine; the public key sits in OTP fuses it reads itself.
inline constexpr uintptr_t kCryptoBase = 0x4000'3000;
namespace crypto {
inline constexpr Register kMessageAddress{0x00, Access::kReadWrite};  // Any readable address.
inline constexpr Register kMessageLength{0x04, Access::kReadWrite};
inline constexpr Register kSignature0{0x10, Access::kWrite};  // 16 words: 0x10 ... 0x4C.
inline constexpr uint32_t kSignatureWords = 16;
inline constexpr Register kControl{0x50, Access::kWrite};
inline constexpr uint32_t kControlStart = 1;
inline constexpr Register kStatus{0x54, Access::kRead};
inline constexpr uint32_t kStatusBusy = 1u << 0;
inline constexpr uint32_t kStatusValid = 1u << 1;     // The signature verified.
inline constexpr uint32_t kStatusKeyFused = 1u << 2;  // A key was fused at manufacture.
}  // namespace crypto

// A frame DMA channel (the host link, and each inter-wafer link). RX: the channel writes each
// frame (and the attachment that came with it, at ATTACH_OFFSET) into the slot RX_SLOT names and
// sets RX_READY; the firmware hands the slot back with RX_RELEASE. TX: the firmware writes a
// frame into the TX window, its length into TX_LENGTH, and rings TX_DOORBELL; TX_BUSY clears
// when the frame is on the wire.
inline constexpr uintptr_t kHostLinkBase = 0x4001'0000;
inline constexpr uintptr_t kStageLinkBase = 0x4001'1000;  // Channel n at + n * kStageLinkStride.
inline constexpr uintptr_t kStageLinkStride = 0x100;
namespace channel {
inline constexpr Register kStatus{0x00, Access::kRead};
inline constexpr uint32_t kStatusLinkUp = 1u << 0;
inline constexpr uint32_t kStatusRxReady = 1u << 1;
inline constexpr uint32_t kStatusTxBusy = 1u << 2;
inline constexpr uint32_t kStatusTxError = 1u << 3;  // The last frame was not delivered.
inline constexpr Register kRxSlot{0x04, Access::kRead};
inline constexpr Register kRxLength{0x08, Access::kRead};
inline constexpr Register kRxAttachOffset{0x0C, Access::kRead};
inline constexpr Register kRxAttachLength{0x10, Access::kRead};  // 0: the frame came alone.
inline constexpr Register kRxRelease{0x14, Access::kWrite};      // Write the slot number.
inline constexpr Register kTxLength{0x18, Access::kWrite};
inline constexpr Register kTxDoorbell{0x1C, Access::kWrite};
inline constexpr Register kRxWindow{0x20, Access::kReadWrite};  // SDRAM address of RX slot 0.
inline constexpr Register kTxWindow{0x24, Access::kReadWrite};  // SDRAM address of the TX window.
}  // namespace channel

// The wafer's management core. The firmware writes a request (little-endian words, laid out
// per opcode: see board_wafer.cc) into the request window, its length into REQUEST_LENGTH and
// the opcode into DOORBELL; BUSY clears when RESULT (a StatusCode) and the response (its length
// in RESPONSE_LENGTH) are in place.
inline constexpr uintptr_t kWaferMailboxBase = 0x4002'0000;
namespace wafer_mailbox {
inline constexpr Register kRequestLength{0x00, Access::kWrite};
inline constexpr Register kDoorbell{0x04, Access::kWrite};  // The opcode.
inline constexpr Register kStatus{0x08, Access::kRead};
inline constexpr uint32_t kStatusBusy = 1u << 0;
inline constexpr Register kResult{0x0C, Access::kRead};
inline constexpr Register kResponseLength{0x10, Access::kRead};
}  // namespace wafer_mailbox

}  // namespace wafer::fw::board

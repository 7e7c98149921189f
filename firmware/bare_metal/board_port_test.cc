// The board controller's HAL port against a model of its memory map: the test maps the
// controller's register blocks, flash and SDRAM windows at their addresses (board_map.h) in this
// process and plays the devices, setting what they would report and reading what the port wrote.
// Single-threaded: each register a device would change is set before the call.
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <array>
#include <cstring>
#include <vector>

#include "firmware/bare_metal/board_clock.h"
#include "firmware/bare_metal/board_firmware_flash.h"
#include "firmware/bare_metal/board_host_port.h"
#include "firmware/bare_metal/board_map.h"
#include "firmware/bare_metal/board_signature_verifier.h"
#include "firmware/bare_metal/board_stage_link.h"
#include "firmware/bare_metal/board_wafer.h"

namespace wafer::fw::board {
namespace {

// Maps [base, base + bytes) at its own address, once per process.
bool MapAt(uintptr_t base, size_t bytes) {
  void* p = mmap(reinterpret_cast<void*>(base), bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  return p == reinterpret_cast<void*>(base);
}

class BoardPortTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mapped_ = MapAt(kFlashBase, kFlashBytes) && MapAt(0x4000'0000, 0x3'0000) &&
              MapAt(kHostRxWindow, kSdramBase + kSdramBytes - kHostRxWindow);
  }
  void SetUp() override {
    ASSERT_TRUE(mapped_) << "could not map the controller's addresses in this process";
    std::memset(reinterpret_cast<void*>(0x4000'0000), 0, 0x3'0000);
    std::memset(reinterpret_cast<void*>(kFlashBase), 0xFF, kFlashBytes);
  }
  // A register as the device sees it: readable and writable whatever its access type.
  static volatile uint32_t& Reg(uintptr_t base, Register r) {
    return *reinterpret_cast<volatile uint32_t*>(base + r.offset);
  }
  static std::byte* At(uintptr_t address) { return reinterpret_cast<std::byte*>(address); }
  static void SetNow(int64_t ns) {
    Reg(kTimerBase, timer::kMonoNsLo) = static_cast<uint32_t>(ns);
    Reg(kTimerBase, timer::kMonoNsHi) = static_cast<uint32_t>(ns >> 32);
  }

  static inline bool mapped_ = false;
};

TEST_F(BoardPortTest, ClockReadsTheTimer) {
  BoardClock clock;
  SetNow(0x1'2345'6789);
  Reg(kTimerBase, timer::kUnixMsLo) = 1000;
  EXPECT_EQ(clock.NowNanos(), 0x1'2345'6789);
  EXPECT_EQ(clock.UnixMillis(), 1000);
}

TEST_F(BoardPortTest, HostPortReceivesFramesAndAttachmentsAndHandsSlotsBack) {
  BoardClock clock;
  BoardHostPort port(clock);
  port.Init();
  EXPECT_EQ(Reg(kHostLinkBase, channel::kRxWindow), static_cast<uint32_t>(kHostRxWindow));
  EXPECT_EQ(Reg(kHostLinkBase, channel::kTxWindow), static_cast<uint32_t>(kHostTxWindow));
  // The channel delivered a 100-byte frame with a 10-byte attachment into slot 1.
  std::byte* slot = At(kHostRxWindow + kHostRxSlotBytes);
  for (int i = 0; i < 100; ++i) slot[i] = std::byte(i);
  for (int i = 0; i < 10; ++i) slot[4096 + i] = std::byte(200 + i);
  Reg(kHostLinkBase, channel::kStatus) = channel::kStatusLinkUp | channel::kStatusRxReady;
  Reg(kHostLinkBase, channel::kRxSlot) = 1;
  Reg(kHostLinkBase, channel::kRxLength) = 100;
  Reg(kHostLinkBase, channel::kRxAttachOffset) = 4096;
  Reg(kHostLinkBase, channel::kRxAttachLength) = 10;
  Reg(kHostLinkBase, channel::kRxRelease) = 0xFFFF;
  std::array<std::byte, 64> buffer{};
  Result<size_t> got = port.Receive(buffer, 0);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, 100u);  // Truncated to the buffer, full size reported.
  EXPECT_EQ(buffer[63], std::byte(63));
  ASSERT_EQ(port.attachment().size(), 10u);
  EXPECT_EQ(port.attachment()[9], std::byte(209));
  EXPECT_EQ(Reg(kHostLinkBase, channel::kRxRelease), 0xFFFFu);  // Still held.

  // Nothing more arrives: the slot goes back, the attachment ends, the deadline passes.
  Reg(kHostLinkBase, channel::kStatus) = channel::kStatusLinkUp;
  SetNow(5000);
  got = port.Receive(buffer, 4000);
  EXPECT_EQ(got.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Reg(kHostLinkBase, channel::kRxRelease), 1u);
  EXPECT_TRUE(port.attachment().empty());

  // A slot the channel does not have, or an attachment past the slot: UNAVAILABLE, never read.
  Reg(kHostLinkBase, channel::kStatus) = channel::kStatusLinkUp | channel::kStatusRxReady;
  Reg(kHostLinkBase, channel::kRxSlot) = kHostRxSlots;
  EXPECT_EQ(port.Receive(buffer, 0).status().code(), StatusCode::kUnavailable);
  Reg(kHostLinkBase, channel::kRxSlot) = 0;
  Reg(kHostLinkBase, channel::kRxAttachOffset) = static_cast<uint32_t>(kHostRxSlotBytes - 4);
  EXPECT_EQ(port.Receive(buffer, 0).status().code(), StatusCode::kUnavailable);
  // The link is down.
  Reg(kHostLinkBase, channel::kStatus) = 0;
  EXPECT_EQ(port.Receive(buffer, 1'000'000).status().code(), StatusCode::kUnavailable);
}

TEST_F(BoardPortTest, HostPortSendsThroughTheTxWindow) {
  BoardClock clock;
  BoardHostPort port(clock);
  port.Init();
  Reg(kHostLinkBase, channel::kStatus) = channel::kStatusLinkUp;
  std::vector<std::byte> frame(300, std::byte{7});
  ASSERT_TRUE(port.Send(frame).ok());
  EXPECT_EQ(Reg(kHostLinkBase, channel::kTxLength), 300u);
  EXPECT_EQ(Reg(kHostLinkBase, channel::kTxDoorbell), 1u);
  EXPECT_EQ(At(kHostTxWindow)[299], std::byte{7});
  // The link refused the frame; a frame past the window; the link is down.
  Reg(kHostLinkBase, channel::kStatus) = channel::kStatusLinkUp | channel::kStatusTxError;
  EXPECT_EQ(port.Send(frame).code(), StatusCode::kUnavailable);
  Reg(kHostLinkBase, channel::kStatus) = channel::kStatusLinkUp;
  std::vector<std::byte> huge(kHostTxBytes + 1);
  EXPECT_EQ(port.Send(huge).code(), StatusCode::kUnavailable);
  Reg(kHostLinkBase, channel::kStatus) = 0;
  EXPECT_EQ(port.Send(frame).code(), StatusCode::kUnavailable);
}

TEST_F(BoardPortTest, StageLinkNamesItsLinks) {
  BoardClock clock;
  BoardStageLink link(clock);
  link.Init();
  const auto open = [&](const char* e) { return link.Open(std::span(e, std::strlen(e))); };
  ASSERT_TRUE(open("ilink:1").ok());
  EXPECT_EQ(*open("ilink:1"), 1u);
  EXPECT_EQ(open("ilink:2").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open("tcp://next:5555").status().code(), StatusCode::kInvalidArgument);
  // Channel 1's registers and windows.
  const uintptr_t regs = kStageLinkBase + kStageLinkStride;
  Reg(regs, channel::kStatus) = channel::kStatusLinkUp;
  std::array<std::byte, 4> frame = {std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
  ASSERT_TRUE(link.Send(1, frame).ok());
  EXPECT_EQ(At(kStageWindow + 3 * kStageWindowBytes)[3], std::byte{4});
  EXPECT_EQ(Reg(regs, channel::kTxLength), 4u);
  EXPECT_EQ(link.Send(2, frame).code(), StatusCode::kUnavailable);
}

// Writes the words of a response the wafer's management core would give.
class ResponseWriter {
 public:
  template <typename T>
  void Put(const T& v) {
    std::memcpy(At(kWaferResponseWindow) + size_, &v, sizeof(T));
    size_ += (sizeof(T) + 3) & ~size_t{3};
  }
  uint32_t size() const { return static_cast<uint32_t>(size_); }

 private:
  static std::byte* At(uintptr_t a) { return reinterpret_cast<std::byte*>(a); }
  size_t size_ = 0;
};

TEST_F(BoardPortTest, WaferRunStepSendsTheRequestAndReadsTheOutcomes) {
  BoardWafer wafer;
  ResponseWriter w;
  DeviceTime time{100, 60, 30, 0, 10};
  w.Put(time);
  // Sequence 0: two tokens; sequence 1: a full context, nothing generated.
  w.Put(uint32_t{0});
  w.Put(uint32_t{5});
  w.Put(uint32_t{2});
  w.Put(uint32_t{41});
  w.Put(uint32_t{42});
  w.Put(uint32_t{0});  // No hidden values.
  w.Put(static_cast<uint32_t>(StatusCode::kResourceExhausted));
  w.Put(uint32_t{64});
  w.Put(uint32_t{0});
  w.Put(uint32_t{0});
  Reg(kWaferMailboxBase, wafer_mailbox::kStatus) = 0;  // Done at once.
  Reg(kWaferMailboxBase, wafer_mailbox::kResult) = 0;
  Reg(kWaferMailboxBase, wafer_mailbox::kResponseLength) = w.size();

  const std::array<uint32_t, 3> prompt = {7, 8, 9};
  std::array<hal::SeqStepView, 2> seqs{};
  seqs[0].slot = 3;
  seqs[0].input_tokens = prompt;
  seqs[0].generate = 2;
  seqs[1].slot = 4;
  seqs[1].generate = 2;
  hal::StepRequest request;
  request.model_id = 9;
  request.seqs = seqs;
  std::array<uint32_t, 4> tokens{};
  std::array<hal::SeqOutcome, 2> outcomes{};
  outcomes[0].token_buffer = std::span(tokens).first(2);
  outcomes[1].token_buffer = std::span(tokens).last(2);
  DeviceTime got_time;
  ASSERT_TRUE(wafer.RunStep(request, outcomes, got_time).ok());
  EXPECT_EQ(Reg(kWaferMailboxBase, wafer_mailbox::kDoorbell),
            static_cast<uint32_t>(WaferOp::kRunStep));
  EXPECT_EQ(got_time.total_ns, 100);
  EXPECT_EQ(got_time.host_io_ns, 10);
  EXPECT_EQ(outcomes[0].slot, 3u);
  EXPECT_EQ(outcomes[0].code, StatusCode::kOk);
  EXPECT_EQ(outcomes[0].context_tokens, 5u);
  ASSERT_EQ(outcomes[0].token_count, 2u);
  EXPECT_EQ(tokens[0], 41u);
  EXPECT_EQ(tokens[1], 42u);
  EXPECT_EQ(outcomes[1].code, StatusCode::kResourceExhausted);
  EXPECT_EQ(outcomes[1].token_count, 0u);
  // The request: model, from_stage, count, then sequence 0's slot, reset, generate.
  const auto* words = reinterpret_cast<const uint32_t*>(kWaferRequestWindow);
  EXPECT_EQ(words[0], 9u);
  EXPECT_EQ(words[1], 0u);
  EXPECT_EQ(words[2], 2u);
  EXPECT_EQ(words[3], 3u);
  EXPECT_EQ(words[5], 2u);
  EXPECT_GT(Reg(kWaferMailboxBase, wafer_mailbox::kRequestLength), 6u * 4);

  // More tokens than the sequence has room for, or a response cut short: INTERNAL.
  Reg(kWaferMailboxBase, wafer_mailbox::kResponseLength) = w.size() - 4;
  EXPECT_EQ(wafer.RunStep(request, outcomes, got_time).code(), StatusCode::kInternal);
  outcomes[0].token_buffer = std::span(tokens).first(1);
  Reg(kWaferMailboxBase, wafer_mailbox::kResponseLength) = w.size();
  EXPECT_EQ(wafer.RunStep(request, outcomes, got_time).code(), StatusCode::kInternal);
  // The core's own failure comes back as its code; a code no Status has is INTERNAL.
  Reg(kWaferMailboxBase, wafer_mailbox::kResult) = static_cast<uint32_t>(StatusCode::kNotFound);
  EXPECT_EQ(wafer.RunStep(request, outcomes, got_time).code(), StatusCode::kNotFound);
  Reg(kWaferMailboxBase, wafer_mailbox::kResult) = 99;
  EXPECT_EQ(wafer.CommitModel(9).code(), StatusCode::kInternal);
  EXPECT_EQ(wafer.InjectFault(hal::FaultSpec{}).code(), StatusCode::kUnimplemented);
}

TEST_F(BoardPortTest, WaferInitReadsTheIdentity) {
  BoardWafer wafer;
  ResponseWriter w;
  w.Put(uint64_t{900'000});
  w.Put(uint32_t{1000});
  w.Put(uint32_t{900});
  w.Put(uint32_t{48 << 10});
  w.Put(double{1.1e9});
  w.Put(uint32_t{64});
  w.Put(float{85});
  w.Put(float{105});
  w.Put(uint32_t{4});
  w.Put(std::array<char, 4>{'b', 'd', '-', '1'});
  w.Put(uint32_t{4});
  w.Put(std::array<char, 4>{'w', 's', 'e', '3'});
  Reg(kWaferMailboxBase, wafer_mailbox::kResponseLength) = w.size();
  ASSERT_TRUE(wafer.Init().ok());
  EXPECT_EQ(Reg(kWaferMailboxBase, wafer_mailbox::kDoorbell),
            static_cast<uint32_t>(WaferOp::kInfo));
  const hal::WaferInfo info = wafer.Info();
  EXPECT_STREQ(info.board_id, "bd-1");
  EXPECT_STREQ(info.preset, "wse3");
  EXPECT_EQ(info.physical_pes, 900'000u);
  EXPECT_EQ(info.max_slots, 64u);
  EXPECT_EQ(info.critical_c, 105);
}

TEST_F(BoardPortTest, FlashProgramsDoubleWordsAndChecksTheBootRecord) {
  BoardFirmwareFlash flash;
  EXPECT_EQ(flash.slot_capacity(), kSlotBytes);
  EXPECT_EQ(flash.MappedSlot(1).data(), At(kSlotBase[1]));
  EXPECT_TRUE(flash.MappedSlot(2).empty());
  // Three bytes at offset 13: one double word at offset 8, the other bytes left erased.
  const std::array<std::byte, 3> data = {std::byte{0x11}, std::byte{0x22}, std::byte{0x33}};
  ASSERT_TRUE(flash.ProgramSlot(1, 13, data).ok());
  EXPECT_EQ(Reg(kFlashCtrlBase, flash::kAddress), static_cast<uint32_t>(kSlotBase[1] + 8));
  EXPECT_EQ(Reg(kFlashCtrlBase, flash::kData0), 0xFFFF'FFFFu);
  EXPECT_EQ(Reg(kFlashCtrlBase, flash::kData1), 0x3322'11FFu);
  EXPECT_EQ(Reg(kFlashCtrlBase, flash::kCommand), flash::kCommandProgram);
  EXPECT_EQ(flash.ProgramSlot(1, kSlotBytes - 2, data).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(flash.EraseSlot(2).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(flash.EraseSlot(0).ok());
  EXPECT_EQ(Reg(kFlashCtrlBase, flash::kAddress),
            static_cast<uint32_t>(kSlotBase[0] + kSlotBytes - kFlashSectorBytes));
  EXPECT_EQ(Reg(kFlashCtrlBase, flash::kCommand), flash::kCommandEraseSector);
  Reg(kFlashCtrlBase, flash::kStatus) = flash::kStatusError;
  EXPECT_EQ(flash.EraseSlot(0).code(), StatusCode::kUnavailable);
  // An erased (never written) boot-control sector reads as the factory default.
  const hal::BootControl control = flash.ReadBootControl();
  EXPECT_EQ(control.active_slot, 0u);
  EXPECT_FALSE(control.pending);
}

TEST_F(BoardPortTest, SignaturesNeedAFusedKeyAndTheEnginesVerdict) {
  BoardSignatureVerifier verifier;
  std::array<std::byte, hal::kSignatureBytes> signature{};
  signature[60] = std::byte{0xAB};
  const std::array<std::byte, 3> message{};
  EXPECT_FALSE(verifier.has_key());
  EXPECT_EQ(verifier.Verify(message, signature).code(), StatusCode::kPermissionDenied);
  Reg(kCryptoBase, crypto::kStatus) = crypto::kStatusKeyFused | crypto::kStatusValid;
  ASSERT_TRUE(verifier.Verify(message, signature).ok());
  EXPECT_EQ(Reg(kCryptoBase, crypto::kMessageLength), 3u);
  EXPECT_EQ(*reinterpret_cast<volatile uint32_t*>(kCryptoBase + crypto::kSignature0.offset + 60),
            0xABu);
  EXPECT_EQ(Reg(kCryptoBase, crypto::kControl), crypto::kControlStart);
  Reg(kCryptoBase, crypto::kStatus) = crypto::kStatusKeyFused;
  EXPECT_EQ(verifier.Verify(message, signature).code(), StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace wafer::fw::board

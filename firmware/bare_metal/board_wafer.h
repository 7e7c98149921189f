// The wafer as the board controller drives it: every hal::Wafer call is one command to the
// wafer's management core through its mailbox (board_map.h, namespace wafer_mailbox). The
// request and response layouts, per opcode, are in board_wafer.cc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "firmware/bare_metal/register_bus.h"
#include "firmware/hal/wafer.h"

namespace wafer::fw::board {

// The mailbox's opcodes, one per hal::Wafer call.
enum class WaferOp : uint32_t {
  kInfo = 1, kSelfTest, kBeginModel, kWriteTensor, kCommitModel, kUnloadModel, kRunStep,
  kReadSensors, kPowerCycle, kGeometry, kReadRowFuses, kProgramHarvest, kRemapPe, kContentsOfPe,
  kPollEvents, kHalt, kTestSram, kTestFabricLinks, kRunKnownAnswer, kRetirePe,
};

// Not thread-safe; driven only by the superloop.
class BoardWafer final : public hal::Wafer {
 public:
  BoardWafer();

  // Reads the wafer's identity once (Info() answers from it afterwards).
  // Returns OK, or UNAVAILABLE when the management core does not answer.
  [[nodiscard]] Status Init();

  // Every call below fails with UNAVAILABLE when the management core does not answer within
  // kTimeoutSpins status reads, and INTERNAL when its response is malformed; the other codes
  // are hal::Wafer's. Calls without a Status (ReadSensors, PollEvents, ...) report nothing then.
  hal::WaferInfo Info() const override { return info_; }
  Status SelfTest() override;
  Status BeginModel(const hal::ModelManifest& manifest) override;
  Status WriteTensor(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                     std::span<const std::byte> data) override;
  Status CommitModel(uint32_t model_id) override;
  Status UnloadModel(uint32_t model_id) override;
  Status RunStep(const hal::StepRequest& request, std::span<hal::SeqOutcome> outcomes,
                 DeviceTime& time) override;
  void ReadSensors(hal::SensorReadout& out) override;
  void PowerCycle() override;
  hal::PhysicalGeometry Geometry() const override;
  uint32_t ReadRowFuses(uint32_t row) const override;
  Status ProgramHarvest(std::span<const uint32_t> row_map) override;
  Status RemapPe(uint32_t row, uint32_t col) override;
  hal::PeContents ContentsOfPe(uint32_t row, uint32_t col,
                               std::span<uint32_t> tensors) const override;
  size_t PollEvents(std::span<hal::HwEvent> out) override;
  void Halt() override;
  // A real wafer has no fault switches.
  Status InjectFault(const hal::FaultSpec& fault) override;
  // The host link checks its CRC in hardware: a corrupted frame never reaches the firmware.
  bool TakeLinkCrcError() override { return false; }
  Status TestSram(uint32_t first_row, uint32_t row_count, bool unused_only,
                  std::span<hal::DiagHit> hits, hal::DiagRun& run) override;
  Status TestFabricLinks(uint32_t first_row, uint32_t row_count, std::span<hal::DiagHit> hits,
                         hal::DiagRun& run) override;
  Status RunKnownAnswer(uint32_t region, uint64_t& answer, uint64_t& pes,
                        int64_t& device_ns) override;
  Status RetirePe(uint32_t row, uint32_t col) override;

  // Bounds each command; a step of the largest model takes the wafer well under a second.
  static constexpr uint32_t kTimeoutSpins = 400'000'000;

 private:
  class Request;
  class Response;
  // Sends the request written so far and waits for the answer. Returns the management core's
  // code (OK, or the call's own failure), UNAVAILABLE (no answer) or INTERNAL (bad code).
  Status Call(WaferOp op, const Request& request, Response& response) const;
  Status Simple(WaferOp op, uint32_t a, uint32_t b = 0) const;

  RegisterBus regs_;
  hal::WaferInfo info_;
  std::array<char, 64> board_id_{};
  std::array<char, 64> preset_{};
};

}  // namespace wafer::fw::board

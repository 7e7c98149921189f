// A BoardLink that forwards every call to another one: tests derive from it and override the
// calls they watch or script (record the data path, make a Step crash the board, ...).
#pragma once

#include <memory>
#include <utility>

#include "host/board/board_link.h"

namespace wafer::testing {

class ForwardingBoardLink : public host::BoardLink {
 public:
  explicit ForwardingBoardLink(std::unique_ptr<host::BoardLink> inner) : inner_(std::move(inner)) {}

  HostResult<host::BoardIdentity> Identify() override { return inner_->Identify(); }
  HostStatus Boot() override { return inner_->Boot(); }
  HostStatus BeginModel(const host::ModelManifest& manifest) override {
    return inner_->BeginModel(manifest);
  }
  HostStatus WriteWeights(uint32_t model_id, uint32_t tensor, uint64_t offset,
                          std::span<const std::byte> data) override {
    return inner_->WriteWeights(model_id, tensor, offset, data);
  }
  HostStatus CommitModel(uint32_t model_id) override { return inner_->CommitModel(model_id); }
  HostStatus UnloadModel(uint32_t model_id) override { return inner_->UnloadModel(model_id); }
  HostResult<host::StepOutcome> Step(uint32_t model_id,
                                     const std::vector<host::SeqStep>& seqs) override {
    return inner_->Step(model_id, seqs);
  }
  HostResult<host::BoardTelemetry> ReadTelemetry() override { return inner_->ReadTelemetry(); }
  HostStatus Reset() override { return inner_->Reset(); }
  HostResult<host::BoardErrorLog> ReadErrorLog(uint64_t from) override {
    return inner_->ReadErrorLog(from);
  }
  HostStatus BeginFirmwareImage(uint32_t slot, uint64_t size, uint32_t crc32c,
                                std::span<const std::byte> signature) override {
    return inner_->BeginFirmwareImage(slot, size, crc32c, signature);
  }
  HostStatus WriteFirmwareChunk(uint32_t slot, uint64_t offset,
                                std::span<const std::byte> data) override {
    return inner_->WriteFirmwareChunk(slot, offset, data);
  }
  HostStatus CommitFirmwareImage(uint32_t slot) override {
    return inner_->CommitFirmwareImage(slot);
  }
  HostResult<host::BoardFirmwareSlots> ReadFirmwareSlots() override {
    return inner_->ReadFirmwareSlots();
  }
  HostStatus RollbackFirmware() override { return inner_->RollbackFirmware(); }
  HostResult<host::BoardHarvestMap> ReadGeometry() override { return inner_->ReadGeometry(); }
  HostResult<host::BoardFaults> ReadFaults(uint64_t from) override {
    return inner_->ReadFaults(from);
  }
  HostResult<host::BoardDiagnostic> RunDiagnostic(host::BoardDiagTest test, uint32_t first_row,
                                                  uint32_t row_count) override {
    return inner_->RunDiagnostic(test, first_row, row_count);
  }
  HostStatus InjectFault(const host::BoardFaultInjection& fault) override {
    return inner_->InjectFault(fault);
  }
  HostStatus Heartbeat() override { return inner_->Heartbeat(); }

 protected:
  host::BoardLink& inner() { return *inner_; }

 private:
  std::unique_ptr<host::BoardLink> inner_;
};

}  // namespace wafer::testing

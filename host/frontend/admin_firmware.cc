// The admin socket's firmware commands (waferctl firmware info|update|rollback): handed to the
// board's worker, which talks to the firmware's A/B slots over the board link. Part of
// AdminFrontend (admin_frontend.h); runs on the step loop's thread like the rest of it.
#include <cstddef>

#include "host/frontend/admin_frontend.h"

namespace wafer::host {
namespace {

// An Ed25519 signature's length (board.fbs BeginFirmwareImage.signature).
constexpr size_t kSignatureBytes = 64;

}  // namespace

void AdminFrontend::OnFirmwareQuery(const std::string& peer, const FirmwareQuery& query) {
  if (!CheckBoard(peer, query.request_tag, query.board)) return;
  boards_.Send(query.board,
               std::make_unique<WorkerRequest>(FirmwareInfoWork{query.request_tag, peer}));
}

void AdminFrontend::OnUpdateFirmware(const std::string& peer, UpdateFirmware& update) {
  if (!CheckBoard(peer, update.request_tag, update.board)) return;
  if (update.image.empty()) {
    return FinishOperation(peer, update.request_tag, InvalidArgument(), "the image is empty", 0);
  }
  if (update.signature.size() != kSignatureBytes) {
    return FinishOperation(peer, update.request_tag, InvalidArgument(),
                           "the signature must be 64 bytes (Ed25519), not " +
                               std::to_string(update.signature.size()) +
                               ": the board accepts signed images only",
                           0);
  }
  FirmwareUpdateWork work{update.request_tag, peer, {}, {}};
  const auto* image = reinterpret_cast<const std::byte*>(update.image.data());
  const auto* signature = reinterpret_cast<const std::byte*>(update.signature.data());
  work.image.assign(image, image + update.image.size());
  work.signature.assign(signature, signature + update.signature.size());
  boards_.Send(update.board, std::make_unique<WorkerRequest>(std::move(work)));
}

void AdminFrontend::OnRollbackFirmware(const std::string& peer,
                                       const RollbackFirmware& rollback) {
  if (!CheckBoard(peer, rollback.request_tag, rollback.board)) return;
  boards_.Send(rollback.board,
               std::make_unique<WorkerRequest>(FirmwareRollbackWork{rollback.request_tag, peer}));
}

void AdminFrontend::OnFirmwareInfoDone(const Board& board, FirmwareInfoDone& done) {
  if (!done.status.ok()) {
    return FinishOperation(done.admin_peer, done.admin_tag, done.status, done.detail, 0);
  }
  FirmwareInfo info;
  info.request_tag = done.admin_tag;
  info.board = board.index;
  info.active_slot = done.slots.active_slot;
  info.running_version = done.running_version;
  info.pending = done.slots.pending;
  info.pending_slot = done.slots.pending_slot;
  info.trial = done.slots.trial;
  info.fallback_slot = done.slots.fallback_slot;
  info.signing_key = done.slots.signing_key;
  for (BoardFirmwareSlot& s : done.slots.slots) {
    info.slots.push_back(FirmwareSlotInfo{s.slot, s.valid, s.size, s.crc32c, s.has_signature,
                                          std::move(s.signature), std::move(s.version)});
  }
  Send(done.admin_peer, info);
}

void AdminFrontend::OnFirmwareProgress(const Board&, const FirmwareProgressEvent& event) {
  LoadProgress p;
  p.request_tag = event.admin_tag;
  p.bytes_done = event.bytes_done;
  p.bytes_total = event.bytes_total;
  p.bytes_per_second =
      event.elapsed_s > 0 ? static_cast<double>(event.bytes_done) / event.elapsed_s : 0;
  p.eta_s = p.bytes_per_second > 0
                ? static_cast<double>(event.bytes_total - event.bytes_done) / p.bytes_per_second
                : 0;
  p.phase = "flashing";
  Send(event.admin_peer, p);
}

}  // namespace wafer::host

// `waferctl firmware info|update|rollback BOARD`: a board's two firmware slots, writing a signed
// image into the one that is not running (with a progress bar on a terminal), and switching
// back to the other slot's image. The new image, or the rolled-back one, boots at the board's
// next reset, on trial: if that boot fails, the board returns to the image it ran before.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "host/client/wafer_client.h"

namespace wafer::host {

// Prints both slots (state, image version, size, CRC-32C, signature), which runs and which
// boots next, as a table or one line of JSON. Returns kExitOk, kExitFailed (refused: a board
// not configured or not answering), kExitUnreachable, kExitProtocol.
int RunFirmwareInfo(uint32_t board, bool as_json, AdminClient& admin, int timeout_ms,
                    std::ostream& out, std::ostream& err);

// Reads `image_path` and its signature (`signature_path`, or IMAGE.sig when empty) and sends
// them to the board, with a progress bar on `err` (redrawn in place when `progress`: a
// terminal; a line per update otherwise), or JSON progress lines on `out` with `as_json`. An image without a readable signature is not sent: the board accepts
// signed images only. Returns kExitOk; kExitFailed (a file that cannot be read, a signature that
// is not one, a board that refused the image: signature, CRC, no free slot); kExitUnreachable,
// kExitProtocol.
int RunFirmwareUpdate(uint32_t board, const std::string& image_path,
                      const std::string& signature_path, bool as_json, bool progress,
                      AdminClient& admin, int timeout_ms, std::ostream& out, std::ostream& err);

// Asks the board to boot its other slot's image at the next reset. Returns kExitOk,
// kExitFailed (no valid image there, an image on trial or pending), kExitUnreachable,
// kExitProtocol.
int RunFirmwareRollback(uint32_t board, bool as_json, AdminClient& admin, int timeout_ms,
                        std::ostream& out, std::ostream& err);

// An Ed25519 signature file's 64 bytes: the raw bytes, or 128 hex digits (surrounding white
// space allowed). nullopt otherwise.
std::optional<std::vector<uint8_t>> ParseSignatureFile(const std::string& contents);

// "[=========>          ]  45.0%": a progress bar `width` characters wide inside its brackets.
std::string ProgressBar(uint64_t done, uint64_t total, int width);

}  // namespace wafer::host

#include "host/ctl/firmware_command.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "host/ctl/ctl_output.h"
#include "host/ctl/exit_codes.h"

namespace wafer::host {
namespace {

using json = nlohmann::json;

constexpr size_t kSignatureBytes = 64;

std::string Hex(const std::vector<uint8_t>& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

// What a slot is to the board now, in words.
std::string SlotState(const FirmwareInfo& info, const FirmwareSlotInfo& slot) {
  if (slot.slot == info.active_slot) return info.trial ? "running (on trial)" : "running";
  if (info.pending && slot.slot == info.pending_slot) return "boots at next reset";
  if (info.trial && slot.slot == info.fallback_slot) return "fallback";
  if (slot.valid) return "valid";
  return slot.size > 0 ? "invalid" : "empty";
}

bool ReadFile(const std::string& path, std::string* contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  contents->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

std::optional<std::vector<uint8_t>> ParseSignatureFile(const std::string& contents) {
  if (contents.size() == kSignatureBytes) {
    return std::vector<uint8_t>(contents.begin(), contents.end());
  }
  std::string hex;
  for (char c : contents) {
    if (std::isspace(static_cast<unsigned char>(c))) continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    hex += c;
  }
  if (hex.size() != 2 * kSignatureBytes) return std::nullopt;
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < hex.size(); i += 2) {
    bytes.push_back(static_cast<uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return bytes;
}

std::string ProgressBar(uint64_t done, uint64_t total, int width) {
  const double fraction = total == 0 ? 1.0 : std::min(1.0, static_cast<double>(done) / total);
  const int filled = static_cast<int>(fraction * width);
  std::string bar = "[";
  for (int i = 0; i < width; ++i) bar += i < filled ? '=' : (i == filled ? '>' : ' ');
  char pct[16];
  std::snprintf(pct, sizeof(pct), "] %5.1f%%", 100.0 * fraction);
  return bar + pct;
}

int RunFirmwareInfo(uint32_t board, bool as_json, AdminClient& admin, int timeout_ms,
                    std::ostream& out, std::ostream& err) {
  FirmwareInfo info;
  if (HostStatus s = admin.QueryFirmware(board, &info, timeout_ms); !s.ok()) {
    return RequestFailed(s.error(), as_json, out, err);
  }
  if (as_json) {
    json slots = json::array();
    for (const FirmwareSlotInfo& x : info.slots) {
      slots.push_back({{"slot", x.slot},
                       {"state", SlotState(info, x)},
                       {"valid", x.valid},
                       {"version", x.version},
                       {"size", x.size},
                       {"crc32c", x.crc32c},
                       {"signed", x.is_signed},
                       {"signature", Hex(x.signature)}});
    }
    out << DumpJson(json{{"ok", true},
                         {"board", info.board},
                         {"running_version", info.running_version},
                         {"active_slot", info.active_slot},
                         {"trial", info.trial},
                         {"pending", info.pending},
                         {"pending_slot", info.pending ? json(info.pending_slot) : json(nullptr)},
                         {"fallback_slot", info.trial ? json(info.fallback_slot) : json(nullptr)},
                         {"signing_key", info.signing_key},
                         {"slots", slots}})
        << "\n";
    return kExitOk;
  }
  out << "board " << info.board << ": firmware " << info.running_version << " running from slot "
      << info.active_slot << (info.trial ? " (on trial)" : "") << "; signing key "
      << (info.signing_key ? "fused (signed images only)" : "none (accepts no image)") << "\n";
  char line[256];
  std::snprintf(line, sizeof(line), "%-4s %-20s %-18s %10s %-10s  %s\n", "SLOT", "STATE",
                "VERSION", "SIZE", "CRC32C", "SIGNATURE");
  out << line;
  for (const FirmwareSlotInfo& x : info.slots) {
    std::string signature = "unsigned";
    if (x.is_signed) {
      const std::string hex = Hex(x.signature);
      signature = "ed25519 " + hex.substr(0, 8) + "..." + hex.substr(hex.size() - 8);
    }
    if (x.size == 0) signature = "-";
    char crc[16];
    std::snprintf(crc, sizeof(crc), "%08x", x.crc32c);
    std::snprintf(line, sizeof(line), "%-4u %-20s %-18s %10llu %-10s  %s\n", x.slot,
                  SlotState(info, x).c_str(), x.version.empty() ? "-" : x.version.c_str(),
                  static_cast<unsigned long long>(x.size), x.size == 0 ? "-" : crc,
                  signature.c_str());
    out << line;
  }
  return kExitOk;
}

int RunFirmwareUpdate(uint32_t board, const std::string& image_path,
                      const std::string& signature_path, bool as_json, bool progress,
                      AdminClient& admin, int timeout_ms, std::ostream& out, std::ostream& err) {
  auto refuse = [&](const std::string& detail) {
    if (as_json) {
      out << DumpJson(json{{"ok", false}, {"code", "INVALID_ARGUMENT"}, {"detail", detail}})
          << "\n";
    } else {
      err << "waferctl: " << detail << "\n";
    }
    return kExitFailed;
  };
  std::string image;
  if (!ReadFile(image_path, &image)) return refuse("cannot read the image " + image_path);
  if (image.empty()) return refuse("the image " + image_path + " is empty");
  const std::string sig_path = signature_path.empty() ? image_path + ".sig" : signature_path;
  std::string sig_text;
  if (!ReadFile(sig_path, &sig_text)) {
    return refuse("no signature for " + image_path + ": cannot read " + sig_path +
                  " (boards accept signed images only; --signature names the file)");
  }
  std::optional<std::vector<uint8_t>> signature = ParseSignatureFile(sig_text);
  if (!signature) {
    return refuse(sig_path + " is not an Ed25519 signature (64 raw bytes or 128 hex digits)");
  }
  UpdateFirmware update;
  update.board = board;
  update.image.assign(image.begin(), image.end());
  update.signature = std::move(*signature);
  OperationResult r;
  bool drew = false;
  HostStatus s = admin.Operate(
      update,
      [&](const LoadProgress& p) {
        if (as_json) {
          out << DumpJson(json{{"event", "progress"}, {"phase", p.phase},
                               {"bytes_done", p.bytes_done}, {"bytes_total", p.bytes_total}})
              << std::endl;
        } else {
          char tail[96];
          std::snprintf(tail, sizeof(tail), "  %.1f / %.1f KB  %.0f KB/s", p.bytes_done / 1e3,
                        p.bytes_total / 1e3, p.bytes_per_second / 1e3);
          // On a terminal the bar redraws in place; elsewhere each update is a line.
          err << (progress ? "\r" : "") << "flashing "
              << ProgressBar(p.bytes_done, p.bytes_total, 30) << tail << (progress ? "" : "\n")
              << std::flush;
          drew = progress;
        }
      },
      &r, timeout_ms);
  if (drew) err << "\n";
  return ReportOperation(s, r, as_json, out, err);
}

int RunFirmwareRollback(uint32_t board, bool as_json, AdminClient& admin, int timeout_ms,
                        std::ostream& out, std::ostream& err) {
  OperationResult r;
  HostStatus s = admin.Operate(RollbackFirmware{0, board}, nullptr, &r, timeout_ms);
  return ReportOperation(s, r, as_json, out, err);
}

}  // namespace wafer::host

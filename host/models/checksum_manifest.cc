#include "host/models/checksum_manifest.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "common/crc32c.h"
#include "host/models/safetensors_file.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

Error Fail(Status status, std::string message) {
  return Error{status.code(), std::move(message)};
}

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

std::string Hex(uint32_t v) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", v);
  return text;
}

bool ParseHex32(const std::string& s, uint32_t* out) {
  if (s.size() != 8) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 16);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// GF(2) 32x32 matrix (one column per word) times a vector.
uint32_t Gf2Times(const uint32_t* matrix, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec != 0; vec >>= 1, ++matrix) {
    if (vec & 1u) sum ^= *matrix;
  }
  return sum;
}

void Gf2Square(uint32_t* square, const uint32_t* matrix) {
  for (int n = 0; n < 32; ++n) square[n] = Gf2Times(matrix, matrix[n]);
}

// Below this, a second thread costs more than it saves.
constexpr size_t kParallelCrcBytes = size_t{8} << 20;

// Checks one listed file: its length, then its CRC over a read-only mapping.
HostStatus VerifyFile(const fs::path& path, const FileChecksum& want) {
  const std::string name = path.string();
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Fail(NotFound(),
                  name + ": listed in " + std::string(kChecksumManifestName) + " but missing");
    }
    return Fail(Unavailable(), name + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(Unavailable(), name + ": not a readable regular file");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size != want.bytes) {
    ::close(fd);
    return Fail(DataLoss(),
                name + ": has " + std::to_string(size) + " bytes but " +
                    std::string(kChecksumManifestName) + " lists " + std::to_string(want.bytes));
  }
  uint32_t crc = 0;
  if (size > 0) {
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
      ::close(fd);
      return Fail(Unavailable(), name + ": mmap failed");
    }
    ::madvise(map, size, MADV_SEQUENTIAL);
    crc = ParallelCrc32c({static_cast<const std::byte*>(map), size});
    ::munmap(map, size);
  }
  ::close(fd);
  if (crc != want.crc32c) {
    return Fail(DataLoss(),
                name + ": CRC-32C is " + Hex(crc) + " but " + std::string(kChecksumManifestName) +
                    " lists " + Hex(want.crc32c));
  }
  return HostOk();
}

}  // namespace

FileChecksum ChecksumOf(std::span<const std::byte> contents) {
  return {ParallelCrc32c(contents), contents.size()};
}

std::string ChecksumManifestJson(const ChecksumManifest& manifest) {
  Json files = Json::object();
  for (const auto& [name, c] : manifest) {
    files[name] = {{"crc32c", Hex(c.crc32c)}, {"bytes", c.bytes}};
  }
  const Json j = {{"algorithm", "crc32c"}, {"files", files}};
  return j.dump(2) + "\n";
}

HostResult<ChecksumManifest> ParseChecksumManifest(std::string_view text,
                                                   const std::string& where) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  const std::string at = where + ": ";
  if (j.is_discarded() || !j.is_object()) {
    return Fail(InvalidArgument(), at + "is not a JSON object");
  }
  if (!j.contains("algorithm") || j["algorithm"] != "crc32c") {
    return Fail(InvalidArgument(), at + "needs \"algorithm\": \"crc32c\"");
  }
  if (!j.contains("files") || !j["files"].is_object()) {
    return Fail(InvalidArgument(), at + "needs a JSON object 'files'");
  }
  ChecksumManifest manifest;
  for (const auto& [name, entry] : j["files"].items()) {
    const std::string file = at + "files['" + name + "']";
    if (!IsPlainFileName(name)) return Fail(InvalidArgument(), file + " is not a plain file name");
    FileChecksum c;
    if (!entry.is_object() || !entry.contains("crc32c") || !entry["crc32c"].is_string() ||
        !ParseHex32(entry["crc32c"].get<std::string>(), &c.crc32c)) {
      return Fail(InvalidArgument(), file + " needs 'crc32c' as 8 hex digits");
    }
    if (!entry.contains("bytes") || !entry["bytes"].is_number_unsigned()) {
      return Fail(InvalidArgument(), file + " needs 'bytes' as an unsigned integer");
    }
    c.bytes = entry["bytes"].get<uint64_t>();
    manifest.emplace(name, c);
  }
  return manifest;
}

HostStatus VerifyChecksumManifest(const std::string& dir_name) {
  const fs::path dir(dir_name);
  const fs::path path = dir / kChecksumManifestName;
  std::error_code ec;
  if (!fs::exists(path, ec)) return HostOk();
  WAFER_HOST_ASSIGN_OR_RETURN(const std::string text, ReadFile(path.string()));
  WAFER_HOST_ASSIGN_OR_RETURN(const ChecksumManifest manifest,
                              ParseChecksumManifest(text, path.string()));
  for (const auto& [name, want] : manifest) {
    WAFER_HOST_RETURN_IF_ERROR(VerifyFile(dir / name, want));
  }
  return HostOk();
}

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b) {
  if (length_b == 0) return crc_a;
  uint32_t even[32];  // Operator for 2^k zero bits, k even.
  uint32_t odd[32];   // ... k odd.
  odd[0] = 0x82F63B78u;  // The reflected Castagnoli polynomial: one zero bit.
  uint32_t row = 1;
  for (int n = 1; n < 32; ++n, row <<= 1) odd[n] = row;
  Gf2Square(even, odd);  // Two zero bits.
  Gf2Square(odd, even);  // Four zero bits.
  // Apply length_b zero bytes to crc_a, one squaring per bit of the length.
  do {
    Gf2Square(even, odd);
    if (length_b & 1u) crc_a = Gf2Times(even, crc_a);
    length_b >>= 1;
    if (length_b == 0) break;
    Gf2Square(odd, even);
    if (length_b & 1u) crc_a = Gf2Times(odd, crc_a);
    length_b >>= 1;
  } while (length_b != 0);
  return crc_a ^ crc_b;
}

uint32_t ParallelCrc32c(std::span<const std::byte> data) {
  if (data.size() < kParallelCrcBytes || std::thread::hardware_concurrency() < 2) {
    return Crc32c(data);
  }
  const size_t half = data.size() / 2;
  uint32_t second = 0;
  std::thread helper;
  try {
    helper = std::thread([&] { second = Crc32c(data.subspan(half)); });
  } catch (const std::system_error&) {
    return Crc32c(data);
  }
  const uint32_t first = Crc32c(data.first(half));
  helper.join();
  return Crc32cCombine(first, second, data.size() - half);
}

}  // namespace wafer::host

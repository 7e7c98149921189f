// model.checksums.json: an optional manifest in a checkpoint directory that gives, for each file
// it lists, the CRC-32C (Castagnoli, as on the board link) and the length in bytes:
//
//   {"algorithm": "crc32c",
//    "files": {"config.json": {"crc32c": "1b2c3d4e", "bytes": 612}, ...}}
//
// LoadCheckpoint verifies every listed file before it parses anything; wafer-mkmodel writes one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/result.h"

namespace wafer::host {

inline constexpr std::string_view kChecksumManifestName = "model.checksums.json";

struct FileChecksum {
  uint32_t crc32c = 0;
  uint64_t bytes = 0;
};

// File name (plain, no directory) -> checksum.
using ChecksumManifest = std::map<std::string, FileChecksum>;

// The checksum of `contents`.
FileChecksum ChecksumOf(std::span<const std::byte> contents);

// The manifest's JSON text (file names sorted, CRCs as 8 lowercase hex digits).
std::string ChecksumManifestJson(const ChecksumManifest& manifest);

// Parses a manifest; `where` names it in the Error's message.
// Returns INVALID_ARGUMENT for anything but the format above: bad JSON, an algorithm other than
// "crc32c", a name that is not a plain file name, a CRC that is not 8 hex digits, a length that
// is not an unsigned integer.
HostResult<ChecksumManifest> ParseChecksumManifest(std::string_view text, const std::string& where);

// Verifies every file the manifest in `dir` lists (no manifest: nothing to do). An Error's
// message names the file.
//
// Returns:
//   OK               - no manifest, or every listed file has its listed length and CRC-32C.
//   NOT_FOUND        - a listed file does not exist.
//   DATA_LOSS        - a listed file's length or CRC-32C differs.
//   INVALID_ARGUMENT - the manifest is malformed (see ParseChecksumManifest).
//   UNAVAILABLE      - a file could not be read.
HostStatus VerifyChecksumManifest(const std::string& dir);

// CRC-32C of A followed by B, from crc(A), crc(B) and B's length (the zlib crc32_combine method
// for the Castagnoli polynomial).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t length_b);

// Crc32c(data), computed on two threads for large inputs and combined (same value).
uint32_t ParallelCrc32c(std::span<const std::byte> data);

}  // namespace wafer::host

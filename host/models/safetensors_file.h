// Reads (and, for tools and tests, writes) the Hugging Face .safetensors format: an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
// then the data section. Files are memory-mapped read-only and fully validated on open.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/result.h"
#include "host/board/board_types.h"

namespace wafer::host {

// Size of one element of `dtype` in bytes.
size_t DTypeSize(DType dtype);
// "F32", "F16", "BF16".
const char* DTypeName(DType dtype);

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::span<const std::byte> bytes;  // Into the mapping; valid while the file object lives.
};

// An open, validated, read-only .safetensors file. Immutable after Open; thread-safe to read.
class SafetensorsFile {
 public:
  // The largest header accepted (the format's reference reader uses the same bound).
  static constexpr uint64_t kMaxHeaderBytes = 100u << 20;

  // Maps `path` and validates it: header length within bounds and the file, a JSON object header,
  // every tensor with a supported dtype (F32, F16, BF16), a shape, data_offsets [begin, end)
  // inside the data section with end - begin == product(shape) * element size, no two tensors
  // overlapping. "__metadata__" (string to string) is allowed. An Error's message names the file
  // and, where one is at fault, the tensor.
  //
  // Returns:
  //   NOT_FOUND        - the file does not exist or cannot be opened.
  //   UNAVAILABLE      - the file could not be read or mapped.
  //   DATA_LOSS        - truncated file, bad header length, bad JSON or bad offsets/sizes.
  //   INVALID_ARGUMENT - a well-formed file with an unsupported dtype.
  static HostResult<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // As Open, over bytes already in memory (tests and the fuzz target): the tensors' spans point
  // into `bytes`, which must outlive the object; `path` only names them in the Error's message.
  static HostResult<std::unique_ptr<SafetensorsFile>> FromBytes(std::span<const std::byte> bytes,
                                                                const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // In the order of their data offsets.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // nullptr when absent.
  const SafetensorsTensor* Find(std::string_view name) const;

 private:
  SafetensorsFile() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct SafetensorsWriteTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<uint64_t> shape;
  std::vector<std::byte> data;
};

// Serializes tensors (in the given order, contiguous) with an 8-byte-aligned header.
std::string EncodeSafetensors(std::span<const SafetensorsWriteTensor> tensors,
                              const std::map<std::string, std::string>& metadata);

// Writes EncodeSafetensors(...) to `path`.
// Returns OK, or UNAVAILABLE (cannot write; the message names the file).
HostStatus WriteFile(const std::string& path, std::string_view contents);

// Reads a whole (small) file. Returns NOT_FOUND (no such file) or UNAVAILABLE (cannot open or
// read); the message names the file.
HostResult<std::string> ReadFile(const std::string& path);

}  // namespace wafer::host

#include "host/models/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace wafer::host {
namespace {

using Json = nlohmann::json;

Error Fail(Status status, std::string message) {
  return Error{status.code(), std::move(message)};
}

bool ParseDType(const std::string& name, DType* out) {
  if (name == "F32") *out = DType::kF32;
  else if (name == "F16") *out = DType::kF16;
  else if (name == "BF16") *out = DType::kBF16;
  else return false;
  return true;
}

bool IsUint(const Json& j) { return j.is_number_unsigned(); }

}  // namespace

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

HostResult<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Fail(errno == ENOENT ? NotFound() : Unavailable(),
                path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Fail(Unavailable(), path + ": not a readable regular file");
  }
  const auto file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    return Fail(DataLoss(),
                path + ": truncated: " + std::to_string(file_size) + " bytes, need at least 8");
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Fail(Unavailable(), path + ": mmap failed");
  HostResult<std::unique_ptr<SafetensorsFile>> file =
      FromBytes({static_cast<const std::byte*>(map), file_size}, path);
  if (!file.ok()) {
    ::munmap(map, file_size);
    return std::move(file).error();
  }
  (*file)->map_ = map;
  (*file)->map_size_ = file_size;
  return file;
}

HostResult<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBytes(
    std::span<const std::byte> bytes, const std::string& path) {
  const uint64_t file_size = bytes.size();
  if (file_size < 8) {
    return Fail(DataLoss(),
                path + ": truncated: " + std::to_string(file_size) + " bytes, need at least 8");
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  const std::byte* base = bytes.data();

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(base[i]);
  if (header_len > kMaxHeaderBytes) {
    return Fail(DataLoss(),
                path + ": header length " + std::to_string(header_len) + " exceeds the limit of " +
                    std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_len > file_size - 8) {
    return Fail(DataLoss(),
                path + ": header length " + std::to_string(header_len) + " runs past the end of " +
                    "the file (" + std::to_string(file_size) + " bytes)");
  }
  const std::string_view header_text(reinterpret_cast<const char*>(base + 8), header_len);
  const Json header = Json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) {
    return Fail(DataLoss(), path + ": header is not a JSON object");
  }
  const uint64_t data_size = file_size - 8 - header_len;
  const std::byte* data = base + 8 + header_len;

  struct Range {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  try {
    for (const auto& [name, entry] : header.items()) {
      const std::string where = path + ": tensor '" + name + "'";
      if (name == "__metadata__") {
        if (!entry.is_object()) return Fail(DataLoss(), path + ": __metadata__ is not an object");
        for (const auto& [key, value] : entry.items()) {
          if (!value.is_string()) {
            return Fail(DataLoss(), path + ": __metadata__['" + key + "'] is not a string");
          }
          file->metadata_[key] = value.get<std::string>();
        }
        continue;
      }
      if (!entry.is_object() || !entry.contains("dtype") || !entry["dtype"].is_string() ||
          !entry.contains("shape") || !entry["shape"].is_array() ||
          !entry.contains("data_offsets") || !entry["data_offsets"].is_array()) {
        return Fail(DataLoss(), where + ": needs string dtype, array shape and data_offsets");
      }
      SafetensorsTensor t;
      t.name = name;
      const std::string dtype = entry["dtype"].get<std::string>();
      if (!ParseDType(dtype, &t.dtype)) {
        return Fail(InvalidArgument(),
                    where + ": unsupported dtype " + dtype + " (supported: F32, F16, BF16)");
      }
      uint64_t elements = 1;
      for (const Json& d : entry["shape"]) {
        if (!IsUint(d)) return Fail(DataLoss(), where + ": shape holds a non-integer");
        const uint64_t dim = d.get<uint64_t>();
        if (dim != 0 && elements > std::numeric_limits<uint64_t>::max() / 8 / dim) {
          return Fail(DataLoss(), where + ": shape overflows");
        }
        elements *= dim;
        t.shape.push_back(dim);
      }
      const Json& off = entry["data_offsets"];
      if (off.size() != 2 || !IsUint(off[0]) || !IsUint(off[1])) {
        return Fail(DataLoss(), where + ": data_offsets must be two unsigned integers");
      }
      const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
      if (begin > end || end > data_size) {
        return Fail(DataLoss(),
                    where + ": data_offsets [" + std::to_string(begin) + ", " +
                        std::to_string(end) + ") outside the data section of " +
                        std::to_string(data_size) + " bytes (file truncated?)");
      }
      const uint64_t want = elements * DTypeSize(t.dtype);
      if (end - begin != want) {
        return Fail(DataLoss(),
                    where + ": holds " + std::to_string(end - begin) + " bytes but its shape and " +
                        "dtype need " + std::to_string(want));
      }
      t.bytes = std::span<const std::byte>(data + begin, end - begin);
      ranges.push_back({begin, end, file->tensors_.size()});
      file->tensors_.push_back(std::move(t));
    }
  } catch (const std::exception& e) {
    return Fail(DataLoss(), path + ": malformed header: " + e.what());
  }

  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Empty tensors occupy no bytes and cannot overlap anything.
  const Range* furthest = nullptr;  // The non-empty range reaching furthest so far.
  for (const Range& cur : ranges) {
    if (cur.begin == cur.end) continue;
    if (furthest != nullptr && cur.begin < furthest->end) {
      return Fail(DataLoss(),
                  path + ": tensors '" + file->tensors_[furthest->index].name + "' and '" +
                      file->tensors_[cur.index].name + "' overlap");
    }
    if (furthest == nullptr || cur.end > furthest->end) furthest = &cur;
  }
  std::vector<SafetensorsTensor> ordered;
  ordered.reserve(ranges.size());
  for (const Range& r : ranges) ordered.push_back(std::move(file->tensors_[r.index]));
  file->tensors_ = std::move(ordered);
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

const SafetensorsTensor* SafetensorsFile::Find(std::string_view name) const {
  for (const SafetensorsTensor& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string EncodeSafetensors(std::span<const SafetensorsWriteTensor> tensors,
                              const std::map<std::string, std::string>& metadata) {
  // nlohmann::json sorts object keys; the reference writer does too, so that is fine.
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const SafetensorsWriteTensor& t : tensors) {
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out;
  out.reserve(8 + text.size() + offset);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((text.size() >> (8 * i)) & 0xff));
  out += text;
  for (const SafetensorsWriteTensor& t : tensors) {
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  }
  return out;
}

HostStatus WriteFile(const std::string& path, std::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  if (out) out.close();
  if (!out) return Fail(Unavailable(), path + ": cannot write");
  return HostOk();
}

HostResult<std::string> ReadFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Fail(NotFound(), path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Fail(Unavailable(), path + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return Fail(Unavailable(), path + ": read failed");
  return buffer.str();
}

}  // namespace wafer::host

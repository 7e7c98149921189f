// A model directory as the daemon loads it: the architecture, the tensors in transfer order and
// their bytes (empty for a shape-only model given by config.json alone), and its text codec.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/status.h"
#include "host/board/board_types.h"

namespace wafer::host {

// Turns text into token ids and back. Thread-safe (immutable after construction).
class TextCodec {
 public:
  virtual ~TextCodec() = default;
  // The token ids of `text`.
  //
  // Returns:
  //   OK               - the ids (never empty).
  //   INVALID_ARGUMENT - the text cannot be tokenized (the message says why).
  virtual HostResult<std::vector<uint32_t>> Encode(const std::string& text) const = 0;
  // Appends the text of `ids` to `out`, holding back the bytes of an incomplete UTF-8
  // character in `pending` until a later call completes it.
  virtual void DecodeIncremental(std::span<const uint32_t> ids, std::string* pending,
                                 std::string* out) const = 0;
};

struct ModelSource {
  std::string name;
  ModelArch arch;
  uint64_t parameters = 0;
  std::vector<TensorDesc> tensors;
  std::vector<std::span<const std::byte>> data;  // Parallel to tensors; empty when shape_only.
  bool shape_only = false;
  std::shared_ptr<const TextCodec> text;  // Null without tokenizer.json.
  std::shared_ptr<const void> keep_alive;  // Owns whatever `data` points into (mmaps).

  uint64_t weight_bytes() const {
    uint64_t n = 0;
    for (const TensorDesc& t : tensors) n += t.byte_size;
    return n;
  }
};

// Opens a Hugging Face model directory: config.json with model.safetensors (or its sharded
// index) for a functional model, config.json alone for a shape-only one. Every header, shape
// and offset is verified. On success sets `*out`.
//
// Returns (the message naming the file and tensor):
//   OK               - `*out` is the model.
//   NOT_FOUND        - no config.json, or a file the checkpoint needs is missing.
//   INVALID_ARGUMENT - a bad config, tokenizer, tensor or index (see LoadCheckpoint).
//   DATA_LOSS        - a corrupt or truncated file.
//   UNAVAILABLE      - a file could not be read.
HostStatus OpenModelSource(const std::string& dir, ModelSource* out);

// Lets the kernel take back the pages of `source`'s mapped checkpoint that this process holds
// (MADV_DONTNEED over each tensor's bytes; the mappings are read-only, so nothing is lost): once
// a model is on its boards the host needs them only for a repair after a PE fault, which reads
// them again from the page cache or the file. Without this the mapped weights stay in the
// daemon's resident memory beside the board's copy. Harmless on a shape-only source.
void ReleaseResidentPages(const ModelSource& source);

// The name a model directory gets when none is given: its base name ("/m/llama-8b/" ->
// "llama-8b").
std::string ModelNameFromPath(std::string dir);

// The tensors a Llama-family model of `arch` has, in transfer order, as 16-bit (bf16) tensors.
std::vector<TensorDesc> LlamaTensorLayout(const ModelArch& arch, DType dtype);

}  // namespace wafer::host

// Loads a Hugging Face Llama checkpoint directory: config.json, model.safetensors (or shards
// named by model.safetensors.index.json) and, optionally, tokenizer.json.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/result.h"
#include "host/board/board_types.h"
#include "host/models/model_config.h"
#include "host/models/safetensors_file.h"
#include "host/models/tokenizer.h"

namespace wafer::host {

struct CheckpointTensor {
  TensorDesc desc;
  std::span<const std::byte> bytes;  // Into a mapped file of the owning Checkpoint.
};

// A loaded checkpoint. Immutable after LoadCheckpoint; thread-safe to read. The tensor spans stay
// valid as long as the Checkpoint lives.
struct Checkpoint {
  std::string name;          // The directory's base name.
  ModelConfig config;        // arch, param_count, torch_dtype, bos/eos.
  std::unique_ptr<Tokenizer> tokenizer;  // nullptr when the directory has no tokenizer.json.
  // Embedding; per layer attn norm, q, k, v, o, mlp norm, gate, up, down; final norm; LM head
  // (absent when tied: an lm_head.weight in a tied checkpoint is ignored, as transformers does).
  std::vector<CheckpointTensor> tensors;
  std::vector<std::unique_ptr<SafetensorsFile>> files;  // Keeps the mappings alive.

  const ModelArch& arch() const { return config.arch; }
  uint64_t total_bytes() const;
};

// The HF name -> role/layer mapping: "model.layers.3.mlp.up_proj.weight" -> kWUp, layer 3.
// Returns false for a name that is not a Llama weight.
bool ParseTensorName(const std::string& name, TensorRole* role, uint32_t* layer);

// The HF name of a role/layer (inverse of ParseTensorName).
std::string TensorName(TensorRole role, uint32_t layer);

// The shape `arch` requires for `role`, [out, in] for projections.
std::vector<uint64_t> ExpectedTensorShape(const ModelArch& arch, TensorRole role);

// Loads and validates `dir`. If `dir` holds model.checksums.json (see checksum_manifest.h), every
// file it lists is first checked against its length and CRC-32C, before anything is parsed; files
// it does not list are not checked. Every tensor must be present exactly once with the shape the
// config requires; unknown tensors are refused (rotary_emb.inv_freq buffers of old checkpoints are
// skipped). With an index, every weight_map entry must be in the shard it names and every shard
// tensor in the weight_map; shard names must be plain file names. An Error's message names the
// file and tensor at fault.
//
// Returns:
//   NOT_FOUND        - no config.json or no model.safetensors / index, a missing shard, or a
//                      file the checksum manifest lists is missing.
//   INVALID_ARGUMENT - bad config or tokenizer, missing/unknown/duplicate/misshapen tensor,
//                      unsupported dtype, bad index, malformed checksum manifest.
//   DATA_LOSS        - a corrupt or truncated safetensors file, or a listed file whose length or
//                      CRC-32C differs from the manifest.
//   UNAVAILABLE      - a file could not be read.
HostResult<std::unique_ptr<Checkpoint>> LoadCheckpoint(const std::string& dir);

}  // namespace wafer::host

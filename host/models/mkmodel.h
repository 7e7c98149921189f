// wafer-mkmodel: writes a small random Llama checkpoint in the Hugging Face layout
// (config.json, model.safetensors or shards + index, tokenizer.json), deterministic for a seed.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/result.h"
#include "host/board/board_types.h"

namespace wafer::host {

enum class ModelPreset : uint8_t { kTiny, kSmall, kMedium, kDemo };

struct MkModelOptions {
  std::string out_dir;
  ModelPreset preset = ModelPreset::kTiny;
  DType dtype = DType::kF32;
  bool tied = false;
  uint64_t seed = 1;
  uint32_t shards = 1;  // 1: model.safetensors; more: model-0000i-of-0000n.safetensors + index.
  bool checksums = true;  // Also write model.checksums.json over every file written.
};

// The architecture of a preset (vocab_size filled in by the tokenizer the preset trains):
// tiny: hidden 64, 2 layers, 4 heads, 2 kv heads, intermediate 192, max_position 1024, 256 merges;
// small: hidden 256, 4 layers, 8 heads, 4 kv heads, intermediate 768, max_position 2048,
// 512 merges; medium (for benchmarks, ~120M parameters: ~240 MB in bf16): hidden 1024, 8 layers,
// 16 heads, 4 kv heads, intermediate 4096, max_position 2048, 512 merges; demo: hidden 640 (at
// least the vocabulary), 2 layers, 4 heads of 32, 2 kv heads, intermediate 256, max_position
// 1024, 256 merges. The demo's weights are not random noise: its embedding is one-hot, its
// attention and MLP outputs (o_proj, down_proj) are zero, and its LM head holds the log-probabilities
// of a token bigram model of the embedded sample, so the real forward pass produces readable text.
ModelArch PresetArch(ModelPreset preset, bool tied);

// The tokenizer.json of a byte-level BPE learned from the embedded English and code sample:
// 256 byte tokens, then `merges` merges (fewer if the sample runs out of pairs), then the added
// tokens <|begin_of_text|> and <|end_of_text|>. Deterministic.
std::string TrainTokenizerJson(uint32_t merges);

// Parses command-line arguments (without argv[0]): --out DIR (required),
// --preset tiny|small|medium|demo, --dtype f32|bf16|f16, --tied, --seed N, --shards N (1..64),
// --no-checksums.
// Returns INVALID_ARGUMENT, the message naming the flag, for an unknown flag or a bad value.
HostResult<MkModelOptions> ParseMkModelArgs(std::span<const std::string_view> args);

// Creates `options.out_dir` (and parents) and writes the checkpoint into it, with
// model.checksums.json unless `options.checksums` is false (then a stale one is removed).
//
// Returns:
//   OK               - the checkpoint is written.
//   INVALID_ARGUMENT - bad options (no output directory, more shards than tensors, a demo preset
//                      with a tied head).
//   UNAVAILABLE      - the directory or a file cannot be created or written; the message names it.
//   INTERNAL         - the generated tokenizer does not parse (a bug).
HostStatus MakeModel(const MkModelOptions& options);

}  // namespace wafer::host

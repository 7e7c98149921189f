// Parses a Hugging Face config.json of the Llama family into a ModelArch.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/result.h"
#include "host/board/board_types.h"

namespace wafer::host {

struct ModelConfig {
  ModelArch arch;
  std::string torch_dtype;  // As given ("bfloat16", "float32", ...); empty when absent.
  uint32_t bos_token_id = 0;
  uint32_t eos_token_id = 0;
  bool has_bos = false;
  bool has_eos = false;
  uint64_t param_count = 0;  // CountParameters(arch).
};

// Weights in a Llama model of `arch` (embedding, every layer, final norm, LM head unless tied).
uint64_t CountParameters(const ModelArch& arch);

// Parses config.json text. Accepts architectures ["LlamaForCausalLM"] (or model_type "llama"),
// requires vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads and
// max_position_embeddings; num_key_value_heads defaults to the heads, head_dim to hidden / heads,
// rope_theta to 10000, rms_norm_eps to 1e-6, tie_word_embeddings to false. rope_scaling may be
// null or {"rope_type": "llama3", factor, low_freq_factor, high_freq_factor,
// original_max_position_embeddings}. `source` names the file in the Error's message.
//
// Returns:
//   INVALID_ARGUMENT - bad JSON, another architecture, a missing, wrong-typed or impossible
//                      field (heads not divisible by kv heads, odd head_dim, ...).
HostResult<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source);

// Reads and parses a config.json. Returns NOT_FOUND/UNAVAILABLE (file) or as ParseModelConfig.
HostResult<ModelConfig> LoadModelConfig(const std::string& path);

// The config.json that ParseModelConfig reads back as `arch` (used by wafer-mkmodel).
std::string ModelConfigJson(const ModelArch& arch, std::string_view torch_dtype,
                            uint32_t bos_token_id, uint32_t eos_token_id);

}  // namespace wafer::host

// The config.json parser (it ships with a checkpoint: outside input): never crashes, a refusal
// always says why, and an accepted architecture passes its own consistency checks.
#include "host/models/mkmodel.h"
#include "host/models/model_config.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;
using ::wafer::ModelArch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = ParseModelConfig(text, "fuzz/config.json");
  if (!config.ok()) {
    FUZZ_CHECK(!config.error().message.empty());
    return 0;
  }
  const ModelArch& arch = config->arch;
  FUZZ_CHECK(arch.num_heads > 0 && arch.num_kv_heads > 0 && arch.num_heads % arch.num_kv_heads == 0);
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  ModelArch tiny = PresetArch(ModelPreset::kTiny, false);
  tiny.vocab_size = 300;
  ModelArch small = PresetArch(ModelPreset::kSmall, true);
  small.vocab_size = 600;
  return {ModelConfigJson(tiny, "float32", 1, 2), ModelConfigJson(small, "bfloat16", 1, 2),
          R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 2048,
              "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
              "num_key_value_heads": 8, "max_position_embeddings": 131072,
              "rope_theta": 500000.0, "rms_norm_eps": 1e-05, "tie_word_embeddings": true,
              "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192}})"};
}

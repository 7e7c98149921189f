#include "host/models/model_config.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

#include "host/models/safetensors_file.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;

// Reads fields of one JSON object, remembering the first error as a detail naming the field.
class FieldReader {
 public:
  FieldReader(const Json& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

  // A positive integer that fits in uint32. Absent: `fallback` if given, otherwise an error.
  uint32_t PositiveInt(const char* key, int64_t fallback = -1) {
    const Json* v = Get(key);
    if (v == nullptr) {
      if (fallback < 0) Error(key, "is required");
      return fallback < 0 ? 0 : static_cast<uint32_t>(fallback);
    }
    if (!v->is_number_integer()) return Error(key, "must be an integer"), 0;
    const int64_t x = v->get<int64_t>();
    if (x <= 0 || x > std::numeric_limits<uint32_t>::max()) {
      return Error(key, "must be a positive 32-bit integer, not " + v->dump()), 0;
    }
    return static_cast<uint32_t>(x);
  }

  // A finite positive number; absent gives `fallback`.
  float PositiveFloat(const char* key, float fallback) {
    const Json* v = Get(key);
    if (v == nullptr) return fallback;
    if (!v->is_number()) return Error(key, "must be a number"), fallback;
    const double x = v->get<double>();
    if (!(x > 0) || !std::isfinite(x) || x > std::numeric_limits<float>::max()) {
      return Error(key, "must be a finite positive number, not " + v->dump()), fallback;
    }
    return static_cast<float>(x);
  }

  bool Bool(const char* key, bool fallback) {
    const Json* v = Get(key);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return Error(key, "must be true or false"), fallback;
    return v->get<bool>();
  }

  // nullptr when absent or null.
  const Json* Get(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }

  void Error(const std::string& key, const std::string& what) {
    if (error_.empty()) error_ = prefix_ + "field '" + key + "' " + what;
  }
  const std::string& error() const { return error_; }

 private:
  const Json& obj_;
  std::string prefix_;
  std::string error_;
};

Error Fail(std::string message) {
  return Error{StatusCode::kInvalidArgument, std::move(message)};
}

// The shortest decimal that reads back as the same float (1e-05, not 9.999999747378752e-06).
double ShortFloat(float f) {
  for (int digits = 6; digits < 10; ++digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(f));
    const double d = std::strtod(buf, nullptr);
    if (static_cast<float>(d) == f) return d;
  }
  return f;
}

}  // namespace

uint64_t CountParameters(const ModelArch& a) {
  const uint64_t h = a.hidden_size, v = a.vocab_size, i = a.intermediate_size;
  const uint64_t q = uint64_t{a.num_heads} * a.head_dim, kv = uint64_t{a.num_kv_heads} * a.head_dim;
  const uint64_t per_layer = 2 * h + h * q + 2 * h * kv + q * h + 3 * h * i;
  return v * h + a.num_layers * per_layer + h + (a.tie_embeddings ? 0 : v * h);
}

HostResult<ModelConfig> ParseModelConfig(std::string_view json_text, std::string_view source) {
  const std::string where = std::string(source) + ": ";
  const Json j = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Fail(where + "not a JSON object");
  ModelConfig c;
  try {
    bool llama = false;
    if (auto it = j.find("architectures"); it != j.end() && it->is_array()) {
      for (const Json& name : *it) llama |= name.is_string() && name.get<std::string>() == "LlamaForCausalLM";
      if (!llama) return Fail(where + "architectures " + it->dump() + " is not LlamaForCausalLM");
    } else if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string()) {
      llama = mt->get<std::string>() == "llama";
      if (!llama) return Fail(where + "model_type " + mt->dump() + " is not llama");
    } else {
      return Fail(where + "field 'architectures' is required (LlamaForCausalLM)");
    }

    FieldReader r(j, where);
    ModelArch& a = c.arch;
    a.vocab_size = r.PositiveInt("vocab_size");
    a.hidden_size = r.PositiveInt("hidden_size");
    a.intermediate_size = r.PositiveInt("intermediate_size");
    a.num_layers = r.PositiveInt("num_hidden_layers");
    a.num_heads = r.PositiveInt("num_attention_heads");
    a.num_kv_heads = r.PositiveInt("num_key_value_heads", a.num_heads);
    a.max_position = r.PositiveInt("max_position_embeddings");
    if (!r.error().empty()) return Fail(r.error());
    if (a.hidden_size % a.num_heads != 0 && r.Get("head_dim") == nullptr) {
      return Fail(where + "hidden_size " + std::to_string(a.hidden_size) +
                      " is not divisible by num_attention_heads " +
                      std::to_string(a.num_heads) + " and head_dim is not given");
    }
    a.head_dim = r.PositiveInt("head_dim", a.hidden_size / a.num_heads);
    a.rope_theta = r.PositiveFloat("rope_theta", 10000.0f);
    a.rms_norm_eps = r.PositiveFloat("rms_norm_eps", 1e-6f);
    a.tie_embeddings = r.Bool("tie_word_embeddings", false);
    if (const Json* dt = r.Get("torch_dtype")) {
      if (!dt->is_string()) r.Error("torch_dtype", "must be a string");
      else c.torch_dtype = dt->get<std::string>();
    }
    if (const Json* bos = r.Get("bos_token_id"); bos != nullptr && bos->is_number_unsigned()) {
      c.bos_token_id = bos->get<uint32_t>();
      c.has_bos = true;
    }
    if (const Json* eos = r.Get("eos_token_id"); eos != nullptr && eos->is_number_unsigned()) {
      c.eos_token_id = eos->get<uint32_t>();
      c.has_eos = true;
    }
    if (!r.error().empty()) return Fail(r.error());

    if (const Json* rs = r.Get("rope_scaling")) {
      if (!rs->is_object()) return Fail(where + "field 'rope_scaling' must be an object or null");
      FieldReader s(*rs, where + "rope_scaling: ");
      const Json* type = s.Get("rope_type");
      if (type == nullptr) type = s.Get("type");
      if (type == nullptr || !type->is_string() || type->get<std::string>() != "llama3") {
        return Fail(where + "rope_scaling.rope_type must be \"llama3\" (others are not "
                            "supported), got " + (type ? type->dump() : "nothing"));
      }
      RopeScaling& rope = a.rope_scaling;
      rope.factor = s.PositiveFloat("factor", 0);
      rope.low_freq_factor = s.PositiveFloat("low_freq_factor", 0);
      rope.high_freq_factor = s.PositiveFloat("high_freq_factor", 0);
      rope.original_max_position = s.PositiveInt("original_max_position_embeddings");
      if (!s.error().empty()) return Fail(s.error());
      if (rope.factor == 0 || rope.low_freq_factor == 0 || rope.high_freq_factor == 0) {
        return Fail(where + "rope_scaling needs factor, low_freq_factor and high_freq_factor");
      }
      if (!(rope.high_freq_factor > rope.low_freq_factor)) {
        return Fail(where + "rope_scaling.high_freq_factor must exceed low_freq_factor");
      }
    }
  } catch (const std::exception& e) {
    return Fail(where + "malformed: " + e.what());
  }

  const ModelArch& a = c.arch;
  if (a.num_heads % a.num_kv_heads != 0) {
    return Fail(where + "num_attention_heads " + std::to_string(a.num_heads) +
                    " is not a multiple of num_key_value_heads " +
                    std::to_string(a.num_kv_heads));
  }
  if (a.head_dim % 2 != 0) {
    return Fail(where + "head_dim " + std::to_string(a.head_dim) + " must be even (rotary)");
  }
  if (!(a.rope_theta > 1)) return Fail(where + "rope_theta must exceed 1");
  c.param_count = CountParameters(a);
  return c;
}

HostResult<ModelConfig> LoadModelConfig(const std::string& path) {
  WAFER_HOST_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  return ParseModelConfig(text, path);
}

std::string ModelConfigJson(const ModelArch& a, std::string_view torch_dtype,
                            uint32_t bos_token_id, uint32_t eos_token_id) {
  Json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", a.vocab_size},
      {"hidden_size", a.hidden_size},
      {"intermediate_size", a.intermediate_size},
      {"num_hidden_layers", a.num_layers},
      {"num_attention_heads", a.num_heads},
      {"num_key_value_heads", a.num_kv_heads},
      {"head_dim", a.head_dim},
      {"rope_theta", ShortFloat(a.rope_theta)},
      {"rms_norm_eps", ShortFloat(a.rms_norm_eps)},
      {"max_position_embeddings", a.max_position},
      {"tie_word_embeddings", a.tie_embeddings},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"torch_dtype", torch_dtype},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
  };
  if (a.rope_scaling.factor > 0) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", ShortFloat(a.rope_scaling.factor)},
                         {"low_freq_factor", ShortFloat(a.rope_scaling.low_freq_factor)},
                         {"high_freq_factor", ShortFloat(a.rope_scaling.high_freq_factor)},
                         {"original_max_position_embeddings",
                          a.rope_scaling.original_max_position}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  return j.dump(2) + "\n";
}

}  // namespace wafer::host

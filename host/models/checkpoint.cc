#include "host/models/checkpoint.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "host/models/checksum_manifest.h"

namespace wafer::host {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

constexpr std::string_view kLayerPrefix = "model.layers.";

struct LayerSuffix {
  std::string_view suffix;
  TensorRole role;
};
constexpr LayerSuffix kLayerSuffixes[] = {
    {"input_layernorm.weight", TensorRole::kAttnNorm},
    {"self_attn.q_proj.weight", TensorRole::kWq},
    {"self_attn.k_proj.weight", TensorRole::kWk},
    {"self_attn.v_proj.weight", TensorRole::kWv},
    {"self_attn.o_proj.weight", TensorRole::kWo},
    {"post_attention_layernorm.weight", TensorRole::kMlpNorm},
    {"mlp.gate_proj.weight", TensorRole::kWGate},
    {"mlp.up_proj.weight", TensorRole::kWUp},
    {"mlp.down_proj.weight", TensorRole::kWDown},
};

Error Fail(Status status, std::string message) {
  return Error{status.code(), std::move(message)};
}

std::string ShapeString(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool IsPerLayer(TensorRole role) {
  return role != TensorRole::kEmbedding && role != TensorRole::kFinalNorm &&
         role != TensorRole::kLmHead;
}

// Sort key: embedding, layers in order (roles in enum order within a layer), final norm, head.
uint64_t OrderKey(TensorRole role, uint32_t layer) {
  if (role == TensorRole::kEmbedding) return 0;
  if (role == TensorRole::kFinalNorm) return ~uint64_t{0} - 1;
  if (role == TensorRole::kLmHead) return ~uint64_t{0};
  return 1 + uint64_t{layer} * 16 + static_cast<uint64_t>(role);
}

// Opens the files and returns, per tensor name, the file holding it.
HostStatus OpenShards(const fs::path& dir, Checkpoint& ckpt,
                      std::map<std::string, const SafetensorsTensor*>& by_name) {
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  std::error_code ec;
  if (!fs::exists(index, ec)) {
    if (!fs::exists(single, ec)) {
      return Fail(NotFound(), dir.string() + ": has neither model.safetensors nor "
                                             "model.safetensors.index.json");
    }
    WAFER_HOST_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(single.string()));
    for (const SafetensorsTensor& t : file->tensors()) by_name[t.name] = &t;
    ckpt.files.push_back(std::move(file));
    return HostOk();
  }
  WAFER_HOST_ASSIGN_OR_RETURN(const std::string text, ReadFile(index.string()));
  const std::string where = index.string() + ": ";
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
      !j["weight_map"].is_object()) {
    return Fail(InvalidArgument(), where + "needs a JSON object 'weight_map'");
  }
  std::map<std::string, std::string> weight_map;  // tensor -> shard
  std::set<std::string> shards;
  for (const auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) {
      return Fail(InvalidArgument(), where + "weight_map['" + name + "'] is not a string");
    }
    const std::string file = shard.get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
      return Fail(InvalidArgument(),
                  where + "weight_map['" + name + "'] = '" + file + "' is not a plain file name");
    }
    weight_map[name] = file;
    shards.insert(file);
  }
  for (const std::string& shard : shards) {
    const fs::path path = dir / shard;
    if (!fs::exists(path, ec)) {
      return Fail(NotFound(), where + "names shard " + shard + ", which does not exist");
    }
    WAFER_HOST_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path.string()));
    for (const SafetensorsTensor& t : file->tensors()) {
      auto it = weight_map.find(t.name);
      if (it == weight_map.end() || it->second != shard) {
        return Fail(InvalidArgument(),
                    path.string() + ": tensor '" + t.name + "' is not mapped to this shard in " +
                        index.filename().string());
      }
      if (!by_name.emplace(t.name, &t).second) {
        return Fail(InvalidArgument(), path.string() + ": duplicate tensor '" + t.name + "'");
      }
    }
    ckpt.files.push_back(std::move(file));
  }
  for (const auto& [name, shard] : weight_map) {
    if (!by_name.contains(name)) {
      return Fail(InvalidArgument(),
                  where + "tensor '" + name + "' is mapped to " + shard + " but is not in it");
    }
  }
  return HostOk();
}

}  // namespace

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const CheckpointTensor& t : tensors) total += t.desc.byte_size;
  return total;
}

bool ParseTensorName(const std::string& name, TensorRole* role, uint32_t* layer) {
  *layer = 0;
  if (name == "model.embed_tokens.weight") return *role = TensorRole::kEmbedding, true;
  if (name == "model.norm.weight") return *role = TensorRole::kFinalNorm, true;
  if (name == "lm_head.weight") return *role = TensorRole::kLmHead, true;
  if (!name.starts_with(kLayerPrefix)) return false;
  const char* begin = name.data() + kLayerPrefix.size();
  const char* end = name.data() + name.size();
  uint32_t n = 0;
  auto [ptr, ec] = std::from_chars(begin, end, n);
  if (ec != std::errc() || ptr == begin || ptr == end || *ptr != '.') return false;
  if (*begin == '0' && ptr - begin > 1) return false;  // No leading zeros.
  const std::string_view suffix(ptr + 1, static_cast<size_t>(end - ptr - 1));
  for (const LayerSuffix& s : kLayerSuffixes) {
    if (suffix == s.suffix) {
      *role = s.role;
      *layer = n;
      return true;
    }
  }
  return false;
}

std::string TensorName(TensorRole role, uint32_t layer) {
  switch (role) {
    case TensorRole::kEmbedding: return "model.embed_tokens.weight";
    case TensorRole::kFinalNorm: return "model.norm.weight";
    case TensorRole::kLmHead: return "lm_head.weight";
    default: break;
  }
  for (const LayerSuffix& s : kLayerSuffixes) {
    if (s.role == role) return std::string(kLayerPrefix) + std::to_string(layer) + "." + std::string(s.suffix);
  }
  return "";
}

std::vector<uint64_t> ExpectedTensorShape(const ModelArch& a, TensorRole role) {
  const uint64_t h = a.hidden_size, q = uint64_t{a.num_heads} * a.head_dim,
                 kv = uint64_t{a.num_kv_heads} * a.head_dim, in = a.intermediate_size;
  switch (role) {
    case TensorRole::kEmbedding:
    case TensorRole::kLmHead: return {a.vocab_size, h};
    case TensorRole::kAttnNorm:
    case TensorRole::kMlpNorm:
    case TensorRole::kFinalNorm: return {h};
    case TensorRole::kWq: return {q, h};
    case TensorRole::kWk:
    case TensorRole::kWv: return {kv, h};
    case TensorRole::kWo: return {h, q};
    case TensorRole::kWGate:
    case TensorRole::kWUp: return {in, h};
    case TensorRole::kWDown: return {h, in};
  }
  return {};
}

HostResult<std::unique_ptr<Checkpoint>> LoadCheckpoint(const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Fail(NotFound(), dir_name + ": not a directory");
  }
  // Integrity first: a corrupted file is DATA_LOSS, not whatever its parse happens to say.
  WAFER_HOST_RETURN_IF_ERROR(VerifyChecksumManifest(dir_name));
  auto ckpt = std::make_unique<Checkpoint>();
  ckpt->name = fs::absolute(dir, ec).lexically_normal().filename().string();
  if (ckpt->name.empty()) ckpt->name = fs::absolute(dir, ec).lexically_normal().parent_path().filename().string();
  WAFER_HOST_ASSIGN_OR_RETURN(ckpt->config, LoadModelConfig((dir / "config.json").string()));
  const ModelArch& arch = ckpt->config.arch;

  const fs::path tokenizer_path = dir / "tokenizer.json";
  if (fs::exists(tokenizer_path, ec)) {
    WAFER_HOST_ASSIGN_OR_RETURN(ckpt->tokenizer, Tokenizer::Load(tokenizer_path.string()));
    if (ckpt->tokenizer->vocab_size() > arch.vocab_size) {
      return Fail(InvalidArgument(),
                  tokenizer_path.string() + ": has ids up to " +
                      std::to_string(ckpt->tokenizer->vocab_size() - 1) +
                      " but config.json vocab_size is " + std::to_string(arch.vocab_size));
    }
  }

  std::map<std::string, const SafetensorsTensor*> by_name;
  WAFER_HOST_RETURN_IF_ERROR(OpenShards(dir, *ckpt, by_name));
  auto file_of = [&](const SafetensorsTensor* t) -> std::string {
    for (const auto& f : ckpt->files) {
      if (!f->tensors().empty() && t >= &f->tensors().front() && t <= &f->tensors().back()) {
        return f->path();
      }
    }
    return dir_name;
  };

  std::map<uint64_t, CheckpointTensor> ordered;
  for (const auto& [name, t] : by_name) {
    TensorRole role;
    uint32_t layer;
    if (!ParseTensorName(name, &role, &layer)) {
      if (name.ends_with("self_attn.rotary_emb.inv_freq")) continue;  // A derived buffer.
      return Fail(InvalidArgument(),
                  file_of(t) + ": unknown tensor '" + name + "' (not a Llama weight)");
    }
    if (role == TensorRole::kLmHead && arch.tie_embeddings) continue;
    if (IsPerLayer(role) && layer >= arch.num_layers) {
      return Fail(InvalidArgument(),
                  file_of(t) + ": tensor '" + name + "' is for layer " + std::to_string(layer) +
                      " but config.json has " + std::to_string(arch.num_layers) + " layers");
    }
    const std::vector<uint64_t> want = ExpectedTensorShape(arch, role);
    if (t->shape != want) {
      return Fail(InvalidArgument(),
                  file_of(t) + ": tensor '" + name + "' has shape " + ShapeString(t->shape) +
                      " but config.json implies " + ShapeString(want));
    }
    CheckpointTensor ct;
    ct.desc.name = name;
    ct.desc.role = role;
    ct.desc.layer = layer;
    ct.desc.dtype = t->dtype;
    ct.desc.shape = t->shape;
    ct.desc.byte_size = t->bytes.size();
    ct.bytes = t->bytes;
    ordered.emplace(OrderKey(role, layer), std::move(ct));
  }
  // Every required tensor present (ParseTensorName + the map key make duplicates impossible).
  auto require = [&](TensorRole role, uint32_t layer) -> HostStatus {
    if (ordered.contains(OrderKey(role, layer))) return HostOk();
    return Fail(InvalidArgument(),
                dir_name + ": missing tensor '" + TensorName(role, layer) + "'");
  };
  WAFER_HOST_RETURN_IF_ERROR(require(TensorRole::kEmbedding, 0));
  for (uint32_t l = 0; l < arch.num_layers; ++l) {
    for (const LayerSuffix& s : kLayerSuffixes) WAFER_HOST_RETURN_IF_ERROR(require(s.role, l));
  }
  WAFER_HOST_RETURN_IF_ERROR(require(TensorRole::kFinalNorm, 0));
  if (!arch.tie_embeddings) WAFER_HOST_RETURN_IF_ERROR(require(TensorRole::kLmHead, 0));
  for (auto& [key, t] : ordered) ckpt->tensors.push_back(std::move(t));
  return ckpt;
}

}  // namespace wafer::host

#include "host/models/mkmodel.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>

#include "host/models/checkpoint.h"
#include "host/models/checksum_manifest.h"
#include "host/models/model_config.h"
#include "host/models/safetensors_file.h"
#include "host/models/tokenizer.h"

namespace wafer::host {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

// What the tokenizer learns from: plain English and a little code, so merges look familiar.
constexpr std::string_view kSample = R"(The quick brown fox jumps over the lazy dog.
A wafer-scale engine keeps the weights of a model in on-chip memory, so the time to produce a token
is set by the fabric and not by a trip to external memory. The host schedules the work: it places
each layer on a region of the wafer, streams the prompt in, and collects one token per sequence at
every step. When a sequence finishes, its slot is given to the next request in the queue.
Operators want to know what the board is doing. They read the temperature of each region, the power
that the board draws, the number of tokens per second, and the errors that the memory corrected.
If a region runs too hot, the firmware lowers the clock and tells the host, which then sends less
work until the region has cooled down again. There is no magic here, only careful bookkeeping.
In the beginning the model knows nothing; it learns from text like this, one token at a time, and
the more it reads, the better it becomes at guessing what comes next in the story that it is told.
Once upon a time there was a small robot who lived in a quiet house by the sea. Every morning the
robot would walk along the shore and count the waves, and every evening it would write the number
in a little book. One day the number was different, and the robot wondered why.

int main(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::printf("argument %d: %s\n", i, argv[i]);
  }
  return 0;
}

def fibonacci(n):
    """Return the first n Fibonacci numbers."""
    result = []
    a, b = 0, 1
    for _ in range(n):
        result.append(a)
        a, b = b, a + b
    return result

for (const auto& token : tokens) {
  if (token.id == end_of_text) break;
  output += tokenizer.Decode(token.id);
}
Status status = engine->Forward(slots, tokens, logits);
if (!status.ok()) return status;
)";

// splitmix64 draws, Box-Muller normals: the same numbers on every platform for a seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double Normal() {
    return std::sqrt(-2 * std::log(Uniform())) * std::cos(2 * std::numbers::pi * Uniform());
  }

 private:
  uint64_t state_;
};

uint16_t FloatToBFloat16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0x7fffu + ((u >> 16) & 1u);  // Round to nearest even.
  return static_cast<uint16_t>(u >> 16);
}

uint16_t FloatToHalf(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return sign | 0x7e00u;   // NaN.
  if (x >= 0x477ff000u) return sign | 0x7c00u;  // Rounds to infinity.
  if (x < 0x38800000u) {                        // Below 2^-14: subnormal (exact scaling).
    return sign | static_cast<uint16_t>(std::nearbyint(std::bit_cast<float>(x) * 16777216.0f));
  }
  uint32_t h = (((x >> 23) - 112u) << 10) | ((x & 0x7fffffu) >> 13);
  const uint32_t rest = x & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return sign | static_cast<uint16_t>(h);
}

std::vector<std::byte> EncodeValues(const std::vector<float>& values, DType dtype) {
  std::vector<std::byte> out(values.size() * DTypeSize(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::kF32) {
      const uint32_t u = std::bit_cast<uint32_t>(values[i]);
      for (int b = 0; b < 4; ++b) out[4 * i + b] = static_cast<std::byte>(u >> (8 * b));
    } else {
      const uint16_t h = dtype == DType::kBF16 ? FloatToBFloat16(values[i]) : FloatToHalf(values[i]);
      out[2 * i] = static_cast<std::byte>(h & 0xff);
      out[2 * i + 1] = static_cast<std::byte>(h >> 8);
    }
  }
  return out;
}

const char* TorchDType(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "float32";
    case DType::kF16: return "float16";
    case DType::kBF16: return "bfloat16";
  }
  return "float32";
}

Error Fail(Status status, std::string message) {
  return Error{status.code(), std::move(message)};
}

bool ParseUint(std::string_view s, uint64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

constexpr double kEmbeddingStddev = 0.02;  // transformers' initializer_range.

}  // namespace

ModelArch PresetArch(ModelPreset preset, bool tied) {
  ModelArch a;
  if (preset == ModelPreset::kTiny) {
    a.hidden_size = 64;
    a.num_layers = 2;
    a.num_heads = 4;
    a.num_kv_heads = 2;
    a.intermediate_size = 192;
    a.max_position = 1024;
  } else if (preset == ModelPreset::kSmall) {
    a.hidden_size = 256;
    a.num_layers = 4;
    a.num_heads = 8;
    a.num_kv_heads = 4;
    a.intermediate_size = 768;
    a.max_position = 2048;
  } else if (preset == ModelPreset::kDemo) {
    a.hidden_size = 640;
    a.num_layers = 2;
    a.num_heads = 4;
    a.num_kv_heads = 2;
    a.intermediate_size = 256;
    a.max_position = 1024;
  } else {
    a.hidden_size = 1024;
    a.num_layers = 8;
    a.num_heads = 16;
    a.num_kv_heads = 4;
    a.intermediate_size = 4096;
    a.max_position = 2048;
  }
  a.head_dim = preset == ModelPreset::kDemo ? 32 : a.hidden_size / a.num_heads;
  a.rope_theta = 10000.0f;
  a.rms_norm_eps = 1e-5f;
  a.tie_embeddings = tied;
  return a;
}

std::string TrainTokenizerJson(uint32_t merges) {
  const auto& spell = ByteToUnicode();
  std::vector<std::string> token(spell.begin(), spell.end());  // id -> byte-level spelling
  std::map<std::string, uint32_t> id_of;
  for (uint32_t b = 0; b < 256; ++b) id_of[token[b]] = b;

  std::map<std::string_view, uint64_t> word_count;
  for (std::string_view w : PreTokenize(kSample)) ++word_count[w];
  std::vector<std::pair<std::vector<uint32_t>, uint64_t>> words;
  for (const auto& [w, count] : word_count) {
    std::vector<uint32_t> ids;
    for (char c : w) ids.push_back(static_cast<unsigned char>(c));
    words.emplace_back(std::move(ids), count);
  }

  Json merge_list = Json::array();
  for (uint32_t m = 0; m < merges; ++m) {
    std::map<std::pair<uint32_t, uint32_t>, uint64_t> pairs;
    for (const auto& [ids, count] : words) {
      for (size_t i = 0; i + 1 < ids.size(); ++i) pairs[{ids[i], ids[i + 1]}] += count;
    }
    // The most frequent pair; the smallest ids win ties (map order), so training is deterministic.
    std::pair<uint32_t, uint32_t> best{};
    uint64_t best_count = 0;
    for (const auto& [pair, count] : pairs) {
      if (count > best_count) best = pair, best_count = count;
    }
    if (best_count == 0) break;  // Every word is a single token.
    const std::string merged = token[best.first] + token[best.second];
    auto [it, fresh] = id_of.emplace(merged, static_cast<uint32_t>(token.size()));
    if (fresh) token.push_back(merged);
    merge_list.push_back(token[best.first] + " " + token[best.second]);
    for (auto& [ids, count] : words) {
      std::vector<uint32_t> out;
      out.reserve(ids.size());
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i + 1 < ids.size() && ids[i] == best.first && ids[i + 1] == best.second) {
          out.push_back(it->second);
          ++i;
        } else {
          out.push_back(ids[i]);
        }
      }
      ids = std::move(out);
    }
  }

  Json vocab = Json::object();
  for (uint32_t id = 0; id < token.size(); ++id) vocab[token[id]] = id;
  const auto n = static_cast<uint32_t>(token.size());
  auto added = [](uint32_t id, const char* content) {
    return Json{{"id", id},          {"content", content}, {"single_word", false},
                {"lstrip", false},   {"rstrip", false},    {"normalized", false},
                {"special", true}};
  };
  const Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                           {"trim_offsets", true}, {"use_regex", true}};
  const Json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {added(n, "<|begin_of_text|>"), added(n + 1, "<|end_of_text|>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", nullptr},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", merge_list}}},
  };
  return j.dump(1) + "\n";
}

HostResult<MkModelOptions> ParseMkModelArgs(std::span<const std::string_view> args) {
  MkModelOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (flag == "--tied") {
      o.tied = true;
      continue;
    }
    if (flag == "--no-checksums") {
      o.checksums = false;
      continue;
    }
    if (flag != "--out" && flag != "--preset" && flag != "--dtype" && flag != "--seed" &&
        flag != "--shards") {
      return Fail(InvalidArgument(), "unknown argument '" + std::string(flag) + "'");
    }
    if (i + 1 >= args.size()) {
      return Fail(InvalidArgument(), std::string(flag) + " needs a value");
    }
    const std::string_view value = args[++i];
    uint64_t n = 0;
    if (flag == "--out") {
      o.out_dir = std::string(value);
    } else if (flag == "--preset") {
      if (value == "tiny") o.preset = ModelPreset::kTiny;
      else if (value == "small") o.preset = ModelPreset::kSmall;
      else if (value == "medium") o.preset = ModelPreset::kMedium;
      else if (value == "demo") o.preset = ModelPreset::kDemo;
      else return Fail(InvalidArgument(), "--preset must be tiny, small, medium or demo, not '" + std::string(value) + "'");
    } else if (flag == "--dtype") {
      if (value == "f32") o.dtype = DType::kF32;
      else if (value == "bf16") o.dtype = DType::kBF16;
      else if (value == "f16") o.dtype = DType::kF16;
      else return Fail(InvalidArgument(), "--dtype must be f32, bf16 or f16, not '" + std::string(value) + "'");
    } else if (flag == "--seed") {
      if (!ParseUint(value, &n)) return Fail(InvalidArgument(), "--seed must be an unsigned integer");
      o.seed = n;
    } else {
      if (!ParseUint(value, &n) || n < 1 || n > 64) {
        return Fail(InvalidArgument(), "--shards must be between 1 and 64");
      }
      o.shards = static_cast<uint32_t>(n);
    }
  }
  if (o.out_dir.empty()) return Fail(InvalidArgument(), "--out DIR is required");
  return o;
}

// log P(next | previous) over the tokens of the embedded sample, as a [vocab, vocab] matrix indexed
// [next][previous], backed off to the unigram distribution so every entry is finite.
std::vector<double> BigramLogProbabilities(const Tokenizer& tokenizer, uint32_t vocab) {
  const std::vector<uint32_t> ids = tokenizer.Encode(kSample);
  std::vector<double> pair(uint64_t{vocab} * vocab, 0.0), from(vocab, 0.0), unigram(vocab, 1.0);
  for (uint32_t id : ids) unigram[id] += 1;
  for (size_t i = 1; i < ids.size(); ++i) {
    pair[uint64_t{ids[i]} * vocab + ids[i - 1]] += 1;
    from[ids[i - 1]] += 1;
  }
  double total = 0;
  for (double u : unigram) total += u;
  constexpr double kBackoff = 0.5;  // Weight of the unigram distribution in every row.
  std::vector<double> logp(pair.size());
  for (uint32_t next = 0; next < vocab; ++next) {
    for (uint32_t prev = 0; prev < vocab; ++prev) {
      const double p = (pair[uint64_t{next} * vocab + prev] + kBackoff * unigram[next] / total) /
                       (from[prev] + kBackoff);
      logp[uint64_t{next} * vocab + prev] = std::log(p);
    }
  }
  return logp;
}

// The demo preset's value for element `i` of a tensor of `role` (see mkmodel.h), or nullopt to
// draw it at random like the other presets.
std::optional<float> DemoValue(TensorRole role, uint64_t i, const ModelArch& arch,
                               const std::vector<double>& bigram) {
  const uint64_t hidden = arch.hidden_size, vocab = arch.vocab_size;
  switch (role) {
    case TensorRole::kEmbedding:  // One-hot: RMSNorm turns row t into sqrt(hidden) * e_t.
      return (i / hidden == i % hidden) ? 1.0f : 0.0f;
    case TensorRole::kWo:
    case TensorRole::kWDown:  // The layers compute, but add nothing to the residual stream.
      return 0.0f;
    case TensorRole::kLmHead: {  // logits[next] = log P(next | t).
      const uint64_t next = i / hidden, prev = i % hidden;
      if (prev >= vocab) return 0.0f;
      return static_cast<float>(bigram[next * vocab + prev] / std::sqrt(double(hidden)));
    }
    default:
      return std::nullopt;
  }
}

HostStatus MakeModel(const MkModelOptions& o) {
  if (o.out_dir.empty()) return Fail(InvalidArgument(), "no output directory");
  const std::string tokenizer_json =
      TrainTokenizerJson(
          o.preset == ModelPreset::kTiny || o.preset == ModelPreset::kDemo ? 256 : 512);
  auto tokenizer = Tokenizer::FromJson(tokenizer_json, "generated tokenizer.json");
  if (!tokenizer.ok()) {
    return Fail(Internal(), "generated tokenizer is invalid: " + tokenizer.error().message);
  }
  ModelArch arch = PresetArch(o.preset, o.tied);
  arch.vocab_size = (*tokenizer)->vocab_size();
  const bool demo = o.preset == ModelPreset::kDemo;
  if (demo && (o.tied || arch.vocab_size > arch.hidden_size)) {
    return Fail(InvalidArgument(), "the demo preset needs an untied head and vocab <= hidden");
  }
  const std::vector<double> bigram =
      demo ? BigramLogProbabilities(**tokenizer, arch.vocab_size) : std::vector<double>();

  // Tensors in checkpoint order. Projections ~ N(0, 1/in) keep activations near unit scale and
  // norms are 1. The embedding is small: RMSNorm rescales it for the first layer anyway, and a
  // large one would dominate the residual stream so that a tied head repeats its input token.
  std::vector<std::pair<TensorRole, uint32_t>> order = {{TensorRole::kEmbedding, 0}};
  for (uint32_t l = 0; l < arch.num_layers; ++l) {
    for (auto role : {TensorRole::kAttnNorm, TensorRole::kWq, TensorRole::kWk, TensorRole::kWv,
                      TensorRole::kWo, TensorRole::kMlpNorm, TensorRole::kWGate, TensorRole::kWUp,
                      TensorRole::kWDown}) {
      order.emplace_back(role, l);
    }
  }
  order.emplace_back(TensorRole::kFinalNorm, 0);
  if (!o.tied) order.emplace_back(TensorRole::kLmHead, 0);
  if (o.shards > order.size()) {
    return Fail(InvalidArgument(), "more shards than tensors");
  }

  Rng rng(o.seed);
  std::vector<SafetensorsWriteTensor> tensors;
  uint64_t total_bytes = 0;
  for (const auto& [role, layer] : order) {
    SafetensorsWriteTensor t;
    t.name = TensorName(role, layer);
    t.dtype = o.dtype;
    t.shape = ExpectedTensorShape(arch, role);
    uint64_t count = 1;
    for (uint64_t d : t.shape) count *= d;
    std::vector<float> values(count);
    const bool norm = t.shape.size() == 1;
    const double stddev = role == TensorRole::kEmbedding ? kEmbeddingStddev
                          : norm                         ? 0.0
                                                         : 1.0 / std::sqrt(double(t.shape[1]));
    for (uint64_t i = 0; i < count; ++i) {
      std::optional<float> fixed = demo ? DemoValue(role, i, arch, bigram) : std::nullopt;
      values[i] = fixed ? *fixed : static_cast<float>(norm ? 1.0 : stddev * rng.Normal());
    }
    t.data = EncodeValues(values, o.dtype);
    total_bytes += t.data.size();
    tensors.push_back(std::move(t));
  }

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) return Fail(Unavailable(), o.out_dir + ": cannot create: " + ec.message());
  const fs::path dir(o.out_dir);
  // Every file written, with its checksum, for model.checksums.json.
  ChecksumManifest manifest;
  auto write = [&](const std::string& name, std::string_view contents) -> HostStatus {
    WAFER_HOST_RETURN_IF_ERROR(WriteFile((dir / name).string(), contents));
    if (o.checksums) manifest[name] = ChecksumOf(std::as_bytes(std::span(contents)));
    return HostOk();
  };
  // A manifest left by a previous run would not match what this run writes.
  fs::remove(dir / kChecksumManifestName, ec);
  const uint32_t bos = arch.vocab_size - 2, eos = arch.vocab_size - 1;
  WAFER_HOST_RETURN_IF_ERROR(
      write("config.json", ModelConfigJson(arch, TorchDType(o.dtype), bos, eos)));
  WAFER_HOST_RETURN_IF_ERROR(write("tokenizer.json", tokenizer_json));
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  // Remove whatever layout a previous run left, so the directory holds exactly one.
  fs::remove(dir / "model.safetensors", ec);
  fs::remove(dir / "model.safetensors.index.json", ec);
  if (o.shards == 1) {
    WAFER_HOST_RETURN_IF_ERROR(write("model.safetensors", EncodeSafetensors(tensors, metadata)));
  } else {
    // Contiguous runs of tensors, each shard closing once it holds its share of the bytes.
    Json weight_map = Json::object();
    size_t next = 0;
    uint64_t written = 0;
    for (uint32_t s = 0; s < o.shards; ++s) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05u-of-%05u.safetensors", s + 1, o.shards);
      const size_t remaining_shards = o.shards - s - 1;
      const uint64_t target = total_bytes * (s + 1) / o.shards;
      const size_t begin = next;
      do {
        written += tensors[next].data.size();
        weight_map[tensors[next].name] = name;
        ++next;
      } while (next < tensors.size() - remaining_shards && written < target);
      if (s + 1 == o.shards) {
        for (; next < tensors.size(); ++next) weight_map[tensors[next].name] = name;
      }
      const std::span<const SafetensorsWriteTensor> part(tensors.data() + begin, next - begin);
      WAFER_HOST_RETURN_IF_ERROR(write(name, EncodeSafetensors(part, metadata)));
    }
    const Json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    WAFER_HOST_RETURN_IF_ERROR(write("model.safetensors.index.json", index.dump(2) + "\n"));
  }
  if (!o.checksums) return HostOk();
  return WriteFile((dir / kChecksumManifestName).string(), ChecksumManifestJson(manifest));
}

}  // namespace wafer::host

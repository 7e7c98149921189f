#include "host/loader/model_source.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/models/checkpoint.h"
#include "host/models/model_config.h"
#include "host/models/tokenizer.h"

namespace wafer::host {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Moves the complete UTF-8 characters at the front of `pending` to `out`, replacing invalid
// bytes with U+FFFD, and leaves an incomplete character at the end in `pending`.
void DrainUtf8(std::string* pending, std::string* out) {
  const std::string& s = *pending;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                                : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4)) {
      out->append("\xEF\xBF\xBD");  // A byte that cannot start a character.
      ++i;
      continue;
    }
    size_t have = 1;
    while (have < len && i + have < s.size() &&
           (static_cast<unsigned char>(s[i + have]) & 0xC0) == 0x80) {
      ++have;
    }
    if (have == len) {
      out->append(s, i, len);
      i += len;
    } else if (i + have == s.size()) {
      break;  // Incomplete at the end: wait for the next token.
    } else {
      out->append("\xEF\xBF\xBD");  // Truncated sequence followed by something else.
      i += have;
    }
  }
  pending->erase(0, i);
}

class TokenizerCodec final : public TextCodec {
 public:
  explicit TokenizerCodec(std::unique_ptr<Tokenizer> tokenizer)
      : tokenizer_(std::move(tokenizer)) {}

  HostResult<std::vector<uint32_t>> Encode(const std::string& text) const override {
    std::vector<uint32_t> ids = tokenizer_->Encode(text);
    if (ids.empty()) return Error{StatusCode::kInvalidArgument, "text produced no tokens"};
    return ids;
  }

  void DecodeIncremental(std::span<const uint32_t> ids, std::string* pending,
                         std::string* out) const override {
    pending->append(tokenizer_->Decode(ids));
    DrainUtf8(pending, out);
  }

 private:
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace

std::string ModelNameFromPath(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

std::vector<TensorDesc> LlamaTensorLayout(const ModelArch& arch, DType dtype) {
  const uint64_t elem = dtype == DType::kF32 ? 4 : 2;
  std::vector<TensorDesc> out;
  auto add = [&](TensorRole role, uint32_t layer) {
    TensorDesc t{TensorName(role, layer), role, layer, dtype, ExpectedTensorShape(arch, role),
                 elem, {}};
    for (uint64_t d : t.shape) t.byte_size *= d;
    out.push_back(std::move(t));
  };
  add(TensorRole::kEmbedding, 0);
  for (uint32_t l = 0; l < arch.num_layers; ++l) {
    for (TensorRole role : {TensorRole::kAttnNorm, TensorRole::kWq, TensorRole::kWk,
                            TensorRole::kWv, TensorRole::kWo, TensorRole::kMlpNorm,
                            TensorRole::kWGate, TensorRole::kWUp, TensorRole::kWDown}) {
      add(role, l);
    }
  }
  add(TensorRole::kFinalNorm, 0);
  if (!arch.tie_embeddings) add(TensorRole::kLmHead, 0);
  return out;
}

void ReleaseResidentPages(const ModelSource& source) {
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (const std::span<const std::byte> bytes : source.data) {
    if (bytes.empty()) continue;
    // Whole pages: the first and last may hold a neighbour's bytes or the header, which come
    // back just as well when read.
    const uintptr_t begin = reinterpret_cast<uintptr_t>(bytes.data()) & ~(page - 1);
    const uintptr_t end = reinterpret_cast<uintptr_t>(bytes.data()) + bytes.size();
    ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);  // Advice only.
  }
}

HostStatus OpenModelSource(const std::string& dir, ModelSource* out) {
  if (!Exists(dir + "/config.json")) {
    return Error{StatusCode::kNotFound, dir + "/config.json: not found"};
  }
  const bool has_weights = Exists(dir + "/model.safetensors") ||
                           Exists(dir + "/model.safetensors.index.json");
  ModelSource source;
  source.name = ModelNameFromPath(dir);
  if (has_weights) {
    auto checkpoint = LoadCheckpoint(dir);
    if (!checkpoint.ok()) return std::move(checkpoint).error();
    std::shared_ptr<Checkpoint> owned(std::move(checkpoint).value().release());
    source.arch = owned->config.arch;
    source.parameters = owned->config.param_count;
    for (const CheckpointTensor& t : owned->tensors) {
      source.tensors.push_back(t.desc);
      source.data.push_back(t.bytes);
    }
    if (owned->tokenizer != nullptr) {
      source.text = std::make_shared<TokenizerCodec>(std::move(owned->tokenizer));
    }
    source.keep_alive = owned;
  } else {
    // Shape-only: config.json alone. Placement and timing are real; tokens are synthetic.
    auto config = LoadModelConfig(dir + "/config.json");
    if (!config.ok()) return std::move(config).error();
    source.arch = config->arch;
    source.parameters = config->param_count;
    source.tensors = LlamaTensorLayout(source.arch, DType::kBF16);
    source.shape_only = true;
    if (Exists(dir + "/tokenizer.json")) {
      auto tokenizer = Tokenizer::Load(dir + "/tokenizer.json");
      if (!tokenizer.ok()) return std::move(tokenizer).error();
      source.text = std::make_shared<TokenizerCodec>(std::move(tokenizer).value());
    }
  }
  *out = std::move(source);
  return HostOk();
}

}  // namespace wafer::host

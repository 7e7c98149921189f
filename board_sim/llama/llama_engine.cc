#include "board_sim/llama/llama_engine.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <thread>

#include "board_sim/llama/internal/kernels.h"
#include "board_sim/llama/staged_tensor.h"

namespace wafer::sim {
namespace {

using internal::RmsNorm;

constexpr uint32_t kRoleCount = 12;

bool IsPerLayer(TensorRole role) {
  switch (role) {
    case TensorRole::kEmbedding:
    case TensorRole::kFinalNorm:
    case TensorRole::kLmHead:
      return false;
    case TensorRole::kAttnNorm:
    case TensorRole::kWq:
    case TensorRole::kWk:
    case TensorRole::kWv:
    case TensorRole::kWo:
    case TensorRole::kMlpNorm:
    case TensorRole::kWGate:
    case TensorRole::kWUp:
    case TensorRole::kWDown:
      return true;
  }
  return false;
}

size_t ElementSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
  }
  return 0;
}

// The shape `arch` requires for a tensor of `role`.
std::vector<uint64_t> ExpectedShape(const ModelArch& a, TensorRole role) {
  const uint64_t hidden = a.hidden_size;
  const uint64_t q_dim = uint64_t{a.num_heads} * a.head_dim;
  const uint64_t kv_dim = uint64_t{a.num_kv_heads} * a.head_dim;
  switch (role) {
    case TensorRole::kEmbedding:
    case TensorRole::kLmHead:
      return {a.vocab_size, hidden};
    case TensorRole::kAttnNorm:
    case TensorRole::kMlpNorm:
    case TensorRole::kFinalNorm:
      return {hidden};
    case TensorRole::kWq:
      return {q_dim, hidden};
    case TensorRole::kWk:
    case TensorRole::kWv:
      return {kv_dim, hidden};
    case TensorRole::kWo:
      return {hidden, q_dim};
    case TensorRole::kWGate:
    case TensorRole::kWUp:
      return {a.intermediate_size, hidden};
    case TensorRole::kWDown:
      return {hidden, a.intermediate_size};
  }
  return {};
}

bool ArchIsValid(const ModelArch& a) {
  if (a.vocab_size == 0 || a.hidden_size == 0 || a.intermediate_size == 0 || a.num_layers == 0 ||
      a.num_heads == 0 || a.num_kv_heads == 0 || a.head_dim == 0) {
    return false;
  }
  if (a.head_dim % 2 != 0 || a.num_heads % a.num_kv_heads != 0) return false;
  if (!(a.rope_theta > 1.0f) || !std::isfinite(a.rope_theta)) return false;
  if (!(a.rms_norm_eps > 0.0f) || !std::isfinite(a.rms_norm_eps)) return false;
  const RopeScaling& rs = a.rope_scaling;
  if (!(rs.factor >= 0.0f) || !std::isfinite(rs.factor)) return false;
  if (rs.factor > 0) {
    if (!(rs.low_freq_factor > 0) || !(rs.high_freq_factor > rs.low_freq_factor) ||
        !std::isfinite(rs.high_freq_factor) || rs.original_max_position == 0) {
      return false;
    }
  }
  return true;
}

// `stage` with layer_count resolved, when it is a part of `a`'s pipeline (see Create).
bool ResolveStage(const ModelArch& a, ModelStage& stage) {
  if (stage.first_layer >= a.num_layers) return false;
  const uint32_t rest = a.num_layers - stage.first_layer;
  if (stage.layer_count > rest) return false;
  if (stage.layer_count == 0) stage.layer_count = rest;
  if (stage.has_embedding && stage.first_layer != 0) return false;
  return !stage.has_head || stage.layer_count == rest;
}

// Whether a stage holds a tensor of `role` (for a per-layer role: in one of its layers).
bool StageHolds(const ModelArch& a, const ModelStage& stage, TensorRole role) {
  switch (role) {
    case TensorRole::kEmbedding:
      // A tied model's last stage keeps its own copy of the embedding as its head.
      return stage.has_embedding || (stage.has_head && a.tie_embeddings);
    case TensorRole::kFinalNorm:
      return stage.has_head;
    case TensorRole::kLmHead:
      return stage.has_head && !a.tie_embeddings;
    default:
      return IsPerLayer(role);  // Every stage has decoder layers; the caller checks which.
  }
}

// Whether a tensor of `role` at `layer`, `dtype` and `shape` with `bytes` bytes is one the
// (resolved) stage holds, with the dtype, shape and byte count `a` requires. Says nothing about
// duplicates.
bool TensorIsValid(const ModelArch& a, const ModelStage& stage, TensorRole role, uint32_t layer,
                   DType dtype, const std::vector<uint64_t>& shape, uint64_t bytes) {
  if (static_cast<uint32_t>(role) >= kRoleCount || !StageHolds(a, stage, role)) return false;
  if (IsPerLayer(role)
          ? layer < stage.first_layer || layer - stage.first_layer >= stage.layer_count
          : layer != 0) {
    return false;
  }
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kBF16) return false;
  if (shape != ExpectedShape(a, role)) return false;
  uint64_t elements = 1;
  for (uint64_t d : shape) elements *= d;  // Dimensions are bounded by uint32 arch fields.
  return bytes == elements * ElementSize(dtype);
}

bool TensorIsValid(const ModelArch& a, const ModelStage& stage, const TensorView& t) {
  return TensorIsValid(a, stage, t.role, t.layer, t.dtype, t.shape, t.bytes.size());
}

// A staged tensor must also be whole.
bool TensorIsValid(const ModelArch& a, const ModelStage& stage, const StagedTensor& t) {
  return t.complete() &&
         TensorIsValid(a, stage, t.role(), t.layer(), t.dtype(), t.shape(), t.byte_size());
}

// A validated view's copy, converted into the engine's layout. Throws std::bad_alloc.
StagedTensor CopyToStaged(const TensorView& t) {
  StagedTensor staged(t.role, t.layer, t.dtype, t.shape);
  if (!staged.Write(0, t.bytes).ok()) throw std::bad_alloc();  // The bytes are the right size.
  return staged;
}

// Helper threads for the matrix products: one per additional core, at most one (the products
// are bound by memory bandwidth, which two cores already saturate on common hosts).
size_t HelperThreads() { return std::thread::hardware_concurrency() > 1 ? 1 : 0; }

// Attention is split over the pool in at most this many ranges of rows.
constexpr size_t kAttentionParts = 16;

}  // namespace

struct LlamaEngine::Impl {
  // A weight matrix copied in its stored dtype (decode streams 2 bytes per bfloat16/binary16
  // weight instead of 4, and the kernels convert on the fly), in the kernels' panel layout.
  using Matrix = internal::PackedMatrix;
  struct Layer {
    std::vector<float> attn_norm, mlp_norm;
    Matrix wq, wk, wv, wo, gate, up, down;
  };
  struct FreeKv {
    void operator()(float* p) const { std::free(p); }
  };
  struct Slot {
    uint32_t tokens = 0;
    // Keys then values, each [stage layer][position][kv_heads * head_dim]: kv_floats() floats,
    // taken (zeroed) by the first Forward that lists the slot.
    std::unique_ptr<float[], FreeKv> kv;
  };

  ModelArch arch;
  ModelStage stage;  // layer_count resolved.
  uint32_t context_length = 0;
  Matrix embedding;  // Stages with the embedding, and a tied model's head.
  std::vector<Layer> layers;  // The stage's; layers[i] is global layer stage.first_layer + i.
  std::vector<float> final_norm;
  Matrix lm_head;  // Empty when tied to the embedding.
  std::vector<double> inv_freq;
  std::vector<Slot> slots;
  internal::Isa isa = internal::Isa::kPortable;
  std::unique_ptr<internal::WorkerPool> pool;

  const Matrix& head() const { return arch.tie_embeddings ? embedding : lm_head; }
  void MatMul(const float* x, size_t rows, const Matrix& w, float* y) {
    internal::MatMul(x, rows, w, y, pool.get(), isa);
  }
  size_t kv_dim() const { return size_t{arch.num_kv_heads} * arch.head_dim; }
  // Floats of one slot's keys (as many again for its values). Create checked that twice this
  // fits a size_t of bytes.
  size_t kv_floats() const { return size_t{stage.layer_count} * context_length * kv_dim(); }
  // `layer` is the stage's own index (0 for its first layer). REQUIRES: s.kv allocated.
  float* KeyAt(Slot& s, uint32_t layer, uint32_t pos) {
    return s.kv.get() + (size_t{layer} * context_length + pos) * kv_dim();
  }
  float* ValueAt(Slot& s, uint32_t layer, uint32_t pos) {
    return s.kv.get() + kv_floats() + (size_t{layer} * context_length + pos) * kv_dim();
  }

  // Where the stage keeps tensor (role, layer): a norm vector or a matrix. False when the stage
  // does not hold it.
  bool Locate(TensorRole role, uint32_t layer, std::vector<float>** norm, Matrix** matrix);
  // Moves a validated, complete tensor's converted storage in (never allocates).
  Status Install(StagedTensor& t);
  // One row's attention over its slot's cached positions 0..pos of layer `l`: `q` is the row's
  // [num_heads * head_dim] query, `out` the same size; `scores` holds pos + 1 floats.
  void Attend(uint32_t l, uint32_t slot, uint32_t pos, const float* q, float* scores, float* out);
  // REQUIRES: Forward's checks passed.
  void Run(std::span<const uint32_t> slot_ids, std::span<const std::span<const uint32_t>> tokens,
           std::span<const float> hidden_in, std::span<float> hidden_out,
           std::span<float> logits);
};

bool LlamaEngine::Impl::Locate(TensorRole role, uint32_t layer, std::vector<float>** norm,
                               Matrix** matrix) {
  *norm = nullptr;
  *matrix = nullptr;
  if (IsPerLayer(role)) {
    if (layer < stage.first_layer || layer - stage.first_layer >= stage.layer_count) return false;
    Layer& l = layers[layer - stage.first_layer];
    switch (role) {
      case TensorRole::kAttnNorm: *norm = &l.attn_norm; return true;
      case TensorRole::kWq: *matrix = &l.wq; return true;
      case TensorRole::kWk: *matrix = &l.wk; return true;
      case TensorRole::kWv: *matrix = &l.wv; return true;
      case TensorRole::kWo: *matrix = &l.wo; return true;
      case TensorRole::kMlpNorm: *norm = &l.mlp_norm; return true;
      case TensorRole::kWGate: *matrix = &l.gate; return true;
      case TensorRole::kWUp: *matrix = &l.up; return true;
      case TensorRole::kWDown: *matrix = &l.down; return true;
      default: return false;
    }
  }
  if (layer != 0 || !StageHolds(arch, stage, role)) return false;
  switch (role) {
    case TensorRole::kEmbedding: *matrix = &embedding; return true;
    case TensorRole::kFinalNorm: *norm = &final_norm; return true;
    case TensorRole::kLmHead: *matrix = &lm_head; return true;
    default: return false;
  }
}

Status LlamaEngine::Impl::Install(StagedTensor& t) {
  std::vector<float>* norm = nullptr;
  Matrix* matrix = nullptr;
  if (!Locate(t.role(), t.layer(), &norm, &matrix)) return InvalidArgument();
  // Validated: a matrix has shape [out, in] (so it was staged as one), a norm shape [hidden].
  if (norm != nullptr) {
    *norm = t.TakeNorm();
  } else {
    *matrix = t.TakeMatrix();
  }
  return OkStatus();
}

namespace {

TensorRole RoleOf(const TensorView& t) { return t.role; }
TensorRole RoleOf(const StagedTensor& t) { return t.role(); }
uint32_t LayerOf(const TensorView& t) { return t.layer; }
uint32_t LayerOf(const StagedTensor& t) { return t.layer(); }

// Whether `tensors` are valid and hold every (role, layer) the (resolved) stage holds exactly
// once, nothing else.
template <typename T>
bool TensorsAreTheStages(const ModelArch& arch, const ModelStage& stage,
                         std::span<const T> tensors) {
  // seen[] is indexed by the stage's own layer index.
  const uint32_t layer_count = stage.layer_count;
  std::vector<uint8_t> seen(size_t{kRoleCount} * layer_count, 0);
  for (const T& t : tensors) {
    if (!TensorIsValid(arch, stage, t)) return false;
    const auto role = static_cast<uint32_t>(RoleOf(t));
    const uint32_t local = IsPerLayer(RoleOf(t)) ? LayerOf(t) - stage.first_layer : 0;
    uint8_t& mark = seen[size_t{role} * layer_count + local];
    if (mark) return false;
    mark = 1;
  }
  for (uint32_t role = 0; role < kRoleCount; ++role) {
    const auto r = static_cast<TensorRole>(role);
    if (!StageHolds(arch, stage, r)) continue;
    const uint32_t layers = IsPerLayer(r) ? layer_count : 1;
    for (uint32_t l = 0; l < layers; ++l) {
      if (!seen[size_t{role} * layer_count + l]) return false;
    }
  }
  return true;
}

// `requested` resolved, when the arch, stage and cache dimensions are valid.
bool CheckShape(const ModelArch& arch, uint32_t slots, uint32_t context_length,
                const ModelStage& requested, ModelStage& stage) {
  stage = requested;
  return ArchIsValid(arch) && slots != 0 && context_length != 0 && ResolveStage(arch, stage);
}

}  // namespace

Result<std::unique_ptr<LlamaEngine>> LlamaEngine::Create(const ModelArch& arch,
                                                         std::span<const TensorView> tensors,
                                                         uint32_t slots,
                                                         uint32_t context_length,
                                                         const ModelStage& requested) {
  ModelStage stage;
  if (!CheckShape(arch, slots, context_length, requested, stage) ||
      !TensorsAreTheStages(arch, stage, tensors)) {
    return InvalidArgument();
  }
  std::vector<StagedTensor> staged;
  try {
    staged.reserve(tensors.size());
    for (const TensorView& t : tensors) staged.push_back(CopyToStaged(t));
  } catch (const std::bad_alloc&) {
    return ResourceExhausted();
  }
  return Create(arch, std::span<StagedTensor>(staged), slots, context_length, requested);
}

Result<std::unique_ptr<LlamaEngine>> LlamaEngine::Create(const ModelArch& arch,
                                                         std::span<StagedTensor> tensors,
                                                         uint32_t slots,
                                                         uint32_t context_length,
                                                         const ModelStage& requested) {
  ModelStage stage;
  if (!CheckShape(arch, slots, context_length, requested, stage) ||
      !TensorsAreTheStages(arch, stage, std::span<const StagedTensor>(tensors))) {
    return InvalidArgument();
  }

  // The KV cache of the stage's layers, were every slot used: slots * 2 * layers * context *
  // kv_dim floats, checked against overflow. Each slot's share is taken on its first use.
  const uint64_t per_slot = uint64_t{stage.layer_count} * context_length * arch.num_kv_heads *
                            arch.head_dim;
  if (per_slot > std::numeric_limits<size_t>::max() / sizeof(float) / 2 / slots) {
    return ResourceExhausted();
  }

  std::unique_ptr<Impl> impl;
  try {
    impl = std::make_unique<Impl>();
    impl->layers.resize(stage.layer_count);
    impl->slots.resize(slots);
    if (const size_t helpers = HelperThreads(); helpers > 0) {
      impl->pool = std::make_unique<internal::WorkerPool>(helpers);
    }
    impl->inv_freq = internal::RopeInvFreq(
        arch.head_dim, arch.rope_theta, arch.rope_scaling.factor, arch.rope_scaling.low_freq_factor,
        arch.rope_scaling.high_freq_factor, arch.rope_scaling.original_max_position);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted();
  } catch (const std::length_error&) {
    return ResourceExhausted();
  }
  impl->arch = arch;
  impl->stage = stage;
  impl->context_length = context_length;
  impl->isa = internal::BestIsa();
  // Last, when nothing can fail any more: the tensors are left untouched on every error above.
  for (StagedTensor& t : tensors) WAFER_RETURN_IF_ERROR(impl->Install(t));
  return std::unique_ptr<LlamaEngine>(new LlamaEngine(std::move(impl)));
}

LlamaEngine::LlamaEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaEngine::~LlamaEngine() = default;

void LlamaEngine::ResetSlot(uint32_t slot) {
  if (slot < impl_->slots.size()) impl_->slots[slot].tokens = 0;
}

uint32_t LlamaEngine::context_tokens(uint32_t slot) const {
  return slot < impl_->slots.size() ? impl_->slots[slot].tokens : 0;
}
uint32_t LlamaEngine::slots() const { return static_cast<uint32_t>(impl_->slots.size()); }
uint32_t LlamaEngine::context_length() const { return impl_->context_length; }
const ModelArch& LlamaEngine::arch() const { return impl_->arch; }
const ModelStage& LlamaEngine::stage() const { return impl_->stage; }

Status LlamaEngine::ReplaceTensor(const TensorView& t) {
  if (!TensorIsValid(impl_->arch, impl_->stage, t)) return InvalidArgument();
  try {
    StagedTensor staged = CopyToStaged(t);  // Built before it replaces the old one.
    return impl_->Install(staged);
  } catch (const std::bad_alloc&) {
    return ResourceExhausted();
  }
}

Status LlamaEngine::ReplaceTensor(StagedTensor& t) {
  if (!TensorIsValid(impl_->arch, impl_->stage, t)) return InvalidArgument();
  return impl_->Install(t);
}

uint64_t LlamaEngine::kv_bytes(uint32_t slot) const {
  if (slot >= impl_->slots.size() || !impl_->slots[slot].kv) return 0;
  return uint64_t{2} * impl_->kv_floats() * sizeof(float);
}

uint64_t LlamaEngine::weight_bytes() const {
  const auto vector_bytes = [](const std::vector<float>& v) {
    return v.capacity() * sizeof(float);
  };
  uint64_t bytes = impl_->embedding.bytes() + impl_->lm_head.bytes() +
                   vector_bytes(impl_->final_norm);
  for (const Impl::Layer& l : impl_->layers) {
    bytes += vector_bytes(l.attn_norm) + vector_bytes(l.mlp_norm);
    for (const Impl::Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) {
      bytes += m->bytes();
    }
  }
  return bytes;
}

Status LlamaEngine::PoisonTensor(TensorRole role, uint32_t layer, uint64_t first,
                                 uint64_t count) {
  std::vector<float>* norm = nullptr;
  Impl::Matrix* matrix = nullptr;
  if (!impl_->Locate(role, layer, &norm, &matrix)) return InvalidArgument();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  if (norm != nullptr) {
    if (first > norm->size() || count > norm->size() - first) return OutOfRange();
    std::fill_n(norm->begin() + static_cast<ptrdiff_t>(first), count, nan);
    return OkStatus();
  }
  const size_t out = matrix->out(), in = matrix->in();
  if (first > uint64_t{out} * in || count > uint64_t{out} * in - first) return OutOfRange();
  if (count == 0) return OkStatus();
  // The packed layout is the kernels' business: read the matrix back exactly, poison the
  // elements in row-major order and repack it as float32.
  try {
    std::vector<float> values(out * in);
    for (size_t r = 0; r < out; ++r) matrix->ConvertRow(r, &values[r * in]);
    std::fill_n(values.begin() + static_cast<ptrdiff_t>(first), count, nan);
    *matrix = internal::PackedMatrix(internal::WeightMatrix{
        DType::kF32, reinterpret_cast<const std::byte*>(values.data()), out, in});
  } catch (const std::bad_alloc&) {
    return ResourceExhausted();
  }
  return OkStatus();
}

Status LlamaEngine::Forward(std::span<const uint32_t> slots,
                            std::span<const std::span<const uint32_t>> tokens,
                            std::span<float> logits) {
  if (!impl_->stage.has_embedding || !impl_->stage.has_head) return InvalidArgument();
  return Forward(slots, tokens, {}, {}, logits);
}

Status LlamaEngine::Forward(std::span<const uint32_t> slots,
                            std::span<const std::span<const uint32_t>> tokens,
                            std::span<const float> hidden_in, std::span<float> hidden_out,
                            std::span<float> logits) {
  const ModelArch& a = impl_->arch;
  const ModelStage& stage = impl_->stage;
  if (slots.size() != tokens.size()) return InvalidArgument();
  size_t rows = 0;
  for (const auto& t : tokens) rows += t.size();
  const size_t row_values = rows * a.hidden_size;
  if (hidden_in.size() != (stage.has_embedding ? 0 : row_values)) return InvalidArgument();
  if (hidden_out.size() != (stage.has_head ? 0 : row_values)) return InvalidArgument();
  if (stage.has_head ? logits.size() < slots.size() * a.vocab_size : !logits.empty()) {
    return InvalidArgument();
  }
  // Validate everything before touching any state.
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i] >= impl_->slots.size()) return OutOfRange();
    for (size_t j = 0; j < i; ++j) {
      if (slots[j] == slots[i]) return InvalidArgument();
    }
    if (tokens[i].empty()) return InvalidArgument();
    for (uint32_t id : tokens[i]) {
      if (id >= a.vocab_size) return OutOfRange();
    }
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const uint64_t used = impl_->slots[slots[i]].tokens;
    if (used + tokens[i].size() > impl_->context_length) return ResourceExhausted();
  }
  if (slots.empty()) return OkStatus();
  // A slot's cache is taken on its first use, zeroed (the pages come from the OS on first touch,
  // so the work is that of the positions written). Rows past a slot's count are never read.
  for (uint32_t slot : slots) {
    Impl::Slot& s = impl_->slots[slot];
    if (s.kv) continue;
    s.kv.reset(static_cast<float*>(std::calloc(2 * impl_->kv_floats(), sizeof(float))));
    if (!s.kv) return ResourceExhausted();  // Slots taken before stay: they are still empty.
  }
  try {
    impl_->Run(slots, tokens, hidden_in, hidden_out, logits);
  } catch (const std::bad_alloc&) {
    // Scratch allocation failed before any slot's token count changed; stale cache rows past a
    // slot's count are never read.
    return ResourceExhausted();
  }
  return OkStatus();
}

void LlamaEngine::Impl::Attend(uint32_t l, uint32_t slot, uint32_t pos, const float* q,
                               float* scores, float* out) {
  const size_t hd = arch.head_dim;
  const size_t kvd = kv_dim();
  const uint32_t group = arch.num_heads / arch.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  Slot& s = slots[slot];
  const uint32_t len = pos + 1;
  const float* keys = KeyAt(s, l, 0);
  const float* values = ValueAt(s, l, 0);
  for (uint32_t h = 0; h < arch.num_heads; ++h) {
    const float* qh = q + h * hd;
    const size_t kv_off = size_t{h / group} * hd;
    float max_score = -std::numeric_limits<float>::infinity();
    for (uint32_t p = 0; p < len; ++p) {
      scores[p] = internal::Dot(qh, keys + p * kvd + kv_off, hd) * scale;
      max_score = std::max(max_score, scores[p]);
    }
    float total = 0;
    for (uint32_t p = 0; p < len; ++p) {
      scores[p] = std::exp(scores[p] - max_score);
      total += scores[p];
    }
    float* oh = out + h * hd;
    std::fill(oh, oh + hd, 0.0f);
    for (uint32_t p = 0; p < len; ++p) {
      internal::Axpy(scores[p] / total, values + p * kvd + kv_off, hd, oh);
    }
  }
}

void LlamaEngine::Impl::Run(std::span<const uint32_t> slot_ids,
                            std::span<const std::span<const uint32_t>> tokens,
                            std::span<const float> hidden_in, std::span<float> hidden_out,
                            std::span<float> logits) {
  const ModelArch& a = arch;
  const size_t hidden = a.hidden_size;
  const size_t hd = a.head_dim;
  const size_t half = hd / 2;
  const size_t q_dim = size_t{a.num_heads} * hd;
  const size_t kvd = kv_dim();
  const size_t inter = a.intermediate_size;

  // Flatten every slot's new tokens into one batch of rows.
  size_t rows = 0;
  for (const auto& t : tokens) rows += t.size();
  std::vector<uint32_t> row_slot(rows), row_pos(rows);
  std::vector<size_t> last_row(slot_ids.size());
  std::vector<float> x(rows * hidden);
  {
    size_t r = 0;
    for (size_t i = 0; i < slot_ids.size(); ++i) {
      const uint32_t start = slots[slot_ids[i]].tokens;
      for (size_t j = 0; j < tokens[i].size(); ++j, ++r) {
        row_slot[r] = slot_ids[i];
        row_pos[r] = start + static_cast<uint32_t>(j);
        if (stage.has_embedding) embedding.ConvertRow(tokens[i][j], &x[r * hidden]);
      }
      last_row[i] = r - 1;
    }
  }
  // A later stage continues from the previous stage's rows, bit for bit.
  if (!stage.has_embedding) std::copy(hidden_in.begin(), hidden_in.end(), x.begin());
  std::vector<float> cos(rows * half), sin(rows * half);
  for (size_t r = 0; r < rows; ++r) {
    internal::RopeCosSin(inv_freq.data(), static_cast<uint32_t>(half), row_pos[r], &cos[r * half],
                         &sin[r * half]);
  }

  std::vector<float> xn(rows * hidden), q(rows * q_dim), k(rows * kvd), v(rows * kvd);
  std::vector<float> attn(rows * q_dim), proj(rows * hidden);
  std::vector<float> gate(rows * inter), up(rows * inter);
  // Attention runs in up to kAttentionParts ranges of rows, each with its own scores.
  const size_t attn_parts = std::min(rows, kAttentionParts);
  std::vector<float> scores(attn_parts * context_length);

  for (uint32_t l = 0; l < stage.layer_count; ++l) {  // The stage's own layer index.
    const Layer& w = layers[l];
    for (size_t r = 0; r < rows; ++r) {
      RmsNorm(&x[r * hidden], w.attn_norm.data(), hidden, a.rms_norm_eps, &xn[r * hidden]);
    }
    const internal::Product qkv[] = {{&w.wq, q.data()}, {&w.wk, k.data()}, {&w.wv, v.data()}};
    internal::MatMul(xn.data(), rows, qkv, pool.get(), isa);
    for (size_t r = 0; r < rows; ++r) {
      for (uint32_t h = 0; h < a.num_heads; ++h) {
        internal::ApplyRope(&q[r * q_dim + h * hd], a.head_dim, &cos[r * half], &sin[r * half]);
      }
      for (uint32_t h = 0; h < a.num_kv_heads; ++h) {
        internal::ApplyRope(&k[r * kvd + h * hd], a.head_dim, &cos[r * half], &sin[r * half]);
      }
      Slot& s = slots[row_slot[r]];
      std::memcpy(KeyAt(s, l, row_pos[r]), &k[r * kvd], kvd * sizeof(float));
      std::memcpy(ValueAt(s, l, row_pos[r]), &v[r * kvd], kvd * sizeof(float));
    }
    // Causal attention: a row at position p sees its slot's positions 0..p, all now cached. Rows
    // are independent; they are spread over the pool in contiguous ranges, one score buffer each.
    const auto attend_rows = [&](size_t part) {
      float* part_scores = &scores[part * context_length];
      for (size_t r = part * rows / attn_parts; r < (part + 1) * rows / attn_parts; ++r) {
        Attend(l, row_slot[r], row_pos[r], &q[r * q_dim], part_scores, &attn[r * q_dim]);
      }
    };
    if (pool != nullptr && attn_parts > 1) {
      pool->Run(attn_parts, attend_rows);
    } else {
      for (size_t part = 0; part < attn_parts; ++part) attend_rows(part);
    }
    MatMul(attn.data(), rows, w.wo, proj.data());
    for (size_t i = 0; i < rows * hidden; ++i) x[i] += proj[i];

    for (size_t r = 0; r < rows; ++r) {
      RmsNorm(&x[r * hidden], w.mlp_norm.data(), hidden, a.rms_norm_eps, &xn[r * hidden]);
    }
    const internal::Product gate_up[] = {{&w.gate, gate.data()}, {&w.up, up.data()}};
    internal::MatMul(xn.data(), rows, gate_up, pool.get(), isa);
    internal::SiluMul(gate.data(), up.data(), rows * inter, isa);
    MatMul(gate.data(), rows, w.down, proj.data());
    for (size_t i = 0; i < rows * hidden; ++i) x[i] += proj[i];
  }

  if (stage.has_head) {
    // Only each slot's last position needs logits.
    std::vector<float> last(slot_ids.size() * hidden);
    for (size_t i = 0; i < slot_ids.size(); ++i) {
      RmsNorm(&x[last_row[i] * hidden], final_norm.data(), hidden, a.rms_norm_eps,
              &last[i * hidden]);
    }
    MatMul(last.data(), slot_ids.size(), head(), logits.data());
  } else {
    std::copy(x.begin(), x.end(), hidden_out.begin());  // Every row, for the next stage.
  }
  for (size_t i = 0; i < slot_ids.size(); ++i) {
    slots[slot_ids[i]].tokens += static_cast<uint32_t>(tokens[i].size());
  }
}

}  // namespace wafer::sim

// Test helper: a small random float32 Llama, built by hand, in board transfer order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "board_sim/llama/llama_engine.h"

namespace wafer::sim::testing {

struct TinyTensor {
  std::string name;
  TensorRole role = TensorRole::kEmbedding;
  uint32_t layer = 0;
  std::vector<uint64_t> shape;
  std::vector<float> data;

  uint64_t byte_size() const { return data.size() * sizeof(float); }
  std::span<const std::byte> bytes() const { return std::as_bytes(std::span(data)); }
};

// vocab 64, hidden 32, intermediate 64, 2 layers, 4 heads / 2 kv heads of 8.
inline ModelArch TinyArch() {
  ModelArch a;
  a.vocab_size = 64;
  a.hidden_size = 32;
  a.intermediate_size = 64;
  a.num_layers = 2;
  a.num_heads = 4;
  a.num_kv_heads = 2;
  a.head_dim = 8;
  a.rope_theta = 10000.0f;
  a.rms_norm_eps = 1e-5f;
  a.max_position = 256;
  a.tie_embeddings = false;
  return a;
}

inline std::vector<TinyTensor> MakeTinyLlama(const ModelArch& a, uint64_t seed) {
  uint64_t state = seed * 6364136223846793005ull + 1442695040888963407ull;
  auto uniform = [&state]() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>((state >> 40) & 0xFFFFFF) / float(1 << 24) - 0.5f;  // [-0.5, 0.5)
  };
  std::vector<TinyTensor> out;
  auto add = [&](std::string name, TensorRole role, uint32_t layer, std::vector<uint64_t> shape,
                 bool norm) {
    TinyTensor t{std::move(name), role, layer, std::move(shape), {}};
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    t.data.resize(n);
    for (float& v : t.data) v = norm ? 1.0f + 0.2f * uniform() : 0.6f * uniform();
    out.push_back(std::move(t));
  };
  const uint64_t h = a.hidden_size, q = uint64_t{a.num_heads} * a.head_dim,
                 kv = uint64_t{a.num_kv_heads} * a.head_dim, inter = a.intermediate_size;
  add("model.embed_tokens.weight", TensorRole::kEmbedding, 0, {a.vocab_size, h}, false);
  for (uint32_t l = 0; l < a.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", TensorRole::kAttnNorm, l, {h}, true);
    add(p + "self_attn.q_proj.weight", TensorRole::kWq, l, {q, h}, false);
    add(p + "self_attn.k_proj.weight", TensorRole::kWk, l, {kv, h}, false);
    add(p + "self_attn.v_proj.weight", TensorRole::kWv, l, {kv, h}, false);
    add(p + "self_attn.o_proj.weight", TensorRole::kWo, l, {h, q}, false);
    add(p + "post_attention_layernorm.weight", TensorRole::kMlpNorm, l, {h}, true);
    add(p + "mlp.gate_proj.weight", TensorRole::kWGate, l, {inter, h}, false);
    add(p + "mlp.up_proj.weight", TensorRole::kWUp, l, {inter, h}, false);
    add(p + "mlp.down_proj.weight", TensorRole::kWDown, l, {h, inter}, false);
  }
  add("model.norm.weight", TensorRole::kFinalNorm, 0, {h}, true);
  if (!a.tie_embeddings) add("lm_head.weight", TensorRole::kLmHead, 0, {a.vocab_size, h}, false);
  return out;
}

// Runs the engine directly: prefill `prompt` into slot 0, then generate `n` tokens (greedy or
// sampled with `seed`), feeding each back. The reference the board must reproduce.
inline std::vector<uint32_t> ReferenceGenerate(const ModelArch& a,
                                               const std::vector<TinyTensor>& tensors,
                                               const std::vector<uint32_t>& prompt, uint32_t n,
                                               const Sampling& sampling, uint64_t seed) {
  std::vector<TensorView> views;
  for (const TinyTensor& t : tensors) {
    views.push_back(TensorView{t.role, t.layer, DType::kF32, t.shape, t.bytes()});
  }
  auto engine = LlamaEngine::Create(a, views, 1, 128);
  if (!engine.ok()) return {};
  std::vector<float> logits(a.vocab_size);
  const uint32_t slot = 0;
  std::vector<uint32_t> out;
  std::vector<uint32_t> feed = prompt;
  uint64_t rng = seed;
  for (uint32_t i = 0; i < n; ++i) {
    std::span<const uint32_t> toks(feed);
    if (!(*engine)->Forward(std::span(&slot, 1), std::span(&toks, 1), logits).ok()) return {};
    out.push_back(SampleToken(logits, sampling, rng));
    feed = {out.back()};
  }
  return out;
}

}  // namespace wafer::sim::testing

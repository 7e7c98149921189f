#include "board_sim/llama/llama_engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numbers>
#include <random>
#include <utility>

#include "board_sim/llama/internal/kernels.h"
#include "board_sim/testing/tiny_llama.h"

namespace wafer::sim {
namespace {

// ---------------------------------------------------------------------------------------------
// A test model: weights drawn on the grid of their dtype so that the reference below can use the
// exact values the engine must decode from the bytes.
// ---------------------------------------------------------------------------------------------

// Rounds `v` to the nearest value with `bits` significand bits (flushing tiny values to zero).
double RoundToSignificand(double v, int bits, double min_normal) {
  if (std::fabs(v) < min_normal) return 0;
  int e = 0;
  const double m = std::frexp(v, &e);  // v = m * 2^e, 0.5 <= |m| < 1
  return std::ldexp(std::round(std::ldexp(m, bits)), e - bits);
}

double Quantize(double v, DType dtype) {
  switch (dtype) {
    case DType::kF32: return static_cast<float>(v);
    case DType::kBF16: return RoundToSignificand(v, 8, 1e-30);
    case DType::kF16: return RoundToSignificand(v, 11, std::ldexp(1.0, -14));
  }
  return v;
}

// Encodes a value already on the dtype's grid, exactly.
void Encode(double v, DType dtype, std::vector<std::byte>& out) {
  if (dtype == DType::kF32) {
    const float f = static_cast<float>(v);
    const auto* p = reinterpret_cast<const std::byte*>(&f);
    out.insert(out.end(), p, p + 4);
    return;
  }
  uint16_t bits = 0;
  if (dtype == DType::kBF16) {
    const float f = static_cast<float>(v);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    EXPECT_EQ(u & 0xffffu, 0u) << v << " is not a bfloat16 value";
    bits = static_cast<uint16_t>(u >> 16);
  } else if (v != 0) {
    const double a = std::fabs(v);
    const int e = std::ilogb(a);
    const double frac = (a / std::ldexp(1.0, e) - 1) * 1024;
    EXPECT_EQ(frac, std::round(frac)) << v << " is not a binary16 value";
    EXPECT_GE(e, -14);
    EXPECT_LE(e, 15);
    bits = static_cast<uint16_t>(((e + 15) << 10) | static_cast<int>(frac));
    if (v < 0) bits |= 0x8000;
  }
  out.push_back(static_cast<std::byte>(bits & 0xff));
  out.push_back(static_cast<std::byte>(bits >> 8));
}

using Key = std::pair<TensorRole, uint32_t>;

struct TestModel {
  ModelArch arch;
  DType dtype = DType::kF32;
  std::map<Key, std::vector<double>> values;  // Exact values the engine sees.
  std::map<Key, std::vector<uint64_t>> shapes;
  std::map<Key, std::vector<std::byte>> bytes;

  std::vector<TensorView> Views() const {
    std::vector<TensorView> views;
    for (const auto& [key, b] : bytes) {
      views.push_back(TensorView{key.first, key.second, dtype, shapes.at(key), b});
    }
    return views;
  }
  const std::vector<double>& W(TensorRole role, uint32_t layer = 0) const {
    return values.at({role, layer});
  }
};

TestModel MakeModel(const ModelArch& arch, DType dtype, uint32_t seed) {
  TestModel m;
  m.arch = arch;
  m.dtype = dtype;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  const uint64_t h = arch.hidden_size, q = uint64_t{arch.num_heads} * arch.head_dim,
                 kv = uint64_t{arch.num_kv_heads} * arch.head_dim, in = arch.intermediate_size;
  auto add = [&](TensorRole role, uint32_t layer, std::vector<uint64_t> shape, bool norm) {
    uint64_t n = 1;
    for (uint64_t d : shape) n *= d;
    std::vector<double>& vals = m.values[{role, layer}];
    std::vector<std::byte>& out = m.bytes[{role, layer}];
    const double stddev = norm ? 0.1 : 1.0 / std::sqrt(static_cast<double>(shape.back()));
    for (uint64_t i = 0; i < n; ++i) {
      const double v = Quantize((norm ? 1.0 : 0.0) + stddev * normal(rng), dtype);
      vals.push_back(v);
      Encode(v, dtype, out);
    }
    m.shapes[{role, layer}] = shape;
  };
  add(TensorRole::kEmbedding, 0, {arch.vocab_size, h}, false);
  for (uint32_t l = 0; l < arch.num_layers; ++l) {
    add(TensorRole::kAttnNorm, l, {h}, true);
    add(TensorRole::kWq, l, {q, h}, false);
    add(TensorRole::kWk, l, {kv, h}, false);
    add(TensorRole::kWv, l, {kv, h}, false);
    add(TensorRole::kWo, l, {h, q}, false);
    add(TensorRole::kMlpNorm, l, {h}, true);
    add(TensorRole::kWGate, l, {in, h}, false);
    add(TensorRole::kWUp, l, {in, h}, false);
    add(TensorRole::kWDown, l, {h, in}, false);
  }
  add(TensorRole::kFinalNorm, 0, {h}, true);
  if (!arch.tie_embeddings) add(TensorRole::kLmHead, 0, {arch.vocab_size, h}, false);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Reference: the whole sequence recomputed from scratch in double precision, no KV cache.
// ---------------------------------------------------------------------------------------------

using Vec = std::vector<double>;

Vec Linear(const Vec& w, const Vec& x, size_t out) {
  const size_t in = x.size();
  Vec y(out, 0.0);
  for (size_t o = 0; o < out; ++o) {
    for (size_t i = 0; i < in; ++i) y[o] += w[o * in + i] * x[i];
  }
  return y;
}

Vec RefNorm(const Vec& x, const Vec& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w[i];
  return y;
}

// Hugging Face's rotary frequencies, transcribed from `_compute_llama3_parameters`.
Vec RefInvFreq(const ModelArch& a) {
  Vec f;
  for (uint32_t i = 0; i < a.head_dim; i += 2) {
    f.push_back(1.0 / std::pow(static_cast<double>(a.rope_theta),
                               static_cast<double>(i) / a.head_dim));
  }
  if (a.rope_scaling.factor == 0) return f;
  const double factor = a.rope_scaling.factor, lo = a.rope_scaling.low_freq_factor,
               hi = a.rope_scaling.high_freq_factor, old_len = a.rope_scaling.original_max_position;
  const double low_freq_wavelen = old_len / lo, high_freq_wavelen = old_len / hi;
  for (double& inv : f) {
    const double wavelen = 2 * std::numbers::pi / inv;
    const double llama = wavelen > low_freq_wavelen ? inv / factor : inv;
    const double smooth = (old_len / wavelen - lo) / (hi - lo);
    const double smoothed = (1 - smooth) * llama / factor + smooth * llama;
    const bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    inv = medium ? smoothed : llama;
  }
  return f;
}

void RefRope(double* x, uint32_t hd, const Vec& inv_freq, size_t pos) {
  const uint32_t half = hd / 2;
  Vec rotated(hd);
  for (uint32_t i = 0; i < hd; ++i) {
    // rotate_half(x) = cat(-x2, x1); out = x * cos + rotate_half(x) * sin.
    const double angle = static_cast<double>(pos) * inv_freq[i % half];
    const double rh = i < half ? -x[i + half] : x[i - half];
    rotated[i] = x[i] * std::cos(angle) + rh * std::sin(angle);
  }
  std::copy(rotated.begin(), rotated.end(), x);
}

// Logits for every position of `tokens`.
std::vector<Vec> RefForward(const TestModel& m, const std::vector<uint32_t>& tokens) {
  const ModelArch& a = m.arch;
  const size_t n = tokens.size(), hdim = a.hidden_size, hd = a.head_dim;
  const Vec inv_freq = RefInvFreq(a);
  std::vector<Vec> h(n);
  const Vec& emb = m.W(TensorRole::kEmbedding);
  for (size_t t = 0; t < n; ++t) {
    h[t].assign(emb.begin() + tokens[t] * hdim, emb.begin() + (tokens[t] + 1) * hdim);
  }
  for (uint32_t l = 0; l < a.num_layers; ++l) {
    std::vector<Vec> q(n), k(n), v(n);
    for (size_t t = 0; t < n; ++t) {
      const Vec xn = RefNorm(h[t], m.W(TensorRole::kAttnNorm, l), a.rms_norm_eps);
      q[t] = Linear(m.W(TensorRole::kWq, l), xn, a.num_heads * hd);
      k[t] = Linear(m.W(TensorRole::kWk, l), xn, a.num_kv_heads * hd);
      v[t] = Linear(m.W(TensorRole::kWv, l), xn, a.num_kv_heads * hd);
      for (uint32_t hh = 0; hh < a.num_heads; ++hh) RefRope(&q[t][hh * hd], a.head_dim, inv_freq, t);
      for (uint32_t hh = 0; hh < a.num_kv_heads; ++hh) {
        RefRope(&k[t][hh * hd], a.head_dim, inv_freq, t);
      }
    }
    for (size_t t = 0; t < n; ++t) {
      Vec attn(a.num_heads * hd, 0.0);
      for (uint32_t hh = 0; hh < a.num_heads; ++hh) {
        const size_t kvh = hh / (a.num_heads / a.num_kv_heads);
        Vec s(t + 1);
        for (size_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (size_t d = 0; d < hd; ++d) dot += q[t][hh * hd + d] * k[j][kvh * hd + d];
          s[j] = dot / std::sqrt(static_cast<double>(hd));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (size_t j = 0; j <= t; ++j) {
          for (size_t d = 0; d < hd; ++d) attn[hh * hd + d] += s[j] / z * v[j][kvh * hd + d];
        }
      }
      const Vec o = Linear(m.W(TensorRole::kWo, l), attn, hdim);
      for (size_t i = 0; i < hdim; ++i) h[t][i] += o[i];
      const Vec xn = RefNorm(h[t], m.W(TensorRole::kMlpNorm, l), a.rms_norm_eps);
      const Vec g = Linear(m.W(TensorRole::kWGate, l), xn, a.intermediate_size);
      const Vec u = Linear(m.W(TensorRole::kWUp, l), xn, a.intermediate_size);
      Vec act(a.intermediate_size);
      for (size_t i = 0; i < act.size(); ++i) act[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      const Vec d = Linear(m.W(TensorRole::kWDown, l), act, hdim);
      for (size_t i = 0; i < hdim; ++i) h[t][i] += d[i];
    }
  }
  const Vec& head = a.tie_embeddings ? emb : m.W(TensorRole::kLmHead);
  std::vector<Vec> logits(n);
  for (size_t t = 0; t < n; ++t) {
    logits[t] = Linear(head, RefNorm(h[t], m.W(TensorRole::kFinalNorm), a.rms_norm_eps),
                       a.vocab_size);
  }
  return logits;
}

// Tolerance: 1e-3 of the logit scale (max |logit|, at least 1). Float32 accumulation over these
// sizes stays around 1e-5 relative; a wrong rope pairing, GQA mapping or norm is off by > 1e-1.
void ExpectClose(std::span<const float> got, const Vec& want, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 1, max_diff = 0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < want.size(); ++i) max_diff = std::max(max_diff, std::fabs(got[i] - want[i]));
  EXPECT_LE(max_diff, 1e-3 * scale) << what << ": max abs diff " << max_diff << " scale " << scale;
}

ModelArch SmallArch() {
  ModelArch a;
  a.vocab_size = 50;
  a.hidden_size = 32;
  a.intermediate_size = 48;
  a.num_layers = 2;
  a.num_heads = 4;
  a.num_kv_heads = 2;
  a.head_dim = 8;
  a.rope_theta = 10000;
  a.rms_norm_eps = 1e-5f;
  a.max_position = 128;
  return a;
}

std::vector<uint32_t> Tokens(size_t n, uint32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint32_t> t(n);
  for (auto& id : t) id = rng() % vocab;
  return t;
}

std::unique_ptr<LlamaEngine> MustCreate(const TestModel& m, uint32_t slots, uint32_t context) {
  const std::vector<TensorView> views = m.Views();
  auto engine = LlamaEngine::Create(m.arch, views, slots, context);
  EXPECT_TRUE(engine.ok()) << engine.status().name();
  return engine.ok() ? std::move(engine).value() : nullptr;
}

// Runs one Forward of `tokens` for `slot` and returns its logits.
std::vector<float> RunSlot(LlamaEngine& e, uint32_t slot, const std::vector<uint32_t>& tokens) {
  std::vector<float> logits(e.arch().vocab_size);
  const uint32_t slots[] = {slot};
  const std::span<const uint32_t> toks[] = {tokens};
  EXPECT_TRUE(e.Forward(slots, toks, logits).ok());
  return logits;
}

void CheckPrefill(const ModelArch& arch, DType dtype, size_t n, const char* what) {
  const TestModel m = MakeModel(arch, dtype, 7);
  auto e = MustCreate(m, 2, 64);
  ASSERT_NE(e, nullptr);
  const auto tokens = Tokens(n, arch.vocab_size, 3);
  ExpectClose(RunSlot(*e, 1, tokens), RefForward(m, tokens).back(), what);
  EXPECT_EQ(e->context_tokens(1), n);
  EXPECT_EQ(e->context_tokens(0), 0u);
}

TEST(LlamaEngineTest, GqaUntiedF32MatchesReference) {
  CheckPrefill(SmallArch(), DType::kF32, 12, "gqa f32");
}

TEST(LlamaEngineTest, MultiHeadAttentionMatchesReference) {
  ModelArch a = SmallArch();
  a.num_kv_heads = 4;
  CheckPrefill(a, DType::kF32, 9, "mha");
}

TEST(LlamaEngineTest, TiedEmbeddingsMatchReference) {
  ModelArch a = SmallArch();
  a.tie_embeddings = true;
  CheckPrefill(a, DType::kF32, 10, "tied");
}

TEST(LlamaEngineTest, RopeScalingMatchesReference) {
  ModelArch a = SmallArch();
  // head_dim 8, theta 672: wavelengths 6.3, 32, 163, 829 against thresholds 16 and 64, so one
  // frequency is high (kept), one medium (smoothed by 1/3), two low (divided by the factor).
  a.rope_scaling.factor = 8;
  a.rope_scaling.low_freq_factor = 1;
  a.rope_scaling.high_freq_factor = 4;
  a.rope_scaling.original_max_position = 64;
  a.rope_theta = 672;
  CheckPrefill(a, DType::kF32, 40, "rope scaling");
  // The scaled frequencies must differ from the unscaled ones, or the test above proves nothing.
  ModelArch plain = a;
  plain.rope_scaling.factor = 0;
  EXPECT_NE(RefInvFreq(a)[1], RefInvFreq(plain)[1]);
  EXPECT_EQ(RefInvFreq(a)[0], RefInvFreq(plain)[0]);
}

TEST(LlamaEngineTest, BFloat16WeightsMatchReference) {
  CheckPrefill(SmallArch(), DType::kBF16, 11, "bf16");
}

TEST(LlamaEngineTest, Float16WeightsMatchReference) {
  CheckPrefill(SmallArch(), DType::kF16, 11, "f16");
}

TEST(LlamaEngineTest, LargerModelOnThreadedPathMatchesReference) {
  ModelArch a = SmallArch();
  a.vocab_size = 300;
  a.hidden_size = 128;
  a.intermediate_size = 320;
  a.num_heads = 4;
  a.num_kv_heads = 1;
  a.head_dim = 32;
  a.num_layers = 1;
  CheckPrefill(a, DType::kBF16, 64, "threaded");  // 64 x 320 x 128 MACs crosses the threshold.
}

TEST(LlamaEngineTest, HalfConversionKnownPatterns) {
  EXPECT_EQ(internal::HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(internal::HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(internal::HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(internal::HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(internal::HalfToFloat(0x8000), -0.0f);
  EXPECT_TRUE(std::isinf(internal::HalfToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(internal::HalfToFloat(0x7e00)));
  EXPECT_EQ(internal::BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(internal::BFloat16ToFloat(0xc0a0), -5.0f);
}

TEST(LlamaEngineTest, PrefillChunksThenDecodeEqualFullSequence) {
  const TestModel m = MakeModel(SmallArch(), DType::kF32, 11);
  auto e = MustCreate(m, 3, 32);
  ASSERT_NE(e, nullptr);
  const auto tokens = Tokens(20, m.arch.vocab_size, 5);
  const auto ref = RefForward(m, tokens);
  // Chunks of 7 and 5, then one token at a time.
  std::vector<uint32_t> chunk(tokens.begin(), tokens.begin() + 7);
  ExpectClose(RunSlot(*e, 2, chunk), ref[6], "chunk 1");
  chunk.assign(tokens.begin() + 7, tokens.begin() + 12);
  ExpectClose(RunSlot(*e, 2, chunk), ref[11], "chunk 2");
  std::vector<float> last;
  for (size_t t = 12; t < tokens.size(); ++t) {
    last = RunSlot(*e, 2, {tokens[t]});
    ExpectClose(last, ref[t], "decode");
  }
  EXPECT_EQ(e->context_tokens(2), 20u);
  // The engine's own full prefill agrees with its incremental path almost bit for bit.
  const auto full = RunSlot(*e, 0, tokens);
  for (size_t i = 0; i < full.size(); ++i) EXPECT_NEAR(full[i], last[i], 1e-4);
}

TEST(LlamaEngineTest, BatchedDecodeEqualsPerSlotDecode) {
  const TestModel m = MakeModel(SmallArch(), DType::kBF16, 13);
  auto batched = MustCreate(m, 4, 32);
  auto single = MustCreate(m, 4, 32);
  ASSERT_NE(batched, nullptr);
  ASSERT_NE(single, nullptr);
  std::vector<std::vector<uint32_t>> prompts = {Tokens(5, 50, 1), Tokens(9, 50, 2),
                                                Tokens(3, 50, 3)};
  const uint32_t ids[] = {3, 0, 2};
  for (size_t i = 0; i < 3; ++i) {
    RunSlot(*batched, ids[i], prompts[i]);
    RunSlot(*single, ids[i], prompts[i]);
  }
  for (int step = 0; step < 4; ++step) {
    // Slot 2 gets a 2-token chunk in the same step as the others' single decode tokens.
    std::vector<std::vector<uint32_t>> next = {{uint32_t(step * 7 % 50)}, {uint32_t(step + 20)},
                                               {uint32_t(step + 30), uint32_t(step + 31)}};
    std::vector<std::span<const uint32_t>> spans(next.begin(), next.end());
    std::vector<float> logits(3 * 50);
    ASSERT_TRUE(batched->Forward(ids, spans, logits).ok());
    for (size_t i = 0; i < 3; ++i) {
      const auto one = RunSlot(*single, ids[i], next[i]);
      for (size_t j = 0; j < 50; ++j) EXPECT_NEAR(logits[i * 50 + j], one[j], 1e-5);
      prompts[i].insert(prompts[i].end(), next[i].begin(), next[i].end());
      ExpectClose(std::span<const float>(logits).subspan(i * 50, 50),
                  RefForward(m, prompts[i]).back(), "batched vs reference");
    }
  }
}

TEST(LlamaEngineTest, ResetSlotStartsOver) {
  const TestModel m = MakeModel(SmallArch(), DType::kF32, 17);
  auto e = MustCreate(m, 1, 16);
  ASSERT_NE(e, nullptr);
  RunSlot(*e, 0, Tokens(10, 50, 4));
  e->ResetSlot(0);
  EXPECT_EQ(e->context_tokens(0), 0u);
  const auto tokens = Tokens(6, 50, 8);
  ExpectClose(RunSlot(*e, 0, tokens), RefForward(m, tokens).back(), "after reset");
}

TEST(LlamaEngineTest, ContextOverflowIsResourceExhaustedAndChangesNothing) {
  const TestModel m = MakeModel(SmallArch(), DType::kF32, 19);
  auto e = MustCreate(m, 2, 8);
  ASSERT_NE(e, nullptr);
  auto tokens = Tokens(6, 50, 9);
  RunSlot(*e, 0, tokens);
  RunSlot(*e, 1, {1});
  std::vector<uint32_t> three = {4, 5, 6}, one = {7};
  const uint32_t ids[] = {1, 0};
  const std::span<const uint32_t> spans[] = {one, three};  // Slot 1 fits, slot 0 does not.
  std::vector<float> logits(100, -7.0f);
  EXPECT_EQ(e->Forward(ids, spans, logits).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(e->context_tokens(0), 6u);
  EXPECT_EQ(e->context_tokens(1), 1u);
  EXPECT_TRUE(std::all_of(logits.begin(), logits.end(), [](float f) { return f == -7.0f; }));
  // Slot 0 continues as if the failed call never happened, up to exactly the context length.
  tokens.push_back(9);
  tokens.push_back(10);
  ExpectClose(RunSlot(*e, 0, {9, 10}), RefForward(m, tokens).back(), "after overflow");
  EXPECT_EQ(e->context_tokens(0), 8u);
  EXPECT_EQ(e->Forward(std::span<const uint32_t>(ids, 1),
                       std::span<const std::span<const uint32_t>>(spans, 1), logits)
                .code(),
            StatusCode::kOk);  // Slot 1: 1 + 1 tokens.
}

TEST(LlamaEngineTest, ForwardRejectsBadArguments) {
  const TestModel m = MakeModel(SmallArch(), DType::kF32, 23);
  auto e = MustCreate(m, 2, 8);
  ASSERT_NE(e, nullptr);
  std::vector<float> logits(100);
  std::vector<uint32_t> ok = {1}, bad_id = {50}, empty;
  auto call = [&](std::vector<uint32_t> ids, std::vector<std::vector<uint32_t>*> toks) {
    std::vector<std::span<const uint32_t>> spans;
    for (auto* t : toks) spans.emplace_back(*t);
    return e->Forward(ids, spans, logits).code();
  };
  EXPECT_EQ(call({2}, {&ok}), StatusCode::kOutOfRange);
  EXPECT_EQ(call({0}, {&bad_id}), StatusCode::kOutOfRange);
  EXPECT_EQ(call({0, 0}, {&ok, &ok}), StatusCode::kInvalidArgument);
  EXPECT_EQ(call({0}, {&empty}), StatusCode::kInvalidArgument);
  EXPECT_EQ(call({0, 1}, {&ok}), StatusCode::kInvalidArgument);
  std::vector<float> small(10);
  const uint32_t id0[] = {0};
  const std::span<const uint32_t> one[] = {ok};
  EXPECT_EQ(e->Forward(id0, one, small).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->context_tokens(0), 0u);
}

TEST(LlamaEngineTest, CreateValidatesTensors) {
  const TestModel m = MakeModel(SmallArch(), DType::kF32, 29);
  auto create = [&](const ModelArch& arch, const std::vector<TensorView>& views) {
    return LlamaEngine::Create(arch, views, 1, 8).status().code();
  };
  const auto good = m.Views();
  EXPECT_EQ(create(m.arch, good), StatusCode::kOk);

  auto find = [](std::vector<TensorView>& v, TensorRole role, uint32_t layer) {
    return std::find_if(v.begin(), v.end(),
                        [&](const TensorView& t) { return t.role == role && t.layer == layer; });
  };
  {  // Missing: layer 1 has no k_proj.
    auto v = good;
    v.erase(find(v, TensorRole::kWk, 1));
    EXPECT_EQ(create(m.arch, v), StatusCode::kInvalidArgument);
  }
  {  // Misshapen: o_proj transposed (same byte count).
    auto v = good;
    auto it = find(v, TensorRole::kWo, 0);
    it->shape = {16, 32};
    EXPECT_EQ(create(m.arch, v), StatusCode::kInvalidArgument);
  }
  {  // Byte size does not match the shape.
    auto v = good;
    auto it = find(v, TensorRole::kWGate, 1);
    it->bytes = it->bytes.first(it->bytes.size() - 4);
    EXPECT_EQ(create(m.arch, v), StatusCode::kInvalidArgument);
  }
  {  // Duplicate.
    auto v = good;
    v.push_back(*find(v, TensorRole::kMlpNorm, 0));
    EXPECT_EQ(create(m.arch, v), StatusCode::kInvalidArgument);
  }
  {  // Layer out of range.
    auto v = good;
    find(v, TensorRole::kWDown, 1)->layer = 2;
    EXPECT_EQ(create(m.arch, v), StatusCode::kInvalidArgument);
  }
  {  // dtype claims bf16 for f32 bytes: size mismatch.
    auto v = good;
    find(v, TensorRole::kFinalNorm, 0)->dtype = DType::kBF16;
    EXPECT_EQ(create(m.arch, v), StatusCode::kInvalidArgument);
  }
  {  // An LM head on a tied model, and no LM head on an untied one.
    ModelArch tied = m.arch;
    tied.tie_embeddings = true;
    EXPECT_EQ(create(tied, good), StatusCode::kInvalidArgument);
    auto v = good;
    v.erase(find(v, TensorRole::kLmHead, 0));
    EXPECT_EQ(create(tied, v), StatusCode::kOk);
    EXPECT_EQ(create(m.arch, v), StatusCode::kInvalidArgument);
  }
  {  // Impossible architectures.
    ModelArch a = m.arch;
    a.num_kv_heads = 3;  // 4 % 3 != 0
    EXPECT_EQ(create(a, good), StatusCode::kInvalidArgument);
    a = m.arch;
    a.rope_scaling.factor = 8;  // Without low/high factors.
    EXPECT_EQ(create(a, good), StatusCode::kInvalidArgument);
    EXPECT_EQ(LlamaEngine::Create(m.arch, good, 0, 8).status().code(),
              StatusCode::kInvalidArgument);
  }
}

TEST(LlamaEngineTest, HugeKvCacheIsResourceExhausted) {
  const TestModel m = MakeModel(SmallArch(), DType::kF32, 31);
  const auto views = m.Views();
  EXPECT_EQ(LlamaEngine::Create(m.arch, views, 4000000000u, 4000000000u).status().code(),
            StatusCode::kResourceExhausted);
}

// ---------------------------------------------------------------------------------------------
// Pipeline stages: a model split by layers over several engines.
// ---------------------------------------------------------------------------------------------

// The views a stage holds (see LlamaEngine::Create).
std::vector<TensorView> StageViews(const TestModel& m, const ModelStage& s) {
  const uint32_t end = s.layer_count == 0 ? m.arch.num_layers : s.first_layer + s.layer_count;
  std::vector<TensorView> out;
  for (const TensorView& v : m.Views()) {
    bool keep = false;
    switch (v.role) {
      case TensorRole::kEmbedding:
        keep = s.has_embedding || (s.has_head && m.arch.tie_embeddings);
        break;
      case TensorRole::kFinalNorm:
      case TensorRole::kLmHead:
        keep = s.has_head;
        break;
      default:
        keep = v.layer >= s.first_layer && v.layer < end;
        break;
    }
    if (keep) out.push_back(v);
  }
  return out;
}

// Runs a schedule of prefill chunks and batched decode steps through the whole model in one
// engine and through `stages` chained by their float32 hidden states, and expects bit-identical
// logits at every step.
void ExpectChainMatchesWholeModel(const TestModel& m, const std::vector<ModelStage>& stages) {
  auto whole = MustCreate(m, 3, 48);
  ASSERT_NE(whole, nullptr);
  std::vector<std::unique_ptr<LlamaEngine>> chain;
  for (const ModelStage& s : stages) {
    auto e = LlamaEngine::Create(m.arch, StageViews(m, s), 3, 48, s);
    ASSERT_TRUE(e.ok()) << e.status().name();
    chain.push_back(std::move(e).value());
  }
  const uint32_t vocab = m.arch.vocab_size;
  // Step 1: two prefill chunks; step 2: a chunk, a decode token and a new prompt; then batched
  // decode of the three slots, each fed its greedy token.
  std::vector<std::vector<uint32_t>> ids = {{0, 1}, {0, 1, 2}};
  std::vector<std::vector<std::vector<uint32_t>>> feeds = {
      {Tokens(7, vocab, 1), Tokens(5, vocab, 2)},
      {Tokens(3, vocab, 3), {4}, Tokens(4, vocab, 4)}};
  for (int step = 0; step < 6; ++step) {
    if (step >= 2) ids.push_back({0, 1, 2});
    const std::vector<uint32_t>& slots = ids[step];
    const std::vector<std::vector<uint32_t>>& feed = feeds[step];
    const std::vector<std::span<const uint32_t>> toks(feed.begin(), feed.end());
    size_t rows = 0;
    for (const auto& t : feed) rows += t.size();
    std::vector<float> want(slots.size() * vocab), got(slots.size() * vocab);
    ASSERT_TRUE(whole->Forward(slots, toks, want).ok());
    std::vector<float> hidden;
    for (auto& e : chain) {
      const bool head = e->stage().has_head;
      std::vector<float> out(head ? 0 : rows * m.arch.hidden_size);
      ASSERT_TRUE(e->Forward(slots, toks, hidden, out, head ? std::span(got) : std::span<float>())
                      .ok());
      hidden = std::move(out);
      for (uint32_t slot : slots) EXPECT_EQ(e->context_tokens(slot), whole->context_tokens(slot));
    }
    ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
        << "step " << step;
    std::vector<std::vector<uint32_t>> next;
    for (size_t i = 0; i < slots.size(); ++i) {
      uint64_t rng = 0;
      next.push_back({SampleToken(std::span(want).subspan(i * vocab, vocab), Sampling{}, rng)});
    }
    if (step >= 1) feeds.push_back(next);
  }
}

ModelArch ThreeLayerArch(bool tied) {
  ModelArch a = SmallArch();
  a.num_layers = 3;
  a.tie_embeddings = tied;
  return a;
}

TEST(LlamaStageTest, TwoStagesGiveTheWholeModelsLogitsBitForBit) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const TestModel m = MakeModel(ThreeLayerArch(tied), DType::kBF16, 37);
    ExpectChainMatchesWholeModel(m, {{0, 1, true, false}, {1, 0, false, true}});
  }
}

TEST(LlamaStageTest, ThreeStagesGiveTheWholeModelsLogitsBitForBit) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const TestModel m = MakeModel(ThreeLayerArch(tied), DType::kF32, 41);
    ExpectChainMatchesWholeModel(m, {{0, 1, true, false}, {1, 1, false, false},
                                     {2, 1, false, true}});
  }
}

TEST(LlamaStageTest, CreateRequiresExactlyTheStagesTensors) {
  const TestModel untied = MakeModel(ThreeLayerArch(false), DType::kF32, 43);
  const TestModel tied = MakeModel(ThreeLayerArch(true), DType::kF32, 43);
  auto create = [](const TestModel& m, const std::vector<TensorView>& v, const ModelStage& s) {
    return LlamaEngine::Create(m.arch, v, 1, 8, s).status().code();
  };
  const ModelStage first{0, 1, true, false}, middle{1, 1, false, false}, last{1, 2, false, true};
  EXPECT_EQ(create(untied, StageViews(untied, first), first), StatusCode::kOk);
  EXPECT_EQ(create(untied, StageViews(untied, middle), middle), StatusCode::kOk);
  EXPECT_EQ(create(untied, StageViews(untied, last), last), StatusCode::kOk);
  EXPECT_EQ(create(tied, StageViews(tied, last), last), StatusCode::kOk);
  // A tensor outside the stage: another layer's, the head on a stage without it, the embedding
  // on an untied last stage.
  EXPECT_EQ(create(untied, untied.Views(), first), StatusCode::kInvalidArgument);
  EXPECT_EQ(create(untied, StageViews(untied, {0, 2, true, false}), first),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(create(untied, StageViews(untied, {1, 1, false, true}), middle),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(create(untied, StageViews(untied, {1, 2, true, true}), last),
            StatusCode::kInvalidArgument);
  // A tensor missing: a layer of the stage, a tied last stage's copy of the embedding.
  EXPECT_EQ(create(untied, StageViews(untied, {2, 1, false, true}), last),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(create(tied, StageViews(untied, last), last), StatusCode::kInvalidArgument);
  // Stages that are not part of the model.
  const auto all = untied.Views();
  EXPECT_EQ(create(untied, {}, {3, 0, false, true}), StatusCode::kInvalidArgument);  // No layer.
  EXPECT_EQ(create(untied, {}, {1, 3, false, true}), StatusCode::kInvalidArgument);  // Past 3.
  EXPECT_EQ(create(untied, StageViews(untied, {1, 2, true, true}), {1, 2, true, true}),
            StatusCode::kInvalidArgument);  // Embedding not feeding layer 0.
  EXPECT_EQ(create(untied, StageViews(untied, {0, 2, true, true}), {0, 2, true, true}),
            StatusCode::kInvalidArgument);  // Head not reading the last layer.
  EXPECT_EQ(create(untied, all, {0, 3, true, true}), StatusCode::kOk);  // The whole model.
}

TEST(LlamaStageTest, ForwardChecksTheStagesSpansAndChangesNothingOnError) {
  const TestModel m = MakeModel(ThreeLayerArch(false), DType::kF32, 47);
  const ModelStage first{0, 1, true, false}, last{1, 0, false, true};
  auto head = LlamaEngine::Create(m.arch, StageViews(m, last), 1, 8, last);
  auto embed = LlamaEngine::Create(m.arch, StageViews(m, first), 1, 8, first);
  ASSERT_TRUE(head.ok() && embed.ok());
  EXPECT_EQ((*head)->stage().layer_count, 2u);  // Resolved.
  const std::vector<uint32_t> two = {3, 4};
  const uint32_t slot[] = {0};
  const std::span<const uint32_t> toks[] = {two};
  std::vector<float> hidden(2 * 32), short_hidden(2 * 32 - 1), logits(50);
  EXPECT_EQ((*head)->Forward(slot, toks, logits).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*head)->Forward(slot, toks, short_hidden, {}, logits).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*head)->Forward(slot, toks, hidden, hidden, logits).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*head)->Forward(slot, toks, hidden, {}, {}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*embed)->Forward(slot, toks, logits).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*embed)->Forward(slot, toks, hidden, hidden, {}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*embed)->Forward(slot, toks, {}, short_hidden, {}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*embed)->Forward(slot, toks, {}, hidden, logits).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ((*head)->context_tokens(0), 0u);
  EXPECT_EQ((*embed)->context_tokens(0), 0u);
  ASSERT_TRUE((*embed)->Forward(slot, toks, {}, hidden, {}).ok());
  ASSERT_TRUE((*head)->Forward(slot, toks, hidden, {}, logits).ok());
  EXPECT_EQ((*head)->context_tokens(0), 2u);
}

TEST(SampleTokenTest, GreedyIsArgmaxWithLowestIdOnTies) {
  uint64_t rng = 1;
  const float logits[] = {0.5f, 2.0f, -1.0f, 2.0f};
  EXPECT_EQ(SampleToken(logits, Sampling{}, rng), 1u);
  EXPECT_EQ(rng, 1u);  // Greedy draws nothing.
  Sampling top1{1.0f, 1, 1.0f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(SampleToken(logits, top1, rng), 1u);
  Sampling tiny_p{1.0f, 0, 0.01f};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(SampleToken(logits, tiny_p, rng), 1u);
}

TEST(SampleTokenTest, SeedReproducesSequence) {
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i)) * 2;
  const Sampling s{0.8f, 40, 0.95f};
  auto draw = [&](uint64_t seed) {
    std::vector<uint32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(SampleToken(logits, s, seed));
    return out;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(SampleTokenTest, SkippingSamplesResumesTheSequenceWhereItStopped) {
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::cos(static_cast<float>(i)) * 3;
  const Sampling s{0.9f, 0, 1.0f};
  uint64_t undisturbed = 1234;
  std::vector<uint32_t> whole;
  for (int i = 0; i < 40; ++i) whole.push_back(SampleToken(logits, s, undisturbed));
  // A sequence recomputed after 25 tokens: seeded again, then 25 samples skipped.
  uint64_t resumed = 1234;
  SkipSamples(resumed, 25);
  std::vector<uint32_t> tail;
  for (int i = 25; i < 40; ++i) tail.push_back(SampleToken(logits, s, resumed));
  EXPECT_EQ(tail, std::vector<uint32_t>(whole.begin() + 25, whole.end()));
  EXPECT_EQ(resumed, undisturbed);
}

TEST(SampleTokenTest, DistributionFollowsTemperatureTopKAndTopP) {
  uint64_t rng = 7;
  // Probabilities 0.75 / 0.25 at temperature 1.
  const float two[] = {0.0f, std::log(3.0f)};
  int ones = 0;
  for (int i = 0; i < 20000; ++i) ones += SampleToken(two, {1.0f, 0, 1.0f}, rng) == 1;
  EXPECT_NEAR(ones / 20000.0, 0.75, 0.015);
  // Temperature 0.5 squares the odds: 9:1.
  ones = 0;
  for (int i = 0; i < 20000; ++i) ones += SampleToken(two, {0.5f, 0, 1.0f}, rng) == 1;
  EXPECT_NEAR(ones / 20000.0, 0.9, 0.01);
  // Top-k 2 and top-p 0.6 (0.5 + 0.3 reaches it) keep only the two best of these.
  const float four[] = {std::log(0.3f), std::log(0.1f), std::log(0.5f), std::log(0.1f)};
  for (int i = 0; i < 2000; ++i) {
    const uint32_t k = SampleToken(four, {1.0f, 2, 1.0f}, rng);
    EXPECT_TRUE(k == 0 || k == 2);
    const uint32_t p = SampleToken(four, {1.0f, 0, 0.6f}, rng);
    EXPECT_TRUE(p == 0 || p == 2);
  }
}

// --- Repair after a PE fault: PoisonTensor and ReplaceTensor. ---

// The tiny model's tensors, every one in `dtype` (bfloat16: the float32 values truncated), kept
// alive with their views.
struct TinyInDtype {
  std::vector<testing::TinyTensor> tensors;
  std::vector<std::vector<std::byte>> bytes;
  std::vector<TensorView> views;

  TinyInDtype(const ModelArch& a, DType dtype) : tensors(testing::MakeTinyLlama(a, 5)) {
    for (const testing::TinyTensor& t : tensors) {
      std::vector<std::byte> b;
      if (dtype == DType::kF32) {
        b.assign(t.bytes().begin(), t.bytes().end());
      } else {
        for (float f : t.data) {
          uint32_t u;
          std::memcpy(&u, &f, 4);
          b.push_back(static_cast<std::byte>((u >> 16) & 0xff));
          b.push_back(static_cast<std::byte>(u >> 24));
        }
      }
      bytes.push_back(std::move(b));
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      views.push_back(TensorView{tensors[i].role, tensors[i].layer, dtype, tensors[i].shape,
                                 bytes[i]});
    }
  }
  const TensorView& View(TensorRole role, uint32_t layer) const {
    for (const TensorView& v : views) {
      if (v.role == role && v.layer == layer) return v;
    }
    return views.front();
  }
};

// The logits after prefilling `prompt` into a freshly reset slot 0.
std::vector<float> PrefillLogits(LlamaEngine& engine, const std::vector<uint32_t>& prompt) {
  std::vector<float> logits(engine.arch().vocab_size);
  engine.ResetSlot(0);
  const uint32_t slot = 0;
  std::span<const uint32_t> tokens(prompt);
  EXPECT_TRUE(engine.Forward(std::span(&slot, 1), std::span(&tokens, 1), logits).ok());
  return logits;
}

bool AnyNan(const std::vector<float>& v) {
  return std::any_of(v.begin(), v.end(), [](float x) { return std::isnan(x); });
}

TEST(LlamaRepairTest, PoisonedTensorsGiveNanLogitsAndReplacingThemRestoresEveryBit) {
  const ModelArch a = testing::TinyArch();
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    SCOPED_TRACE(dtype == DType::kF32 ? "f32" : "bf16");
    const TinyInDtype model(a, dtype);
    auto engine = LlamaEngine::Create(a, model.views, 1, 32);
    ASSERT_TRUE(engine.ok());
    const std::vector<uint32_t> prompt = {3, 1, 4, 1, 5};
    const std::vector<float> healthy = PrefillLogits(**engine, prompt);
    ASSERT_FALSE(AnyNan(healthy));

    // A matrix (a slice in the middle of layer 1's up projection), a norm weight and the
    // embedding row of a prompt token: each poisons the logits, each replacement heals them.
    const struct {
      TensorRole role;
      uint32_t layer;
      uint64_t first, count;
    } losses[] = {{TensorRole::kWUp, 1, 700, 90},
                  {TensorRole::kAttnNorm, 0, 4, 1},
                  {TensorRole::kEmbedding, 0, 4 * a.hidden_size, a.hidden_size}};
    for (const auto& loss : losses) {
      SCOPED_TRACE(static_cast<int>(loss.role));
      ASSERT_TRUE((*engine)->PoisonTensor(loss.role, loss.layer, loss.first, loss.count).ok());
      EXPECT_TRUE(AnyNan(PrefillLogits(**engine, prompt)));
      ASSERT_TRUE((*engine)->ReplaceTensor(model.View(loss.role, loss.layer)).ok());
      const std::vector<float> repaired = PrefillLogits(**engine, prompt);
      EXPECT_EQ(std::memcmp(repaired.data(), healthy.data(), healthy.size() * sizeof(float)), 0);
    }
  }
}

TEST(LlamaRepairTest, ReplaceAndPoisonValidateTheTensor) {
  const ModelArch a = testing::TinyArch();
  const TinyInDtype model(a, DType::kF32);
  // The first of two stages: layer 0 and the embedding, no head.
  std::vector<TensorView> first_stage;
  for (const TensorView& v : model.views) {
    if (v.role == TensorRole::kEmbedding || (v.layer == 0 && v.role != TensorRole::kFinalNorm &&
                                             v.role != TensorRole::kLmHead)) {
      first_stage.push_back(v);
    }
  }
  auto engine = LlamaEngine::Create(a, first_stage, 1, 16, ModelStage{0, 1, true, false});
  ASSERT_TRUE(engine.ok());
  LlamaEngine& e = **engine;

  EXPECT_TRUE(e.ReplaceTensor(model.View(TensorRole::kWq, 0)).ok());
  EXPECT_EQ(e.ReplaceTensor(model.View(TensorRole::kWq, 1)).code(),
            StatusCode::kInvalidArgument);  // Layer 1 is the next stage's.
  EXPECT_EQ(e.ReplaceTensor(model.View(TensorRole::kLmHead, 0)).code(),
            StatusCode::kInvalidArgument);  // No head here.
  TensorView wrong = model.View(TensorRole::kWq, 0);
  wrong.shape = {wrong.shape[1], wrong.shape[0] / 2};
  EXPECT_EQ(e.ReplaceTensor(wrong).code(), StatusCode::kInvalidArgument);  // Misshapen.
  wrong = model.View(TensorRole::kWq, 0);
  wrong.bytes = wrong.bytes.first(wrong.bytes.size() - 4);
  EXPECT_EQ(e.ReplaceTensor(wrong).code(), StatusCode::kInvalidArgument);  // Short.
  wrong = model.View(TensorRole::kWq, 0);
  wrong.dtype = DType::kBF16;  // Twice the elements its bytes would hold.
  EXPECT_EQ(e.ReplaceTensor(wrong).code(), StatusCode::kInvalidArgument);

  const uint64_t wq = uint64_t{a.num_heads} * a.head_dim * a.hidden_size;
  EXPECT_TRUE(e.PoisonTensor(TensorRole::kWq, 0, wq - 1, 1).ok());
  EXPECT_EQ(e.PoisonTensor(TensorRole::kWq, 0, wq - 1, 2).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(e.PoisonTensor(TensorRole::kMlpNorm, 0, a.hidden_size, 1).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(e.PoisonTensor(TensorRole::kWq, 1, 0, 1).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e.PoisonTensor(TensorRole::kFinalNorm, 0, 0, 1).code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace wafer::sim

#include "board_sim/sim_wafer.h"

#include <chrono>
#include <thread>

#include <algorithm>
#include <cmath>
#include <limits>

namespace wafer::sim {
namespace {

namespace hal = ::wafer::fw::hal;

constexpr uint64_t kSaturated = std::numeric_limits<uint64_t>::max();

// Multiplication that saturates instead of wrapping, so absurd manifests fail the SRAM check.
uint64_t SatMul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? kSaturated : r;
}
uint64_t SatAdd(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? kSaturated : r;
}

uint64_t ElementBytes(DType d) {
  switch (d) {
    case DType::kF32: return 4;
    case DType::kF16:
    case DType::kBF16: return 2;
  }
  return 4;
}

// Whether a stage holds a tensor of `role` at global layer `layer`: the set LlamaEngine::Create
// requires (embedding on the first stage and as a tied model's head, final norm and untied LM
// head on the last, per-layer tensors of the stage's layers). REQUIRES: stage.layer_count
// resolved.
bool StageHolds(const ModelArch& a, const ModelStage& stage, TensorRole role,
                uint32_t layer) {
  switch (role) {
    case TensorRole::kEmbedding:
      return layer == 0 && (stage.has_embedding || (stage.has_head && a.tie_embeddings));
    case TensorRole::kFinalNorm:
      return layer == 0 && stage.has_head;
    case TensorRole::kLmHead:
      return layer == 0 && stage.has_head && !a.tie_embeddings;
    case TensorRole::kAttnNorm:
    case TensorRole::kWq:
    case TensorRole::kWk:
    case TensorRole::kWv:
    case TensorRole::kWo:
    case TensorRole::kMlpNorm:
    case TensorRole::kWGate:
    case TensorRole::kWUp:
    case TensorRole::kWDown:
      return layer >= stage.first_layer && layer - stage.first_layer < stage.layer_count;
  }
  return false;
}

// The hop into a stage without the embedding: the link's latency plus the step's hidden states
// at 16 bits per value, as the real link carries activations. (The simulated Step carries them
// as float32 so that a split model computes exactly what the whole model does; the link time is
// that of the real system.)
int64_t InterWaferNs(const wafer_model::Preset& p, uint32_t hidden_size, uint64_t tokens) {
  const double bytes = static_cast<double>(tokens) * hidden_size * 2;
  return std::llround(p.interwafer_hop_latency_us * 1e3 + bytes / p.interwafer_bytes_per_s * 1e9);
}

uint64_t NextRandom(uint64_t& state) {  // splitmix64.
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

struct SimWafer::Model {
  struct Tensor {
    TensorRole role = TensorRole::kEmbedding;
    uint32_t layer = 0;
    DType dtype = DType::kF32;
    std::vector<uint64_t> shape;
    uint64_t byte_size = 0;
  };
  uint32_t id = 0;
  ModelArch arch;
  ModelStage stage;  // layer_count resolved.
  ModelArch shape;   // The arch with num_layers the stage's layers only (timing).
  // The PE band each of its stages computes on, from its placement.
  wafer_model::WaferStages bands;
  uint32_t slots = 0;
  uint32_t context = 0;
  bool shape_only = false;
  bool committed = false;
  std::vector<Tensor> tensors;
  // What BeginModel took from the SRAM map: one per tensor (same order), then the KV regions.
  std::vector<SramReservation> reservations;
  std::unique_ptr<FunctionalModel> functional;  // Functional models: weights and engine.
  std::vector<uint64_t> rng;             // Per slot; seeded from SeqSampling.seed on reset.
  std::vector<uint32_t> context_tokens;  // Per slot, for shape-only models.

  // The engine of a committed functional model, else nullptr.
  LlamaEngine* engine() const { return functional ? functional->engine() : nullptr; }
  uint32_t ContextOf(uint32_t slot) const {
    LlamaEngine* e = engine();
    return e ? e->context_tokens(slot) : context_tokens[slot];
  }
};

namespace {

// The band a stage computes on: the bounding box of the rectangles it was placed on.
wafer_model::Band BoundingBand(std::span<const hal::PeRect> rects) {
  uint32_t x0 = UINT32_MAX, y0 = UINT32_MAX, x1 = 0, y1 = 0;
  for (const hal::PeRect& r : rects) {
    x0 = std::min(x0, r.x);
    y0 = std::min(y0, r.y);
    x1 = std::max(x1, r.x + r.w);
    y1 = std::max(y1, r.y + r.h);
  }
  return rects.empty() ? wafer_model::Band{} : wafer_model::Band{x1 - x0, y1 - y0};
}

}  // namespace

// Timing follows the placement: each decoder layer computes on the band its tensors and KV
// region span, the head on the rectangle of the matrix that produces the logits (the LM head,
// or the embedding a tied model reuses). A manifest that leaves a layer or the head without a
// tensor (shape-only test fixtures) is timed as the equal-share layout instead.
wafer_model::WaferStages SimWafer::StagesOf(const Model& model,
                                            std::span<const hal::KvRegion> kv) const {
  const ModelStage& stage = model.stage;
  wafer_model::WaferStages out;
  std::vector<hal::PeRect> rects;
  for (uint32_t l = stage.first_layer; l < stage.first_layer + stage.layer_count; ++l) {
    rects.clear();
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const TensorRole role = model.tensors[i].role;
      const bool per_layer = role != TensorRole::kEmbedding &&
                             role != TensorRole::kFinalNorm &&
                             role != TensorRole::kLmHead;
      if (per_layer && model.tensors[i].layer == l) rects.push_back(model.reservations[i].rect);
    }
    if (rects.empty()) return timing_.EqualShareStages(model.shape);
    for (const hal::KvRegion& r : kv) {
      if (r.layer == l) rects.push_back(r.rect);
    }
    out.layers.push_back(BoundingBand(rects));
  }
  if (stage.has_head) {
    const hal::PeRect* logits = nullptr;
    for (size_t i = 0; i < model.tensors.size(); ++i) {
      const TensorRole role = model.tensors[i].role;
      if (role == TensorRole::kLmHead ||
          (role == TensorRole::kEmbedding && logits == nullptr)) {
        logits = &model.reservations[i].rect;
      }
    }
    if (logits == nullptr) return timing_.EqualShareStages(model.shape);
    out.has_head = true;
    out.head = BoundingBand(std::span<const hal::PeRect>(logits, 1));
  }
  return out;
}

struct SimWafer::SeqRun {
  const hal::SeqStepView* step = nullptr;
  hal::SeqOutcome* out = nullptr;
  bool generating = false;
  uint32_t last_token = 0;  // To feed in the next decode pass.
  size_t logits_row = 0;
  size_t first_row = 0;  // Of its input tokens in the prefill pass (hidden states out).
};

SimWafer::SimWafer(wafer_model::Preset preset, const Clock& clock, SimWaferOptions options)
    : preset_(std::move(preset)),
      clock_(clock),
      options_(std::move(options)),
      timing_(preset_),
      thermal_(preset_, clock.NowNanos()),
      fabric_(preset_, options_.seed) {
  ResetSram();
  for (const hal::FaultSpec& f : options_.faults.faults) {
    if (f.kind == hal::FaultKind::kThermalRunaway || f.kind == hal::FaultKind::kPowerCap ||
        f.kind == hal::FaultKind::kLinkCrc) {
      ApplyFault(f).IgnoreError();
    }
  }
}

SimWafer::~SimWafer() = default;

hal::WaferInfo SimWafer::Info() const {
  hal::WaferInfo info;
  info.board_id = options_.board_id.c_str();
  info.preset = preset_.name.c_str();
  info.physical_pes = preset_.physical_pes;
  info.fabric_width = fabric_.usable_width();
  info.fabric_height = fabric_.usable_height();
  info.warn_c = static_cast<float>(preset_.warn_c);
  info.critical_c = static_cast<float>(preset_.critical_c);
  info.sram_per_pe = preset_.sram_per_pe_bytes;
  info.clock_hz = preset_.clock_hz;
  info.max_slots = preset_.max_slots;
  return info;
}

Status SimWafer::SelfTest() {
  if (options_.faults.fail_self_test) return Internal();
  thermal_.AdvanceTo(clock_.NowNanos());
  if (thermal_.max_region_c() > preset_.critical_c) return Internal();  // Too hot to run.
  if (options_.firmware == nullptr) return OkStatus();
  const fw::hal::BootControl control = options_.firmware->ReadBootControl();
  if (options_.faults.fail_trial_boot && control.trial) return Internal();
  const fw::hal::SlotRecord& running = control.slots[control.active_slot];
  const std::span<const std::byte> mapped = options_.firmware->MappedSlot(control.active_slot);
  const std::string_view image(reinterpret_cast<const char*>(mapped.data()),
                               std::min<uint64_t>(running.size, mapped.size()));
  return image.find(kFailSelfTestMarker) == std::string_view::npos ? OkStatus() : Internal();
}

uint64_t SimWafer::KvCacheBytes(const ModelArch& a, uint32_t slots, uint32_t context) {
  uint64_t b = SatMul(slots, context);
  b = SatMul(b, a.num_layers);
  b = SatMul(b, 2ull * a.num_kv_heads);
  b = SatMul(b, a.head_dim);
  return SatMul(b, 2);
}

Status SimWafer::BeginModel(const hal::ModelManifest& m) {
  if (models_.count(m.model_id) != 0) return AlreadyExists();
  const ModelArch& a = m.arch;
  if (a.vocab_size == 0 || a.hidden_size == 0 || a.intermediate_size == 0 ||
      a.num_layers == 0 || a.num_heads == 0 || a.num_kv_heads == 0 || a.head_dim == 0 ||
      a.num_heads % a.num_kv_heads != 0 || m.slots == 0 || m.context_length == 0) {
    return InvalidArgument();
  }
  if (m.slots > preset_.max_slots) return ResourceExhausted();
  // Every model lists its tensors (a shape-only one too: nothing is written, but the SRAM its
  // weights would hold is reserved), each on the PEs the host placed it.
  if (m.tensors.empty() || m.kv_regions.empty()) return InvalidArgument();
  // A stage holds only its own tensors and KV regions, by their global layer indices.
  if (!StageIsValid(m.stage, a.num_layers)) return InvalidArgument();
  ModelStage stage = m.stage;
  stage.layer_count = StageLayerCount(m.stage, a.num_layers);
  auto model = std::make_unique<Model>();
  for (const hal::TensorSpec& t : m.tensors) {
    uint64_t elems = 1;
    for (uint32_t i = 0; i < t.rank; ++i) elems = SatMul(elems, t.shape[i]);
    if (t.rank == 0 || SatMul(elems, ElementBytes(t.dtype)) != t.byte_size ||
        t.placement.pes() == 0 || !StageHolds(a, stage, t.role, t.layer)) {
      return InvalidArgument();
    }
    Model::Tensor tensor;
    tensor.role = t.role;
    tensor.layer = t.layer;
    tensor.dtype = t.dtype;
    tensor.shape.assign(t.shape.begin(), t.shape.begin() + t.rank);
    tensor.byte_size = t.byte_size;
    model->tensors.push_back(std::move(tensor));
    const uint64_t per_pe = (t.byte_size + t.placement.pes() - 1) / t.placement.pes();
    model->reservations.push_back(SramReservation{t.placement, per_pe});
  }
  // Each of the stage's layers' KV regions must hold its share of the cache.
  std::vector<uint64_t> kv_reserved(stage.layer_count, 0);
  for (const hal::KvRegion& r : m.kv_regions) {
    if (r.layer < stage.first_layer || r.layer - stage.first_layer >= stage.layer_count ||
        r.rect.pes() == 0) {
      return InvalidArgument();
    }
    uint64_t& have = kv_reserved[r.layer - stage.first_layer];
    have = SatAdd(have, SatMul(r.bytes_per_pe, r.rect.pes()));
    model->reservations.push_back(SramReservation{r.rect, r.bytes_per_pe});
  }
  const uint64_t kv_per_layer = KvCacheBytes(a, m.slots, m.context_length) / a.num_layers;
  for (uint64_t have : kv_reserved) {
    if (have < kv_per_layer) return InvalidArgument();
  }
  WAFER_RETURN_IF_ERROR(sram_.Reserve(model->reservations));

  model->id = m.model_id;
  model->arch = a;
  model->stage = stage;
  model->shape = a;
  model->shape.num_layers = stage.layer_count;
  model->bands = StagesOf(*model, m.kv_regions);
  model->slots = m.slots;
  model->context = m.context_length;
  model->shape_only = m.shape_only;
  model->rng.assign(m.slots, 0);
  model->context_tokens.assign(m.slots, 0);
  if (!m.shape_only) {
    std::vector<StagedTensor> staged;  // Nothing written: no storage yet.
    for (const Model::Tensor& t : model->tensors) {
      staged.emplace_back(t.role, t.layer, t.dtype, t.shape);
    }
    model->functional = std::make_unique<FunctionalModel>(a, stage, m.slots, m.context_length,
                                                          std::move(staged));
  }
  models_[m.model_id] = std::move(model);
  return OkStatus();
}

Status SimWafer::WriteTensor(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                             std::span<const std::byte> data) {
  auto it = models_.find(model_id);
  if (it == models_.end()) return NotFound();  // A committed model's write is a repair.
  Model& model = *it->second;
  if (model.shape_only) return FailedPrecondition();
  return model.functional->Write(tensor_index, offset, data);
}

// Converts nothing: WriteTensor did (see FunctionalModel::Commit). On a committed model, a
// repair: the engine takes the tensors rewritten since the fault.
Status SimWafer::CommitModel(uint32_t model_id) {
  auto it = models_.find(model_id);
  if (it == models_.end()) return NotFound();
  Model& model = *it->second;
  if (model.functional) WAFER_RETURN_IF_ERROR(model.functional->Commit());
  model.committed = true;
  return OkStatus();
}

Status SimWafer::UnloadModel(uint32_t model_id) {
  auto it = models_.find(model_id);
  if (it == models_.end()) return NotFound();
  sram_.Release(it->second->reservations);
  models_.erase(it);
  return OkStatus();
}

Status SimWafer::RunStep(const hal::StepRequest& request, std::span<hal::SeqOutcome> outcomes,
                         DeviceTime& time) {
  const int64_t began = clock_.NowNanos();
  auto it = models_.find(request.model_id);
  if (it == models_.end() || !it->second->committed) return NotFound();
  Model& model = *it->second;
  std::vector<bool> seen(model.slots, false);
  std::vector<SeqRun> runs(request.seqs.size());
  const ModelStage& stage = model.stage;
  // Hidden states cross the hops of a functional pipeline only (see SeqStepView::hidden_in).
  const bool takes_hidden = model.engine() != nullptr && !stage.has_embedding;
  const bool gives_hidden = model.engine() != nullptr && !stage.has_head;
  uint64_t inputs = 0, generated = 0, stops = 0;  // Host I/O: see TimingModel::StepHostBytes.
  uint64_t hop_tokens = 0;
  for (size_t i = 0; i < request.seqs.size(); ++i) {
    const hal::SeqStepView& s = request.seqs[i];
    if (s.slot >= model.slots || seen[s.slot]) return InvalidArgument();
    const uint64_t row_values = uint64_t{s.input_tokens.size()} * model.arch.hidden_size;
    if ((s.generate > 0 && !stage.has_head) || (s.generate > 1 && !stage.has_embedding) ||
        s.hidden_in.size() != (takes_hidden ? row_values : 0) ||
        outcomes[i].hidden_buffer.size() < (gives_hidden ? row_values : 0)) {
      return InvalidArgument();
    }
    seen[s.slot] = true;
    runs[i].step = &s;
    runs[i].out = &outcomes[i];
    // The hidden states are not host I/O: on the real system they go from wafer to wafer.
    inputs += s.input_tokens.size();
    generated += s.generate;
    stops += s.stop_tokens.size();
    hop_tokens += s.input_tokens.size();
  }
  thermal_.AdvanceTo(clock_.NowNanos());
  if (thermal_.halted()) return Unavailable();
  time = DeviceTime{};
  if (!stage.has_embedding) {
    time.inter_wafer_ns = InterWaferNs(preset_, model.arch.hidden_size, hop_tokens);
  }
  WAFER_RETURN_IF_ERROR(RunSeqs(model, runs, time));
  // The pipeline runs at the pace of its slowest region's clock (throttled or capped).
  const double ratio = thermal_.min_clock_ratio();
  if (ratio < 1.0) {
    time.compute_ns = std::llround(double(time.compute_ns) / ratio);
    time.fabric_ns = std::llround(double(time.fabric_ns) / ratio);
  }
  if (request.from_stage) {
    // From the previous stage, not the host: a last stage's tokens go back to the first stage
    // over one more hop (4 bytes each, latency-bound).
    if (stage.has_head) {
      time.inter_wafer_ns += std::llround(preset_.interwafer_hop_latency_us * 1e3 +
                                          4.0 * double(request.seqs.size()) /
                                              preset_.interwafer_bytes_per_s * 1e9);
    }
  } else {
    time.host_io_ns = timing_.HostIoNs(
        wafer_model::TimingModel::StepHostBytes(request.seqs.size(), inputs, generated, stops));
  }
  time.total_ns = time.compute_ns + time.fabric_ns + time.inter_wafer_ns + time.host_io_ns;
  thermal_.AddBusy(time.compute_ns + time.fabric_ns);
  if (options_.realtime) {
    // The wafer is busy for the modeled time; the firmware waits for it, as it would for the
    // fabric. (Simulated hardware latency, not a timeout: nothing else runs on this thread.)
    const int64_t remaining = began + time.total_ns - clock_.NowNanos();
    if (remaining > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(remaining));
  }
  return OkStatus();
}

Status SimWafer::RunSeqs(Model& model, std::span<SeqRun> runs, DeviceTime& time) {
  const uint32_t vocab = model.arch.vocab_size;
  const size_t hidden = model.arch.hidden_size;
  const bool has_head = model.stage.has_head;
  LlamaEngine* const engine = model.engine();  // nullptr: shape-only.
  std::vector<uint32_t> batch_slots;
  std::vector<std::span<const uint32_t>> batch_tokens;
  std::vector<float> logits;
  // The batch's rows in (a stage without the embedding) and out (one without the head).
  std::vector<float> hidden_in, hidden_out;
  // Runs one forward pass over the batch (functional) or advances the counters (shape-only),
  // and adds its modeled time.
  auto forward = [&]() -> Status {
    uint64_t tokens = 0;
    double context_sum = 0;
    for (size_t b = 0; b < batch_slots.size(); ++b) {
      const double before = model.ContextOf(batch_slots[b]);
      const double n = static_cast<double>(batch_tokens[b].size());
      tokens += batch_tokens[b].size();
      context_sum += n * (before + (n + 1) / 2);
    }
    if (tokens == 0) return OkStatus();
    if (engine != nullptr) {
      logits.resize(has_head ? batch_slots.size() * vocab : 0);
      hidden_out.resize(has_head ? 0 : tokens * hidden);
      WAFER_RETURN_IF_ERROR(
          engine->Forward(batch_slots, batch_tokens, hidden_in, hidden_out, logits));
    } else {
      for (size_t b = 0; b < batch_slots.size(); ++b) {
        model.context_tokens[batch_slots[b]] += static_cast<uint32_t>(batch_tokens[b].size());
      }
    }
    const wafer_model::PassTime pass =
        timing_.Pass(model.shape, model.bands, tokens, context_sum / double(tokens));
    time.compute_ns += pass.compute_ns;
    time.fabric_ns += pass.fabric_ns;
    return OkStatus();
  };

  // Resets, then one prefill pass with every sequence's input tokens.
  size_t rows = 0;
  for (SeqRun& r : runs) {
    const hal::SeqStepView& s = *r.step;
    r.out->code = StatusCode::kOk;
    r.out->token_count = 0;
    r.out->hidden_count = 0;
    if (s.reset) {
      if (engine != nullptr) engine->ResetSlot(s.slot);
      model.context_tokens[s.slot] = 0;
      model.rng[s.slot] = model.shape_only ? s.sampling.seed ^ (options_.seed * 0x2545F4914F6CDD1Dull)
                                           : s.sampling.seed;
      // A shape-only model draws once per token; the engine once per token when sampling.
      if (model.shape_only || s.sampling.temperature > 0) {
        SkipSamples(model.rng[s.slot], s.sampled_before);
      }
    }
    const bool bad_token = std::any_of(s.input_tokens.begin(), s.input_tokens.end(),
                                       [&](uint32_t t) { return t >= vocab; });
    if (bad_token || (s.generate > 0 && s.input_tokens.empty())) {
      r.out->code = StatusCode::kInvalidArgument;  // Nothing valid to generate from.
      continue;
    }
    if (model.ContextOf(s.slot) + s.input_tokens.size() > model.context) {
      r.out->code = StatusCode::kResourceExhausted;
      continue;
    }
    if (s.input_tokens.empty()) continue;
    r.logits_row = batch_slots.size();
    r.first_row = rows;
    rows += s.input_tokens.size();
    r.generating = s.generate > 0;
    batch_slots.push_back(s.slot);
    batch_tokens.push_back(s.input_tokens);
    hidden_in.insert(hidden_in.end(), s.hidden_in.begin(), s.hidden_in.end());
  }
  WAFER_RETURN_IF_ERROR(forward());
  // A stage without the head hands every input row on; it generates nothing (RunStep checked).
  if (!hidden_out.empty()) {
    for (SeqRun& r : runs) {
      if (r.out->code != StatusCode::kOk || r.step->input_tokens.empty()) continue;
      const size_t n = r.step->input_tokens.size() * hidden;
      std::copy_n(hidden_out.begin() + static_cast<ptrdiff_t>(r.first_row * hidden), n,
                  r.out->hidden_buffer.begin());
      r.out->hidden_count = static_cast<uint32_t>(n);
    }
  }
  // Decode passes embed their tokens: only a stage with the embedding generates more than one.
  hidden_in.clear();

  // Decode: sample one token per generating sequence, then feed all of them in one batched pass.
  for (;;) {
    batch_slots.clear();
    batch_tokens.clear();
    for (SeqRun& r : runs) {
      if (!r.generating) continue;
      const hal::SeqStepView& s = *r.step;
      uint64_t& rng = model.rng[s.slot];
      uint32_t token;
      if (engine != nullptr) {
        token = SampleToken(std::span<const float>(logits).subspan(r.logits_row * vocab, vocab),
                            s.sampling, rng);
      } else {
        token = static_cast<uint32_t>(NextRandom(rng) % vocab);
      }
      r.out->token_buffer[r.out->token_count++] = token;
      const bool stop =
          std::find(s.stop_tokens.begin(), s.stop_tokens.end(), token) != s.stop_tokens.end();
      if (stop || r.out->token_count == s.generate) {
        r.generating = false;
        continue;
      }
      if (model.ContextOf(s.slot) >= model.context) {
        r.out->code = StatusCode::kResourceExhausted;
        r.generating = false;
        continue;
      }
      r.last_token = token;
      r.logits_row = batch_slots.size();
      batch_slots.push_back(s.slot);
      batch_tokens.push_back(std::span<const uint32_t>(&r.last_token, 1));
    }
    if (batch_slots.empty()) break;
    WAFER_RETURN_IF_ERROR(forward());
  }
  for (SeqRun& r : runs) r.out->context_tokens = model.ContextOf(r.step->slot);
  return OkStatus();
}

void SimWafer::ReadSensors(hal::SensorReadout& out) {
  thermal_.AdvanceTo(clock_.NowNanos());
  out = hal::SensorReadout{};
  out.region_count = std::min<uint32_t>(preset_.regions(), hal::kMaxRegions);
  for (uint32_t i = 0; i < out.region_count; ++i) {
    out.region_temp_c[i] = static_cast<float>(thermal_.region_temp_c(i));
    out.region_clock_hz[i] = preset_.clock_hz * thermal_.clock_ratio(i);
  }
  out.power_w = static_cast<float>(thermal_.power_w());
  out.clock_hz = preset_.clock_hz * thermal_.min_clock_ratio();
  out.coolant_in_c = static_cast<float>(thermal_.coolant_in_c());
  out.coolant_out_c = static_cast<float>(thermal_.coolant_out_c());
  out.sram_used_bytes = sram_.used_bytes();
  out.sram_total_bytes = sram_total_bytes();
  out.ecc_correctable = ecc_correctable_;
  out.ecc_uncorrectable = ecc_uncorrectable_;
  const RailPower rails = thermal_.rails();
  out.core_power_w = static_cast<float>(rails.core_w);
  out.sram_power_w = static_cast<float>(rails.sram_w);
  out.io_power_w = static_cast<float>(rails.io_w);
  out.coolant_flow_kg_s = static_cast<float>(thermal_.coolant_flow_kg_s());
  out.power_cap_w = static_cast<float>(thermal_.power_cap_w());
  out.throttled = thermal_.throttled();
}

void SimWafer::PowerCycle() {
  models_.clear();
  fabric_.Unprogram();
  ResetSram();
  timing_ = wafer_model::TimingModel(preset_);
  thermal_.SetHalted(false);
  events_.clear();
  ecc_correctable_ = 0;
  ecc_uncorrectable_ = 0;
}

SimWafer::HostUsage SimWafer::host_usage() const {
  HostUsage u;
  for (const auto& [id, m] : models_) {
    if (!m->functional) continue;
    u.weight_bytes += m->functional->weight_host_bytes();
    u.kv_bytes += m->functional->kv_host_bytes();
    u.weight_bytes_converted += m->functional->weight_bytes_converted();
  }
  return u;
}

uint64_t SimWafer::kv_host_bytes(uint32_t model_id, uint32_t slot) const {
  auto it = models_.find(model_id);
  if (it == models_.end() || it->second->engine() == nullptr) return 0;
  return it->second->engine()->kv_bytes(slot);
}

uint64_t SimWafer::sram_total_bytes() const {
  return fabric_.usable_pes() * preset_.sram_per_pe_bytes;
}

void SimWafer::ResetSram() {
  sram_.Reset(fabric_.usable_width(), fabric_.usable_height(), preset_.sram_per_pe_bytes);
}

Status SimWafer::ProgramHarvest(std::span<const uint32_t> row_map) {
  if (!models_.empty()) return FailedPrecondition();  // Only at boot, before any model.
  WAFER_RETURN_IF_ERROR(fabric_.Program(row_map));
  ResetSram();
  // Placement and timing see the harvested rectangle.
  wafer_model::Preset harvested = preset_;
  harvested.fabric_height = fabric_.usable_height();
  timing_ = wafer_model::TimingModel(harvested);
  if (!plan_pe_faults_applied_) {
    plan_pe_faults_applied_ = true;
    for (const hal::FaultSpec& f : options_.faults.faults) {
      if (f.kind == hal::FaultKind::kPeStop || f.kind == hal::FaultKind::kEccCorrectable ||
          f.kind == hal::FaultKind::kEccUncorrectable ||
          f.kind == hal::FaultKind::kSramStuckBit || f.kind == hal::FaultKind::kFabricLink) {
        ApplyFault(f).IgnoreError();
      }
    }
  }
  return OkStatus();
}

// The coordinate now lands on a spare: the latent faults of the PE it replaced are gone with it.
Status SimWafer::RemapPe(uint32_t row, uint32_t col) {
  WAFER_RETURN_IF_ERROR(fabric_.Remap(row, col));
  latent_.ClearPe(fabric_.physical_row(row), col);
  return OkStatus();
}

namespace {

bool RectHolds(const hal::PeRect& r, uint32_t row, uint32_t col) {
  return col >= r.x && col - r.x < r.w && row >= r.y && row - r.y < r.h;
}

}  // namespace

SimWafer::Model* SimWafer::OwnerOfPe(uint32_t row, uint32_t col) const {
  if (row >= fabric_.usable_height() || col >= fabric_.usable_width()) return nullptr;
  for (const auto& [id, m] : models_) {
    // Models placed by the host do not share PEs; the first one is the owner.
    for (const SramReservation& s : m->reservations) {
      if (RectHolds(s.rect, row, col)) return m.get();
    }
  }
  return nullptr;
}

hal::PeContents SimWafer::ContentsOfPe(uint32_t row, uint32_t col,
                                       std::span<uint32_t> tensors) const {
  hal::PeContents c;
  const Model* m = OwnerOfPe(row, col);
  if (m == nullptr) return c;
  c.has_model = true;
  c.model_id = m->id;
  const size_t tensors_end = m->tensors.size();
  for (size_t i = 0; i < tensors_end; ++i) {
    if (!RectHolds(m->reservations[i].rect, row, col)) continue;
    if (c.tensor_count < tensors.size()) tensors[c.tensor_count] = static_cast<uint32_t>(i);
    ++c.tensor_count;
  }
  c.kv_cache = std::any_of(m->reservations.begin() + static_cast<ptrdiff_t>(tensors_end),
                           m->reservations.end(),
                           [&](const SramReservation& s) { return RectHolds(s.rect, row, col); });
  return c;
}

void SimWafer::LoseSram(uint32_t row, uint32_t col) {
  Model* m = OwnerOfPe(row, col);
  if (m == nullptr) return;
  for (size_t i = 0; i < m->tensors.size(); ++i) {
    const hal::PeRect& r = m->reservations[i].rect;
    if (!RectHolds(r, row, col)) continue;
    const Model::Tensor& t = m->tensors[i];
    // The tensor's bytes lie over its rectangle row-major, bytes_per_pe on each PE in turn.
    const uint64_t share = m->reservations[i].bytes_per_pe;
    const uint64_t k = uint64_t{row - r.y} * r.w + (col - r.x);
    const uint64_t begin = std::min(SatMul(k, share), t.byte_size);
    const uint64_t end = std::min(SatAdd(begin, share), t.byte_size);
    if (begin == end) continue;  // The PE held none of it (the last PEs of a rounded share).
    if (m->functional) m->functional->Poison(static_cast<uint32_t>(i), begin, end);
  }
}

size_t SimWafer::PollEvents(std::span<hal::HwEvent> out) {
  size_t n = 0;
  while (n < out.size() && !events_.empty()) {
    out[n++] = events_.front();
    events_.pop_front();
  }
  return n;
}

bool SimWafer::TakeLinkCrcError() {
  if (link_crc_pending_ == 0) return false;
  --link_crc_pending_;
  return true;
}

Status SimWafer::InjectFault(const hal::FaultSpec& fault) { return ApplyFault(fault); }

Status SimWafer::ApplyFault(const hal::FaultSpec& f) {
  const auto pe_event = [&](hal::HwEventKind kind, uint64_t count) -> Status {
    if (!fabric_.programmed()) return FailedPrecondition();
    if (f.row >= fabric_.usable_height() || f.pe >= fabric_.usable_width()) {
      return InvalidArgument();
    }
    events_.push_back(hal::HwEvent{kind, f.row, f.pe, count});
    return OkStatus();
  };
  const uint64_t count = f.value >= 1 ? static_cast<uint64_t>(f.value) : 1;
  switch (f.kind) {
    case hal::FaultKind::kPeStop: {
      if (!fabric_.programmed()) return FailedPrecondition();
      const Status killed = fabric_.KillPe(f.row, f.pe);
      if (!killed.ok()) return InvalidArgument();
      LoseSram(f.row, f.pe);
      return pe_event(hal::HwEventKind::kPeStopped, 1);
    }
    case hal::FaultKind::kEccCorrectable:
      WAFER_RETURN_IF_ERROR(pe_event(hal::HwEventKind::kEccCorrectable, count));
      ecc_correctable_ += count;
      return OkStatus();
    case hal::FaultKind::kEccUncorrectable:
      WAFER_RETURN_IF_ERROR(pe_event(hal::HwEventKind::kEccUncorrectable, 1));
      LoseSram(f.row, f.pe);
      ++ecc_uncorrectable_;
      return OkStatus();
    case hal::FaultKind::kLinkCrc:
      link_crc_pending_ += count;
      return OkStatus();
    case hal::FaultKind::kThermalRunaway:
      if (f.region >= preset_.regions()) return InvalidArgument();
      thermal_.AdvanceTo(clock_.NowNanos());
      thermal_.SetRegionCoolingFactor(f.region, f.value);
      return OkStatus();
    case hal::FaultKind::kPowerCap:
      thermal_.AdvanceTo(clock_.NowNanos());
      thermal_.SetPowerCap(f.value);
      return OkStatus();
    case hal::FaultKind::kSramStuckBit: {
      // Latent: ECC masks it, so it raises no event and counts no ECC error.
      if (!fabric_.programmed()) return FailedPrecondition();
      if (f.row >= fabric_.usable_height() || f.pe >= fabric_.usable_width() ||
          !(f.value >= 0) || !(f.value < preset_.sram_per_pe_bytes)) {
        return InvalidArgument();
      }
      const uint64_t address = static_cast<uint64_t>(f.value) & ~uint64_t{7};  // Its word.
      latent_.AddStuckBit(fabric_.physical_row(f.row), f.pe, address);
      return OkStatus();
    }
    case hal::FaultKind::kFabricLink: {
      // Latent: link-level retry masks it in normal traffic.
      if (!fabric_.programmed()) return FailedPrecondition();
      const bool south = f.value == 1;
      if (f.row >= fabric_.usable_height() || f.pe >= fabric_.usable_width() ||
          (f.value != 0 && f.value != 1) ||
          (!south && f.pe + 1 >= fabric_.usable_width()) ||
          (south && f.row + 1 >= fabric_.usable_height())) {
        return InvalidArgument();
      }
      latent_.AddBadLink(fabric_.physical_row(f.row), f.pe, south);
      return OkStatus();
    }
    case hal::FaultKind::kProcessCrash:
      if (!options_.crash) return Unimplemented();
      options_.crash();  // Does not return.
      return Internal();
    case hal::FaultKind::kNone:
    case hal::FaultKind::kFirmwareHang:
      return Unimplemented();  // The firmware's own fault, not the wafer's.
  }
  return InvalidArgument();
}

}  // namespace wafer::sim

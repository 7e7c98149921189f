// model-bench: real-model paths against baselines measured in the same run, on a ~240 MB bf16
// checkpoint written by the mkmodel library into /tmp (deleted at exit):
//   (a) LoadCheckpoint + a CRC-32C over every tensor byte in 1 MiB chunks (as the board link
//       does per WriteWeights chunk) vs read() of the same, page-cached files;
//   (b) functional decode at batch 1: weight bytes streamed per second vs memcpy bandwidth on
//       buffers larger than the caches;
//   (c) decode tokens/s at batch 16 vs batch 1.
// Prints each figure with its baseline, the ratio and MEETS/MISSES against the target. Nothing
// fails on a missed target: the numbers are the result.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "board_sim/llama/llama_engine.h"
#include "common/crc32c.h"
#include "host/models/checkpoint.h"
#include "host/models/checksum_manifest.h"
#include "host/models/mkmodel.h"

namespace {

namespace fs = std::filesystem;
using wafer::host::Checkpoint;
using wafer::host::CheckpointTensor;

constexpr size_t kLinkChunkBytes = size_t{1} << 20;  // firmware kMaxChunkBytes.
constexpr size_t kReadChunkBytes = size_t{4} << 20;
constexpr int kRepeats = 3;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "model-bench: %s: %s\n", what, detail.c_str());
  std::exit(1);
}

// Removes the model directory however main() returns.
struct TempDir {
  fs::path path;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<fs::path> Files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

uint64_t Bytes(const std::vector<fs::path>& files) {
  uint64_t total = 0;
  for (const fs::path& f : files) total += fs::file_size(f);
  return total;
}

// Baseline: read() every file once, sequentially, into one reused buffer.
uint64_t ReadAll(const std::vector<fs::path>& files, std::vector<char>& buffer) {
  uint64_t total = 0;
  for (const fs::path& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Die("open", f.string());
    ssize_t n;
    while ((n = ::read(fd, buffer.data(), buffer.size())) > 0) total += static_cast<uint64_t>(n);
    ::close(fd);
  }
  return total;
}

// LoadCheckpoint, then a CRC-32C over every tensor in link-sized chunks. Returns a value
// derived from every CRC so the work cannot be optimized away.
uint32_t LoadAndCrc(const std::string& dir, std::unique_ptr<Checkpoint>* out) {
  std::string detail;
  auto ck = wafer::host::LoadCheckpoint(dir, &detail);
  if (!ck.ok()) Die("LoadCheckpoint", detail);
  uint32_t mix = 0;
  for (const CheckpointTensor& t : (*ck)->tensors) {
    for (size_t off = 0; off < t.bytes.size(); off += kLinkChunkBytes) {
      mix ^= wafer::Crc32c(t.bytes.subspan(off, std::min(kLinkChunkBytes, t.bytes.size() - off)));
    }
  }
  if (out != nullptr) *out = std::move(ck).value();
  return mix;
}

template <class F>
double BestSeconds(F&& f) {
  double best = 1e30;
  for (int i = 0; i < kRepeats; ++i) {
    const double start = Now();
    f();
    best = std::min(best, Now() - start);
  }
  return best;
}

// memcpy bandwidth (bytes copied per second) on buffers larger than the last-level cache.
double MemcpyBandwidth() {
  long l3 = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 <= 0) l3 = 64l << 20;
  const size_t size = std::max<size_t>(size_t{256} << 20, 2 * static_cast<size_t>(l3));
  std::vector<char> src(size, 1), dst(size, 2);  // Touched: no page faults while timed.
  const double s = BestSeconds([&] {
    std::memcpy(dst.data(), src.data(), size);
    asm volatile("" : : "r"(dst.data()) : "memory");
  });
  return static_cast<double>(size) / s;
}

std::unique_ptr<wafer::sim::LlamaEngine> MakeEngine(const Checkpoint& ck, uint32_t slots,
                                                    uint32_t context) {
  const wafer::host::ModelArch& a = ck.arch();
  wafer::sim::LlamaArch arch;
  arch.vocab_size = a.vocab_size;
  arch.hidden_size = a.hidden_size;
  arch.intermediate_size = a.intermediate_size;
  arch.num_layers = a.num_layers;
  arch.num_heads = a.num_heads;
  arch.num_kv_heads = a.num_kv_heads;
  arch.head_dim = a.head_dim;
  arch.rope_theta = a.rope_theta;
  arch.rms_norm_eps = a.rms_norm_eps;
  arch.max_position = a.max_position;
  arch.tie_embeddings = a.tie_embeddings;
  arch.rope_scaling_factor = a.rope_scaling.factor;
  arch.rope_low_freq_factor = a.rope_scaling.low_freq_factor;
  arch.rope_high_freq_factor = a.rope_scaling.high_freq_factor;
  arch.rope_original_max_position = a.rope_scaling.original_max_position;
  std::vector<wafer::sim::TensorView> views;
  for (const CheckpointTensor& t : ck.tensors) {
    wafer::sim::TensorView v;
    v.role = static_cast<wafer::sim::TensorRole>(t.desc.role);
    v.layer = t.desc.layer;
    v.dtype = static_cast<wafer::sim::DType>(t.desc.dtype);
    v.shape = t.desc.shape;
    v.bytes = t.bytes;
    views.push_back(std::move(v));
  }
  auto engine = wafer::sim::LlamaEngine::Create(arch, views, slots, context);
  if (!engine.ok()) Die("LlamaEngine::Create", engine.status().name());
  return std::move(engine).value();
}

// Prefills `batch` slots with a short prompt, then times `steps` greedy decode steps of all of
// them together. Returns tokens per second (batch * steps / seconds).
double DecodeTokensPerSecond(wafer::sim::LlamaEngine& e, uint32_t batch, uint32_t steps) {
  const uint32_t vocab = e.arch().vocab_size;
  std::vector<uint32_t> slots(batch);
  std::vector<std::vector<uint32_t>> tokens(batch);
  for (uint32_t i = 0; i < batch; ++i) {
    slots[i] = i;
    e.ResetSlot(i);
    tokens[i] = {(7 * i + 1) % vocab, (13 * i + 5) % vocab, (31 * i + 9) % vocab};
  }
  std::vector<float> logits(size_t{batch} * vocab);
  auto step = [&] {
    std::vector<std::span<const uint32_t>> spans(tokens.begin(), tokens.end());
    const wafer::Status s = e.Forward(slots, spans, logits);
    if (!s.ok()) Die("Forward", s.name());
    for (uint32_t i = 0; i < batch; ++i) {
      const float* row = &logits[size_t{i} * vocab];
      tokens[i] = {static_cast<uint32_t>(std::max_element(row, row + vocab) - row)};
    }
  };
  step();  // Prefill.
  step();  // First decode step: warms caches and wakes the helper.
  const double start = Now();
  for (uint32_t s = 0; s < steps; ++s) step();
  return static_cast<double>(batch) * steps / (Now() - start);
}

void Row(const char* what, double value, const char* unit, const char* baseline_what,
         double baseline, double ratio, double target) {
  std::printf("%-44s %9.2f %-6s %-30s %9.2f %-6s %6.2fx  target >= %.2fx  %s\n", what, value, unit,
              baseline_what, baseline, unit, ratio, target, ratio >= target ? "MEETS" : "MISSES");
}

}  // namespace

int main() {
  const double bench_start = Now();
  TempDir tmp{fs::temp_directory_path() / ("model-bench-" + std::to_string(::getpid()))};
  wafer::host::MkModelOptions options;
  options.out_dir = (tmp.path / "medium").string();
  options.preset = wafer::host::ModelPreset::kMedium;
  options.dtype = wafer::host::DType::kBF16;
  options.seed = 3;
  std::string detail;
  double start = Now();
  if (!wafer::host::MakeModel(options, &detail).ok()) Die("MakeModel", detail);
  const std::vector<fs::path> files = Files(options.out_dir);
  const uint64_t file_bytes = Bytes(files);
  std::printf("model-bench: medium preset, bf16, %.1f MB in %zu files (written in %.1f s)\n\n",
              file_bytes / 1e6, files.size(), Now() - start);

  // (a) Loading, page cache warm.
  std::vector<char> buffer(kReadChunkBytes);
  std::memset(buffer.data(), 0, buffer.size());
  ReadAll(files, buffer);
  const double read_s = BestSeconds([&] {
    if (ReadAll(files, buffer) != file_bytes) Die("read", "short read");
  });
  volatile uint32_t sink = 0;
  const double verified_s = BestSeconds([&] { sink = sink ^ LoadAndCrc(options.out_dir, nullptr); });
  // The same load without the manifest (its bytes still counted, so the rows compare).
  const fs::path manifest = fs::path(options.out_dir) / wafer::host::kChecksumManifestName;
  const fs::path aside = tmp.path / "manifest.aside";
  fs::rename(manifest, aside);
  const double unverified_s =
      BestSeconds([&] { sink = sink ^ LoadAndCrc(options.out_dir, nullptr); });
  fs::rename(aside, manifest);
  const double read_gbs = file_bytes / read_s / 1e9;
  std::printf("%-44s %9s %-6s %-30s %9s %-6s %7s\n", "figure", "value", "unit", "baseline", "value",
              "unit", "ratio");
  Row("(a) load + per-chunk CRC, manifest verified", file_bytes / verified_s / 1e9, "GB/s",
      "read() from page cache", read_gbs, read_s / verified_s, 0.6);
  Row("(a) load + per-chunk CRC, no manifest", file_bytes / unverified_s / 1e9, "GB/s",
      "read() from page cache", read_gbs, read_s / unverified_s, 0.6);

  // (b) and (c): decode.
  std::unique_ptr<Checkpoint> ck;
  LoadAndCrc(options.out_dir, &ck);
  uint64_t streamed = 0;  // Weight bytes one decode token reads: all but the embedding table.
  for (const CheckpointTensor& t : ck->tensors) {
    if (t.desc.role != wafer::host::TensorRole::kEmbedding) streamed += t.bytes.size();
  }
  if (ck->arch().tie_embeddings) streamed += ck->tensors.front().bytes.size();
  const uint32_t kBatch = 16;
  auto engine = MakeEngine(*ck, kBatch, 128);
  ck.reset();  // The engine holds its own copy; keep only one in memory.
  const double memcpy_bw = MemcpyBandwidth();
  const double tps1 = DecodeTokensPerSecond(*engine, 1, 40);
  const double tps16 = DecodeTokensPerSecond(*engine, kBatch, 12);
  const double stream_bw = static_cast<double>(streamed) * tps1;
  Row("(b) decode batch 1: weight streaming", stream_bw / 1e9, "GB/s", "memcpy (> LLC buffers)",
      memcpy_bw / 1e9, stream_bw / memcpy_bw, 0.5);
  std::printf("    batch 1: %.1f tokens/s, %.1f MB of weights per token\n", tps1, streamed / 1e6);
  Row("(c) decode batch 16", tps16, "tok/s", "decode batch 1", tps1, tps16 / tps1, 8.0);
  std::printf("\nmodel-bench: done in %.1f s\n", Now() - bench_start);
  return 0;
}

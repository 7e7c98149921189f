// model-bench: real-model paths against baselines measured in the same run, on checkpoints
// written by the mkmodel library into /tmp (deleted at exit):
//   (a) loading mkmodel's medium preset in float32 (123M parameters, 493 MB) as a user does:
//       the admin socket's LoadModel, timed from the request to the reply that says the model is
//       ready, through waferd onto its embedded wse3 board and through waferd onto a wafer-sim
//       process over ipc:// (median of 3, unloaded between), against read() of the same,
//       page-cached files into one 4 MiB buffer (median of 5); waferd's resident memory after the
//       load and after one job, against the weights plus the KV cache of the slots in use; and,
//       without a target, the host side alone (LoadCheckpoint and a CRC-32C per 1 MiB chunk);
//   (b) functional decode at batch 1 (the engine's two threads) of the medium preset in bf16:
//       weight bytes read per second against a two-thread memcpy on buffers larger than the
//       caches, counting the bytes it reads and writes;
//   (c) decode tokens/s at batch 16 vs batch 1.
// Prints each figure with its baseline, the ratio and MET/MISSED against its target. Nothing
// fails on a missed target: the numbers are the result.
//
//   model-bench [--bin DIR]   (DIR holds waferd and wafer-sim; default: this build's)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "bench/waferd_process.h"
#include "board_sim/llama/llama_engine.h"
#include "common/crc32c.h"
#include "host/models/checkpoint.h"
#include "host/models/checksum_manifest.h"
#include "host/client/wafer_client.h"
#include "host/models/mkmodel.h"

namespace {

namespace fs = std::filesystem;
using wafer::host::Checkpoint;
using wafer::host::CheckpointTensor;

constexpr size_t kLinkChunkBytes = size_t{1} << 20;  // firmware kMaxChunkBytes.
constexpr size_t kReadChunkBytes = size_t{4} << 20;
constexpr int kRepeats = 3;
// (a)'s load: slots and context (the medium preset's max_position).
constexpr uint32_t kLoadSlots = 8;
constexpr uint32_t kLoadContext = 2048;

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
  auto ck = wafer::host::LoadCheckpoint(dir);
  if (!ck.ok()) Die("LoadCheckpoint", ck.error().message);
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

// Memory bandwidth of a two-thread memcpy (each thread copies its half) on buffers larger than
// the last-level cache: bytes read plus bytes written per second, the traffic a copy makes.
double MemcpyBandwidth() {
  long l3 = ::sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (l3 <= 0) l3 = 64l << 20;
  const size_t size = std::max<size_t>(size_t{256} << 20, 2 * static_cast<size_t>(l3));
  std::vector<char> src(size, 1), dst(size, 2);  // Touched: no page faults while timed.
  const size_t half = size / 2;
  const double s = BestSeconds([&] {
    std::thread helper([&] { std::memcpy(dst.data() + half, src.data() + half, size - half); });
    std::memcpy(dst.data(), src.data(), half);
    helper.join();
    asm volatile("" : : "r"(dst.data()) : "memory");
  });
  return 2.0 * static_cast<double>(size) / s;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A wafer-sim process serving `endpoint` (SIGTERM on destruction).
class WaferSim {
 public:
  WaferSim(const std::string& bin, const std::string& endpoint, const std::string& socket_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, 1);
      const std::string exe = bin + "/wafer-sim";
      ::execl(exe.c_str(), exe.c_str(), "--endpoint", endpoint.c_str(), "--preset", "wse3",
              nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !fs::exists(socket_path); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ok_ = fs::exists(socket_path);
  }
  ~WaferSim() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  bool ok() const { return ok_; }

 private:
  pid_t pid_ = -1;
  bool ok_ = false;
};

struct LoadFigures {
  double seconds = 0;       // Median load time.
  double rss_loaded = 0;    // waferd VmRSS after a load, MB.
  double rss_one_job = 0;   // ... and after one job ran in one slot.
  std::string error;
};

// Loads `model` three times through a waferd whose board is embedded (`board_endpoint` empty)
// or the wafer-sim at `board_endpoint`; after the last load, runs one short job.
LoadFigures LoadThroughWaferd(const std::string& bin, const fs::path& scratch,
                              const std::string& model, const std::string& board_endpoint) {
  LoadFigures f;
  fs::create_directories(scratch);
  wafer::bench::WaferdOptions o;
  o.bin_dir = bin;
  o.dir = scratch.string();
  o.load_shape = false;
  o.board_endpoint = board_endpoint;
  auto started = wafer::bench::WaferdProcess::Start(o);
  if (!started.ok()) {
    f.error = started.error().ToString();
    return f;
  }
  wafer::bench::WaferdProcess& waferd = **started;
  std::vector<double> times;
  for (int i = 0; i < 3; ++i) {
    const wafer::HostResult<double> t = waferd.LoadModel(model, "m", kLoadSlots, kLoadContext);
    if (!t.ok()) {
      f.error = t.error().message;
      return f;
    }
    times.push_back(*t);
    if (i < 2 && !waferd.UnloadModel("m")) {
      f.error = "unload failed";
      return f;
    }
  }
  f.seconds = Median(times);
  f.rss_loaded = waferd.RssMb();
  auto client = wafer::host::JobClient::Connect(waferd.job_endpoint());
  if (!client.ok()) {
    f.error = "cannot make a job socket";
    return f;
  }
  wafer::host::SubmitJob job;
  job.model = "m";
  job.prompt_tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  job.max_tokens = 8;
  job.want_text = false;
  wafer::host::SubmitOutcome outcome;
  wafer::host::JobFinished finished;
  if (!(*client)->Run(job, [](const wafer::host::TokenChunk&) {}, &outcome, &finished, 60000)
           .ok()) {
    f.error = "the job did not run";
    return f;
  }
  f.rss_one_job = waferd.RssMb();
  return f;
}

std::unique_ptr<wafer::sim::LlamaEngine> MakeEngine(const Checkpoint& ck, uint32_t slots,
                                                    uint32_t context) {
  const wafer::ModelArch& arch = ck.arch();
  std::vector<wafer::sim::TensorView> views;
  for (const CheckpointTensor& t : ck.tensors) {
    wafer::sim::TensorView v;
    v.role = t.desc.role;
    v.layer = t.desc.layer;
    v.dtype = t.desc.dtype;
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
              baseline_what, baseline, unit, ratio, target, ratio >= target ? "MET" : "MISSED");
}

void RowAtMost(const char* what, double value, const char* unit, const char* baseline_what,
               double baseline, double ratio, double target) {
  std::printf("%-44s %9.2f %-6s %-30s %9.2f %-6s %6.2fx  target <= %.2fx  %s\n", what, value, unit,
              baseline_what, baseline, unit, ratio, target, ratio <= target ? "MET" : "MISSED");
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin = WAFER_BIN_DIR;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--bin" && i + 1 < argc) {
      bin = argv[++i];
    } else {
      std::fprintf(stderr, "usage: model-bench [--bin DIR]\n");
      return 2;
    }
  }
  const double bench_start = Now();
  TempDir tmp{fs::temp_directory_path() / ("model-bench-" + std::to_string(::getpid()))};
  // (a) Loading: the float32 medium checkpoint.
  wafer::host::MkModelOptions f32;
  f32.out_dir = (tmp.path / "medium-f32").string();
  f32.preset = wafer::host::ModelPreset::kMedium;
  f32.dtype = wafer::DType::kF32;
  f32.seed = 3;
  double start = Now();
  if (auto made = wafer::host::MakeModel(f32); !made.ok()) Die("MakeModel", made.error().message);
  const std::vector<fs::path> files = Files(f32.out_dir);
  const uint64_t file_bytes = Bytes(files);
  std::printf("model-bench: (a) medium preset, float32, %.1f MB in %zu files (written in %.1f s)\n",
              file_bytes / 1e6, files.size(), Now() - start);
  std::vector<char> buffer(kReadChunkBytes);
  std::memset(buffer.data(), 0, buffer.size());
  ReadAll(files, buffer);  // Warms the page cache.
  std::vector<double> reads;
  for (int i = 0; i < 5; ++i) {
    const double t0 = Now();
    if (ReadAll(files, buffer) != file_bytes) Die("read", "short read");
    reads.push_back(Now() - t0);
  }
  const double read_s = Median(reads);
  const double read_gbs = file_bytes / read_s / 1e9;
  uint64_t weight_bytes = 0, kv_slot_bytes = 0;
  {
    std::unique_ptr<Checkpoint> ck;
    LoadAndCrc(f32.out_dir, &ck);
    for (const CheckpointTensor& t : ck->tensors) weight_bytes += t.bytes.size();
    const wafer::ModelArch& a = ck->arch();
    // The engine's KV cache of one slot: keys and values, float32, every layer, the context.
    kv_slot_bytes = uint64_t{2} * a.num_layers * kLoadContext * a.num_kv_heads * a.head_dim * 4;
  }
  const LoadFigures embedded =
      LoadThroughWaferd(bin, tmp.path / "embedded", f32.out_dir, /*board_endpoint=*/"");
  if (!embedded.error.empty()) Die("load onto the embedded board", embedded.error);
  LoadFigures ipc;
  {
    const fs::path socket = tmp.path / "board.sock";
    const std::string endpoint = "ipc://" + socket.string();
    WaferSim sim(bin, endpoint, socket.string());
    if (!sim.ok()) Die("wafer-sim", "did not start on " + endpoint);
    ipc = LoadThroughWaferd(bin, tmp.path / "ipc", f32.out_dir, endpoint);
    if (!ipc.error.empty()) Die("load onto wafer-sim over ipc://", ipc.error);
  }
  volatile uint32_t sink = 0;
  const double host_s = BestSeconds([&] { sink = sink ^ LoadAndCrc(f32.out_dir, nullptr); });

  std::printf("%-44s %9s %-6s %-30s %9s %-6s %7s\n", "figure", "value", "unit", "baseline", "value",
              "unit", "ratio");
  Row("(a) load through waferd, embedded wse3", file_bytes / embedded.seconds / 1e9, "GB/s",
      "read() from page cache", read_gbs, read_s / embedded.seconds, 0.5);
  Row("(a) load through waferd, wafer-sim ipc://", file_bytes / ipc.seconds / 1e9, "GB/s",
      "read() from page cache", read_gbs, read_s / ipc.seconds, 0.25);
  std::printf("    (median of 3 loads of %u slots x %u, each timed from waferctl's request to the "
              "reply that the model is ready)\n",
              kLoadSlots, kLoadContext);
  const double weights_mb = weight_bytes / 1048576.0, slot_mb = kv_slot_bytes / 1048576.0;
  RowAtMost("(a) waferd VmRSS, model loaded (embedded)", embedded.rss_loaded, "MiB",
            "weights, no slot in use", weights_mb, embedded.rss_loaded / weights_mb, 1.2);
  RowAtMost("(a) waferd VmRSS, after one job (embedded)", embedded.rss_one_job, "MiB",
            "weights + 1 slot's KV cache", weights_mb + slot_mb,
            embedded.rss_one_job / (weights_mb + slot_mb), 1.2);
  std::printf("%-44s %9.2f %-6s %-30s %9s %-6s\n", "(a) waferd VmRSS, board in wafer-sim",
              ipc.rss_one_job, "MiB", "(the weights are in wafer-sim)", "", "");
  std::printf("%-44s %9.2f %-6s %-30s %9.2f %-6s %6.2fx  (no target: no board, no link)\n",
              "(a) host side only: open + CRC per 1 MiB", file_bytes / host_s / 1e9, "GB/s",
              "read() from page cache", read_gbs, "GB/s", read_s / host_s);

  // (b) and (c): decode, on the bf16 medium checkpoint.
  fs::remove_all(f32.out_dir);
  wafer::host::MkModelOptions options;
  options.out_dir = (tmp.path / "medium").string();
  options.preset = wafer::host::ModelPreset::kMedium;
  options.dtype = wafer::DType::kBF16;
  options.seed = 3;
  if (auto made = wafer::host::MakeModel(options); !made.ok()) {
    Die("MakeModel", made.error().message);
  }
  std::unique_ptr<Checkpoint> ck;
  LoadAndCrc(options.out_dir, &ck);
  uint64_t streamed = 0;  // Weight bytes one decode token reads: all but the embedding table.
  for (const CheckpointTensor& t : ck->tensors) {
    if (t.desc.role != wafer::TensorRole::kEmbedding) streamed += t.bytes.size();
  }
  if (ck->arch().tie_embeddings) streamed += ck->tensors.front().bytes.size();
  const uint32_t kBatch = 16;
  auto engine = MakeEngine(*ck, kBatch, 128);
  ck.reset();  // The engine holds its own copy; keep only one in memory.
  const double memcpy_bw = MemcpyBandwidth();
  const double tps1 = DecodeTokensPerSecond(*engine, 1, 40);
  const double tps16 = DecodeTokensPerSecond(*engine, kBatch, 12);
  const double stream_bw = static_cast<double>(streamed) * tps1;
  Row("(b) decode batch 1 (2 threads): weights read", stream_bw / 1e9, "GB/s",
      "memcpy, 2 threads, read+written", memcpy_bw / 1e9, stream_bw / memcpy_bw, 0.5);
  std::printf("    batch 1: %.1f tokens/s, %.1f MB of bf16 weights per token\n", tps1,
              streamed / 1e6);
  Row("(c) decode batch 16", tps16, "tok/s", "decode batch 1", tps1, tps16 / tps1, 8.0);
  std::printf("\nmodel-bench: done in %.1f s\n", Now() - bench_start);
  return 0;
}

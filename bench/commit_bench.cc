// commit-bench: what each board command of a model load costs the simulated board, measured on a
// SimWafer of a real preset driven directly (no link, no daemon), with a checkpoint written by
// wafer-mkmodel:
//   commit-bench --model DIR [--preset wse3] [--slots 128] [--context 2048] [--chunk 1048576]
// BeginModel, every tensor in link-sized WriteTensor chunks (the slowest one reported),
// CommitModel, then one greedy Step on slot 3 (16 prompt tokens, 8 generated, printed so that two
// builds can be compared token for token) and UnloadModel. Each line gives the command's wall
// time and the process's resident memory after it; the last line the peak (getrusage).
// Placement: every tensor and each layer's KV cache in its own band of full-width rows.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "wafer_model/preset.h"
#include "board_sim/sim_wafer.h"
#include "board_sim/testing/row_placement.h"
#include "host/models/checkpoint.h"

namespace {

namespace hal = wafer::fw::hal;
using wafer::sim::SimWafer;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "commit-bench: %s\n", what.c_str());
  std::exit(1);
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Resident set size now, in MiB (/proc/self/statm).
double RssMiB() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1048576.0;
}

double PeakRssMiB() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux.
}

void Report(const char* what, double seconds) {
  std::printf("%-34s %10.3f ms   rss %8.1f MiB\n", what, seconds * 1e3, RssMiB());
}

void Check(wafer::Status s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + std::string(s.name()));
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir, preset_name = "wse3";
  uint32_t slots = 128, context = 2048;
  size_t chunk = size_t{1} << 20;  // firmware kMaxChunkBytes.
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--model") model_dir = value;
    else if (flag == "--preset") preset_name = value;
    else if (flag == "--slots") slots = static_cast<uint32_t>(std::stoul(value));
    else if (flag == "--context") context = static_cast<uint32_t>(std::stoul(value));
    else if (flag == "--chunk") chunk = std::stoul(value);
    else Die("unknown flag " + flag);
  }
  if (model_dir.empty() || chunk == 0) {
    Die("usage: commit-bench --model DIR [--preset P] [--slots S] [--context C] [--chunk B]");
  }

  auto ck = wafer::host::LoadCheckpoint(model_dir);
  if (!ck.ok()) Die("LoadCheckpoint: " + ck.error().message);
  const wafer::host::Checkpoint& checkpoint = **ck;
  auto preset = wafer::wafer_model::LoadPreset(preset_name);
  if (!preset.ok()) Die("LoadPreset: " + preset.error().message);
  wafer::SystemClock clock;
  SimWafer wafer(*preset, clock, wafer::sim::SimWaferOptions{});

  const wafer::ModelArch& a = checkpoint.arch();
  hal::ModelManifest m;
  m.model_id = 1;
  m.arch = a;
  std::vector<hal::TensorSpec> specs;
  uint64_t weight_bytes = 0;
  for (const wafer::host::CheckpointTensor& t : checkpoint.tensors) {
    hal::TensorSpec s;
    s.role = t.desc.role;
    s.layer = t.desc.layer;
    s.dtype = t.desc.dtype;
    s.rank = static_cast<uint32_t>(t.desc.shape.size());
    for (size_t d = 0; d < t.desc.shape.size(); ++d) s.shape[d] = t.desc.shape[d];
    s.byte_size = t.bytes.size();
    weight_bytes += s.byte_size;
    specs.push_back(s);
  }
  const uint64_t kv_per_layer = SimWafer::KvCacheBytes(m.arch, slots, context) / a.num_layers;
  const std::vector<hal::KvRegion> kv =
      wafer::sim::testing::PlaceInRows(specs, a.num_layers, kv_per_layer,
                                       wafer.Info().fabric_width, wafer.Info().sram_per_pe)
          .kv;
  m.tensors = specs;
  m.kv_regions = kv;
  m.slots = slots;
  m.context_length = context;
  std::printf("model %s: %llu weight bytes in %zu tensors; preset %s; %u slots x %u tokens; "
              "chunks of %zu bytes\n",
              model_dir.c_str(), static_cast<unsigned long long>(weight_bytes), specs.size(),
              preset_name.c_str(), slots, context, chunk);
  Report("checkpoint mapped", 0);

  double t0 = Now();
  Check(wafer.BeginModel(m), "BeginModel");
  Report("BeginModel", Now() - t0);

  double writes = 0, slowest = 0;
  size_t chunks = 0;
  for (uint32_t i = 0; i < checkpoint.tensors.size(); ++i) {
    const std::span<const std::byte> bytes = checkpoint.tensors[i].bytes;
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      const double c0 = Now();
      Check(wafer.WriteTensor(1, i, off, bytes.subspan(off, std::min(chunk, bytes.size() - off))),
            "WriteTensor");
      const double dt = Now() - c0;
      writes += dt;
      slowest = std::max(slowest, dt);
      ++chunks;
    }
  }
  Report(("WriteTensor x" + std::to_string(chunks) + " (sum)").c_str(), writes);
  Report("WriteTensor, slowest chunk", slowest);

  t0 = Now();
  Check(wafer.CommitModel(1), "CommitModel");
  Report("CommitModel", Now() - t0);

  std::vector<uint32_t> prompt(16);
  for (size_t i = 0; i < prompt.size(); ++i) {
    prompt[i] = static_cast<uint32_t>(1 + 37 * i) % a.vocab_size;
  }
  std::vector<uint32_t> tokens(8);
  const hal::SeqStepView seq{.slot = 3, .reset = true, .input_tokens = prompt,
                             .generate = static_cast<uint32_t>(tokens.size())};
  hal::SeqOutcome outcome{};
  outcome.slot = 3;
  outcome.token_buffer = tokens;
  wafer::DeviceTime time;
  t0 = Now();
  Check(wafer.RunStep(hal::StepRequest{1, std::span(&seq, 1)}, std::span(&outcome, 1), time),
        "RunStep");
  Report("RunStep (slot 3, 16 in, 8 out)", Now() - t0);
  std::printf("tokens:");
  for (uint32_t k = 0; k < outcome.token_count; ++k) std::printf(" %u", tokens[k]);
  std::printf("\n");

  t0 = Now();
  Check(wafer.UnloadModel(1), "UnloadModel");
  Report("UnloadModel", Now() - t0);
  std::printf("peak rss %.1f MiB\n", PeakRssMiB());
  return 0;
}

// waferd as a child process for the benchmarks: a config written to a scratch directory, a
// shape-only model (config.json alone) loaded over the admin socket, SIGTERM on destruction.
// Shared by waferd-bench's sections.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/error.h"

namespace wafer::bench {

// Llama 3.1 8B and Llama 3.2 1B (and 70B below) as their config.json gives them.
inline constexpr const char* kLlama8B = R"({"architectures": ["LlamaForCausalLM"],
  "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
  "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
  "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-05,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";
inline constexpr const char* kLlama1B = R"({"architectures": ["LlamaForCausalLM"],
  "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
  "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
  "head_dim": 64, "max_position_embeddings": 131072, "rope_theta": 500000.0,
  "rms_norm_eps": 1e-05, "tie_word_embeddings": true, "torch_dtype": "bfloat16"})";

// Llama 3.1 70B: about four wafers' worth of weights, pipelined by layer.
inline constexpr const char* kLlama70B = R"({"architectures": ["LlamaForCausalLM"],
  "vocab_size": 128256, "hidden_size": 8192, "intermediate_size": 28672,
  "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
  "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-05,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16"})";

// The decode_tokens_per_step of the throughput sections.
inline constexpr uint32_t kThroughputTokens = 32;

// The `scheduler:` keys the throughput sections use: large batches and steps, deep queues;
// decode_tokens_per_step `tokens` (0: left to waferd's default).
inline std::string ThroughputSchedulerYaml(uint32_t tokens) {
  return "  max_batch: 512\n" +
         (tokens == 0 ? std::string()
                      : "  decode_tokens_per_step: " + std::to_string(tokens) + "\n") +
         "  queue_limit: 100000\n  max_tokens_limit: 65536\n";
}
inline const std::string kThroughputSchedulerYaml = ThroughputSchedulerYaml(kThroughputTokens);

struct WaferdOptions {
  std::string bin_dir;  // Holds the waferd binary.
  std::string dir;      // Scratch: config.json, waferd.yaml and waferd.log are (over)written here.
  const char* shape = kLlama8B;  // The model's config.json; it is loaded as model "shape".
  uint32_t slots = 64;
  uint32_t context = 1024;
  uint32_t boards = 1;            // Embedded wse3 boards; > 1 splits the model (a layer pipeline).
  std::string store = "memory";   // store.path ("memory": none).
  std::string pacing = "fast";    // Each board's pacing: fast, or realtime (modeled step times).
  // The lines under `scheduler:`, each indented two spaces.
  std::string scheduler_yaml = kThroughputSchedulerYaml;
  // Top-level keys appended to waferd.yaml as they are (e.g. "drain_timeout_ms: 1000\n").
  std::string extra_yaml;
  // False: start waferd with no model (load one with LoadModel).
  bool load_shape = true;
  // Not empty: the one board is this ipc:// or tcp:// endpoint (a wafer-sim process already
  // listening there) instead of embedded wse3 boards.
  std::string board_endpoint;
};

// Not thread-safe. The destructor stops waferd (SIGTERM) and waits for it to exit.
class WaferdProcess {
 public:
  // Starts waferd and, unless `options.load_shape` is false, loads the shape model. A waferd that
  // exits at start (a config it refuses) is noticed within a second.
  //
  // Returns:
  //   OK                  - waferd answers on its admin socket (with the model loaded).
  //   NOT_FOUND           - there is no runnable `bin_dir`/waferd.
  //   FAILED_PRECONDITION - waferd exited at start, or refused the load (the message quotes the
  //                         last line of its log, or the load's detail).
  //   UNAVAILABLE         - no admin socket could be made, or waferd did not answer within 30 s.
  static HostResult<std::unique_ptr<WaferdProcess>> Start(const WaferdOptions& options);
  ~WaferdProcess();
  WaferdProcess(const WaferdProcess&) = delete;
  WaferdProcess& operator=(const WaferdProcess&) = delete;

  const std::string& job_endpoint() const { return job_ep_; }
  // Resident memory in MB, from /proc; -1 when unreadable.
  double RssMb() const;
  // User + system CPU seconds waferd has used so far, from /proc; -1 when unreadable.
  double CpuSeconds() const;
  // Loads the model directory `path` as `name` on board 0 over the admin socket and returns the
  // seconds from the request to the reply that says it is ready, measured here.
  // Returns:
  //   OK                  - the seconds.
  //   FAILED_PRECONDITION - waferd refused the load ("load failed: <its detail>").
  //   any other code      - no admin socket, or no answer (the message ends with the last line
  //                         of waferd.log).
  HostResult<double> LoadModel(const std::string& path, const std::string& name, uint32_t slots,
                               uint32_t context) const;
  // Unloads `name`; false when waferd refused.
  bool UnloadModel(const std::string& name) const;

 private:
  explicit WaferdProcess(std::string dir) : dir_(std::move(dir)) {}
  // Start()'s work, on a process object whose destructor stops whatever was started.
  HostStatus Launch(const WaferdOptions& options);
  // The last line of waferd.log that says something, for the start errors.
  std::string LastLogLine() const;

  pid_t pid_ = -1;
  std::string dir_;
  std::string job_ep_, admin_ep_;
};

}  // namespace wafer::bench

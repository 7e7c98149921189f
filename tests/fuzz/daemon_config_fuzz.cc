// waferd.yaml loading (an operator's file, but a typo must never crash the daemon): never
// crashes, and a refusal always names what is wrong.
#include "host/config/daemon_config.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  wafer::HostResult<DaemonConfig> config = ParseDaemonConfig(text);
  if (!config.ok()) FUZZ_CHECK(!config.error().message.empty());
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  return {DefaultConfigYaml(), R"(
job_endpoint: ipc:///tmp/j
scheduler:
  max_batch: 32
boards:
  - endpoint: tcp://127.0.0.1:9000
  - endpoint: inproc://b1
    preset: mini
models:
  - path: /models/demo
    board: 1
    slots: 8
  - path: /models/big
    boards: [1, 0]
)"};
}

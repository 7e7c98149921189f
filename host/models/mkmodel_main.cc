// wafer-mkmodel --out DIR [--preset tiny|small|medium|demo] [--dtype f32|bf16|f16] [--tied]
//               [--seed N] [--shards N] [--no-checksums]
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "common/log/log.h"
#include "host/models/mkmodel.h"

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::string_view a : args) {
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: wafer-mkmodel --out DIR [--preset tiny|small|medium|demo] [--dtype f32|bf16|f16]\n"
          "                     [--tied] [--seed N] [--shards N] [--no-checksums]\n"
          "Writes a random Llama checkpoint (config.json, safetensors, tokenizer.json) and\n"
          "model.checksums.json (CRC-32C and length of each file; --no-checksums omits it).\n");
      return 0;
    }
  }
  auto options = wafer::host::ParseMkModelArgs(args);
  if (!options.ok()) {
    const std::string& detail = options.error().message;
    std::fprintf(stderr, "wafer-mkmodel: %s (try --help)\n", detail.c_str());
    return 2;
  }
  const wafer::HostStatus made = wafer::host::MakeModel(*options);
  if (!made.ok()) {
    wafer::log::Error("mkmodel", "{}: {}", made.error().code_name(), made.error().message);
    return 1;
  }
  std::printf("wrote %s\n", options->out_dir.c_str());
  return 0;
}

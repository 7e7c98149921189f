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
  std::string detail;
  auto options = wafer::host::ParseMkModelArgs(args, &detail);
  if (!options.ok()) {
    std::fprintf(stderr, "wafer-mkmodel: %s (try --help)\n", detail.c_str());
    return 2;
  }
  const wafer::Status status = wafer::host::MakeModel(*options, &detail);
  if (!status.ok()) {
    wafer::log::Error("mkmodel", "{}: {}", status.name(), detail);
    return 1;
  }
  std::printf("wrote %s\n", options->out_dir.c_str());
  return 0;
}

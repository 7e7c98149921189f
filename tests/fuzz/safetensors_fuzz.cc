// The .safetensors header parser (a checkpoint is outside input): never crashes, a refusal
// always says why, and every tensor it accepts lies inside the data it was given.
#include <cstring>

#include "host/models/safetensors_file.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;
using ::wafer::DType;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  auto file = SafetensorsFile::FromBytes(bytes, "fuzz.safetensors");
  if (!file.ok()) {
    FUZZ_CHECK(!file.error().message.empty());
    return 0;
  }
  uint64_t end_of_previous = 0;
  for (const SafetensorsTensor& t : (*file)->tensors()) {
    FUZZ_CHECK(t.bytes.empty() || (t.bytes.data() >= bytes.data() &&
                                   t.bytes.data() + t.bytes.size() <= bytes.data() + size));
    // In offset order and not overlapping.
    const uint64_t begin = t.bytes.empty() ? end_of_previous
                                           : static_cast<uint64_t>(t.bytes.data() - bytes.data());
    FUZZ_CHECK(t.bytes.empty() || begin >= end_of_previous);
    if (!t.bytes.empty()) end_of_previous = begin + t.bytes.size();
    FUZZ_CHECK((*file)->Find(t.name) != nullptr);
  }
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  auto tensor = [](std::string name, DType dtype, std::vector<uint64_t> shape) {
    uint64_t elements = 1;
    for (uint64_t d : shape) elements *= d;
    SafetensorsWriteTensor t{std::move(name), dtype, std::move(shape), {}};
    t.data.assign(elements * DTypeSize(dtype), std::byte{0x3f});
    return t;
  };
  const std::vector<SafetensorsWriteTensor> model = {
      tensor("model.embed_tokens.weight", DType::kBF16, {16, 4}),
      tensor("model.layers.0.input_layernorm.weight", DType::kF32, {4}),
      tensor("model.layers.0.self_attn.q_proj.weight", DType::kF16, {4, 4}),
      tensor("empty", DType::kF32, {0, 3})};
  return {EncodeSafetensors(model, {{"format", "pt"}}),
          EncodeSafetensors(std::span(model).first(1), {})};
}

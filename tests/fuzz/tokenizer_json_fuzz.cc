// The tokenizer.json parser (it ships with a checkpoint: outside input): never crashes, a
// refusal always says why, and a tokenizer it accepts encodes text and decodes ids without
// crashing either.
#include "host/models/mkmodel.h"
#include "host/models/tokenizer.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tokenizer = Tokenizer::FromJson(text, "fuzz/tokenizer.json");
  if (!tokenizer.ok()) {
    FUZZ_CHECK(!tokenizer.error().message.empty());
    return 0;
  }
  const std::vector<uint32_t> ids = (*tokenizer)->Encode("Hello world, 123 <|end_of_text|>\n");
  (*tokenizer)->Decode(ids);
  const std::vector<uint32_t> odd = {0, 1, 255, 256, 0xffffffffu};
  (*tokenizer)->Decode(odd);
  return 0;
}

std::vector<std::string> FuzzSeeds() { return {TrainTokenizerJson(8), TrainTokenizerJson(0)}; }

// The host's decoder of board replies (a wafer-sim process is outside input too): never
// crashes, and a failure always says why.
#include "host/board/board_codec.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string error;
  auto r = DecodeBoardReply({reinterpret_cast<const std::byte*>(data), size}, &error);
  if (!r.ok()) FUZZ_CHECK(!error.empty());
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  // Board commands share the envelope and identifier with replies, so they are good starting
  // points for reply-shaped mutations; the step carries nested vectors.
  std::vector<std::string> seeds;
  auto add = [&](const auto& frame) {
    seeds.emplace_back(reinterpret_cast<const char*>(frame.data()), frame.size());
  };
  SeqStep seq;
  seq.slot = 1;
  seq.input_tokens = {1, 2, 3};
  seq.generate = 4;
  seq.stop_tokens = {7};
  add(EncodeStep(9, 1, {seq, seq}));
  seq.hidden_in = {0.25f, -1.0f, 3.0f};  // A float vector, as StepReply.hidden_out carries.
  add(EncodeStep(10, 1, {seq}));
  add(EncodeIdentify(1));
  add(EncodeReadTelemetry(2));
  add(EncodeHeartbeat(3, 42));
  return seeds;
}

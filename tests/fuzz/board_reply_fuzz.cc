// The host's decoder of board replies (a wafer-sim process is outside input too): never
// crashes, and a failure always says why. Seeded with real replies: the firmware superloop, on
// the fake wafer, answers a session of host commands (identify, boot, stage and commit a model,
// steps with tokens and hidden states, telemetry, heartbeat, error log, geometry, faults, a
// diagnostic, a refused frame), so every reply type is in the corpus as the firmware encodes it.
#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>

#include "common/crc32c.h"
#include "firmware/link/firmware_loop.h"
#include "common/net/message.h"
#include "firmware/testing/fake_platform.h"
#include "host/board/board_codec.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;
using ::wafer::DType;
using ::wafer::ModelStage;
using ::wafer::TensorRole;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = DecodeBoardReply({reinterpret_cast<const std::byte*>(data), size});
  if (!r.ok()) FUZZ_CHECK(!r.error().message.empty());
  return 0;
}

namespace {

// A host port that serves queued frames and keeps the replies.
class QueuePort final : public wafer::fw::hal::HostPort {
 public:
  wafer::Result<size_t> Receive(std::span<std::byte> buffer, int64_t) override {
    if (in.empty()) return wafer::DeadlineExceeded();
    Frame f = std::move(in.front());
    in.pop_front();
    const size_t n = std::min(buffer.size(), f.size());
    if (n > 0) std::memcpy(buffer.data(), f.data(), n);
    return f.size();
  }
  wafer::Status Send(std::span<const std::byte> frame) override {
    out.emplace_back(reinterpret_cast<const char*>(frame.data()), frame.size());
    return wafer::OkStatus();
  }
  std::deque<Frame> in;
  std::vector<std::string> out;
};

}  // namespace

std::vector<std::string> FuzzSeeds() {
  QueuePort port;
  wafer::fw::testing::FakePlatform fake;
  auto loop = std::make_unique<wafer::fw::FirmwareLoop>(port, fake.platform());
  auto serve = [&](Frame frame) {
    port.in.push_back(std::move(frame));
    loop->PollOnce(0).IgnoreError();
  };
  serve(EncodeIdentify(1));
  serve(EncodeBoot(2));
  ModelManifest m;
  m.model_id = 1;
  m.name = std::string("m");  // Not = "m": g++ 12 -Wrestrict false positive under ASan.
  m.arch.vocab_size = 8;
  m.arch.hidden_size = 4;
  m.arch.intermediate_size = 8;
  m.arch.num_layers = 2;
  m.arch.num_heads = 1;
  m.arch.num_kv_heads = 1;
  m.arch.head_dim = 4;
  m.arch.max_position = 8;
  m.tensors.push_back(TensorDesc{"t", TensorRole::kAttnNorm, 1, DType::kF32, {4}, 16,
                                 {0, 0, 1, 1}});
  m.slots = 2;
  m.context_length = 8;
  m.stage = ModelStage{0, 1, true, false};  // The first stage: its steps return hidden states.
  serve(EncodeBeginModel(3, m));
  const std::vector<std::byte> weights(16, std::byte{1});
  serve(EncodeWriteWeights(4, 1, 0, 0, weights, wafer::Crc32c(weights)));
  serve(EncodeCommitModel(5, 1));
  SeqStep seq;
  seq.slot = 1;
  seq.reset = true;
  seq.input_tokens = {3, 5};
  serve(EncodeStep(6, 1, {seq}));  // A StepReply with hidden_out.
  serve(EncodeStep(7, 9, {seq}));  // An Ack refusing an unknown model.
  serve(EncodeReadTelemetry(8));
  serve(EncodeHeartbeat(9, 42));
  serve(EncodeReadErrorLog(10, 0, 16));
  serve(EncodeReadGeometry(11));
  serve(EncodeReadFaults(12, 0));
  serve(EncodeRunDiagnostic(13, BoardDiagTest::kKnownAnswer, 0, 4));
  serve(Frame(24, std::byte{0x5a}));  // Not a frame: an ErrorReply.
  // Every seed is a reply the host accepts, one of each type.
  std::vector<bool> seen(static_cast<size_t>(BoardReplyType::kDiagnostic) + 1);
  for (const std::string& reply : port.out) {
    auto r = DecodeBoardReply(wafer::net::AsBytes(reply));
    FUZZ_CHECK(r.ok());
    seen[static_cast<size_t>(r->type)] = true;
  }
  FUZZ_CHECK(std::count(seen.begin(), seen.end(), false) == 0);
  return port.out;
}

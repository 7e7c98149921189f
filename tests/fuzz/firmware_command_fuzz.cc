// The firmware's decoder of host commands: never crashes; a refused frame always produces an
// error reply with a code.
#include <cstring>
#include <vector>

#include "firmware/link/frame_codec.h"
#include "host/board/board_codec.h"
#include "schemas/board_generated.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static wafer::fw::FrameCodec* codec = new wafer::fw::FrameCodec();
  // The superloop hands the codec 8-byte aligned frames.
  std::vector<uint64_t> aligned(size / 8 + 1);
  if (size > 0) std::memcpy(aligned.data(), data, size);
  wafer::fw::Command cmd;
  wafer::fw::Reply error;
  const bool ok = codec->Decode({reinterpret_cast<const std::byte*>(aligned.data()), size}, cmd, error);
  if (!ok) codec->Encode(error);  // The error reply must encode too.
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  using namespace wafer::host;
  using ::wafer::DType;
  using ::wafer::ModelStage;
  using ::wafer::TensorRole;
  std::vector<std::string> seeds;
  auto add = [&](const auto& frame) {
    seeds.emplace_back(reinterpret_cast<const char*>(frame.data()), frame.size());
  };
  ModelManifest m;
  m.model_id = 1;
  m.name = std::string("m");  // Not = "m": g++ 12 -Wrestrict false positive under ASan.
  m.arch.vocab_size = 64;
  m.arch.hidden_size = 8;
  m.arch.intermediate_size = 16;
  m.arch.num_layers = 1;
  m.arch.num_heads = 2;
  m.arch.num_kv_heads = 1;
  m.arch.head_dim = 4;
  m.arch.max_position = 32;
  m.tensors.push_back(TensorDesc{"model.embed_tokens.weight", TensorRole::kEmbedding, 0,
                                 DType::kF32, {64, 8}, 64 * 8 * 4, {0, 0, 4, 2}});
  m.kv_regions.push_back(KvRegion{0, {0, 2, 4, 1}, 256});
  m.slots = 2;
  m.context_length = 32;
  add(EncodeBeginModel(1, m));
  m.stage = ModelStage{0, 1, false, true};  // A pipeline stage, for mutations of its fields.
  add(EncodeBeginModel(7, m));
  std::vector<std::byte> chunk(64, std::byte{7});
  add(EncodeWriteWeights(2, 1, 0, 0, chunk, 0));
  SeqStep seq;
  seq.slot = 1;
  seq.reset = true;
  seq.input_tokens = {1, 2, 3};
  seq.generate = 2;
  add(EncodeStep(3, 1, {seq}));
  seq.generate = 1;
  seq.hidden_in.assign(seq.input_tokens.size() * m.arch.hidden_size, 0.5f);
  add(EncodeStep(8, 1, {seq}));
  add(EncodeCommitModel(4, 1));
  add(EncodeIdentify(5));
  add(EncodeBoot(6));
  {
    // RunDiagnostic (protocol minor 4), built from the schema directly.
    namespace wb = wafer::wire::board;
    flatbuffers::FlatBufferBuilder fbb;
    const wafer::wire::ProtocolVersion version(1, 4);
    auto run = wb::CreateRunDiagnostic(fbb, wb::DiagTest::kSramAll, 2, 16);
    wb::FinishBoardEnvelopeBuffer(
        fbb, wb::CreateBoardEnvelope(fbb, &version, 0xD1A6, wb::BoardMessage::RunDiagnostic,
                                     run.Union()));
    seeds.emplace_back(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  }
  return seeds;
}

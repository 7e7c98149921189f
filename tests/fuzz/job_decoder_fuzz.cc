// The job socket's decoder: never crashes, and whatever it accepts re-encodes to a buffer that
// decodes to the same message type.
#include "host/wire/job_codec.h"
#include "tests/fuzz/fuzz_target.h"

using namespace wafer::host;

namespace {
// A refusal carries one of the codes the decoder contract lists (host/wire/messages.h), never a
// default Error's UNKNOWN or the INTERNAL an OK-coded Error turns into.
bool IsDecoderCode(wafer::StatusCode code) {
  return code == wafer::StatusCode::kDataLoss || code == wafer::StatusCode::kFailedPrecondition ||
         code == wafer::StatusCode::kUnimplemented || code == wafer::StatusCode::kInvalidArgument;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = DecodeJob({reinterpret_cast<const std::byte*>(data), size});
  if (!m.ok()) {
    FUZZ_CHECK(IsDecoderCode(m.code()));
    FUZZ_CHECK(!m.error().message.empty());
    return 0;
  }
  std::string again = EncodeJob(*m);
  auto m2 = DecodeJob({reinterpret_cast<const std::byte*>(again.data()), again.size()});
  FUZZ_CHECK(m2.ok());
  FUZZ_CHECK(m2->index() == m->index());
  return 0;
}

std::vector<std::string> FuzzSeeds() {
  SubmitJob s;
  s.request_tag = 1;
  s.tenant = "t";
  s.model = "demo";
  s.prompt_text = "hello world";
  s.prompt_tokens = {1, 2, 3};
  s.max_tokens = 8;
  s.stop_tokens = {0};
  JobFinished f;
  f.job_id = 3;
  f.detail = "x";
  CapacityReply c;
  c.models.push_back(ModelCapacity{"demo", 1, 2, 3, true, {ClassCapacity{"batch", 4, 5, true}},
                                  {ReplicaCapacity{{0, 1}, 1, 2, 1, true}}});
  c.boards.push_back(BoardCapacity{1, 2, true, "health incident (evacuate)", 131,
                                   "ECC_UNCORRECTABLE"});
  return {EncodeJob(s), EncodeJob(TokenChunk{1, 2, 3, {4, 5}, "hi"}), EncodeJob(f),
          EncodeJob(CancelJob{4}), EncodeJob(ResumeStream{5, 1}), EncodeJob(c),
          EncodeJob(JobRejected{1, ErrorCode::kQueueFull, "full", 10}),
          EncodeJob(ErrorReply{ErrorCode::kInternal, "e", 2})};
}

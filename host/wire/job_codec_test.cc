#include "host/wire/job_codec.h"

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include "host/wire/admin_codec.h"
#include "schemas/job_generated.h"

namespace wafer::host {
namespace {

std::span<const std::byte> Bytes(const std::string& s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

// Moves a decoded message into `out` and returns true, or returns false with the refusal in
// `err` (its code stands for the wire code DecodeErrorWireCode gives).
template <typename Message>
bool Take(HostResult<Message> decoded, Message* out, Error* err) {
  if (!decoded.ok()) {
    *err = std::move(decoded).error();
    return false;
  }
  *out = std::move(decoded).value();
  return true;
}

TEST(JobCodecTest, SubmitRoundTripsEveryField) {
  SubmitJob s;
  s.request_tag = 77;
  s.idempotency_key = "key-1";
  s.tenant = "acme";
  s.model = "demo";
  s.prompt_tokens = {1, 2, 3};
  s.max_tokens = 16;
  s.sampling = {0.7f, 40, 0.9f, 1234};
  s.priority = 5;
  s.deadline_unix_ms = 1'800'000'000'000;
  s.ttft_target_ms = 50;
  s.stop_tokens = {0};
  s.want_text = false;
  JobMessage out;
  Error err;
  ASSERT_TRUE(Take(DecodeJob(Bytes(EncodeJob(s))), &out, &err)) << err.message;
  const SubmitJob& d = std::get<SubmitJob>(out);
  EXPECT_EQ(d.request_tag, 77u);
  EXPECT_EQ(d.idempotency_key, "key-1");
  EXPECT_EQ(d.tenant, "acme");
  EXPECT_EQ(d.model, "demo");
  EXPECT_EQ(d.prompt_tokens, (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(d.max_tokens, 16u);
  EXPECT_FLOAT_EQ(d.sampling.temperature, 0.7f);
  EXPECT_EQ(d.sampling.top_k, 40u);
  EXPECT_FLOAT_EQ(d.sampling.top_p, 0.9f);
  EXPECT_EQ(d.sampling.seed, 1234u);
  EXPECT_EQ(d.priority, 5);
  EXPECT_EQ(d.deadline_unix_ms, 1'800'000'000'000u);
  EXPECT_EQ(d.ttft_target_ms, 50u);
  EXPECT_EQ(d.stop_tokens, (std::vector<uint32_t>{0}));
  EXPECT_FALSE(d.want_text);
}

TEST(JobCodecTest, StreamMessagesRoundTrip) {
  JobMessage out;
  Error err;
  ASSERT_TRUE(
      Take(DecodeJob(Bytes(EncodeJob(TokenChunk{9, 3, 12, {5, 6}, "hi"}))), &out, &err));
  EXPECT_EQ(std::get<TokenChunk>(out).seq, 3u);
  EXPECT_EQ(std::get<TokenChunk>(out).tokens, (std::vector<uint32_t>{5, 6}));
  EXPECT_EQ(std::get<TokenChunk>(out).text, "hi");
  JobFinished f;
  f.job_id = 9;
  f.reason = FinishReason::kStopToken;
  f.completion_tokens = 14;
  f.timings.ttft_ns = 1000;
  ASSERT_TRUE(Take(DecodeJob(Bytes(EncodeJob(f))), &out, &err));
  EXPECT_EQ(std::get<JobFinished>(out).reason, FinishReason::kStopToken);
  EXPECT_EQ(std::get<JobFinished>(out).completion_tokens, 14u);
  EXPECT_EQ(std::get<JobFinished>(out).timings.ttft_ns, 1000);
  ASSERT_TRUE(Take(DecodeJob(Bytes(EncodeJob(JobRejected{4, ErrorCode::kQueueFull, "full", 250}))),
                   &out, &err));
  EXPECT_EQ(std::get<JobRejected>(out).code, ErrorCode::kQueueFull);
  EXPECT_EQ(std::get<JobRejected>(out).retry_after_ms, 250u);
}

TEST(JobCodecTest, InstanceIdTravelsOnEveryReplyThatNamesAJob) {
  constexpr uint64_t kInstance = 0xfedcba9876543210ull;
  JobMessage out;
  Error err;
  ASSERT_TRUE(
      Take(DecodeJob(Bytes(EncodeJob(JobAccepted{1, 2, 0, false, kInstance}))), &out, &err));
  EXPECT_EQ(std::get<JobAccepted>(out).instance_id, kInstance);
  ASSERT_TRUE(
      Take(DecodeJob(Bytes(EncodeJob(TokenChunk{2, 0, 0, {7}, "", kInstance}))), &out, &err));
  EXPECT_EQ(std::get<TokenChunk>(out).instance_id, kInstance);
  JobFinished f;
  f.instance_id = kInstance;
  ASSERT_TRUE(Take(DecodeJob(Bytes(EncodeJob(f))), &out, &err));
  EXPECT_EQ(std::get<JobFinished>(out).instance_id, kInstance);
  ASSERT_TRUE(
      Take(DecodeJob(Bytes(EncodeJob(CancelResult{2, ErrorCode::kNone, kInstance}))), &out, &err));
  EXPECT_EQ(std::get<CancelResult>(out).instance_id, kInstance);
  const JobStatusReply queued{2, JobState::kQueued, 0, 3, kInstance};
  ASSERT_TRUE(Take(DecodeJob(Bytes(EncodeJob(queued))), &out, &err));
  EXPECT_EQ(std::get<JobStatusReply>(out).instance_id, kInstance);
  ASSERT_TRUE(Take(DecodeJob(Bytes(EncodeJob(ResumeStream{2, 5, kInstance}))), &out, &err));
  EXPECT_EQ(std::get<ResumeStream>(out).from_seq, 5u);
  EXPECT_EQ(std::get<ResumeStream>(out).instance_id, kInstance);
}

TEST(JobCodecTest, EveryTruncationIsRejectedNotCrashed) {
  SubmitJob s;
  s.model = "demo";
  s.prompt_text = "hello world";
  s.max_tokens = 4;
  std::string good = EncodeJob(s);
  for (size_t len = 0; len < good.size(); ++len) {
    JobMessage out;
    Error err;
    if (Take(DecodeJob(Bytes(good.substr(0, len))), &out, &err)) {
      // Only trailing alignment padding may be cut without losing the message.
      ASSERT_GE(len + 8, good.size()) << len;
      EXPECT_EQ(std::get<SubmitJob>(out).prompt_text, "hello world") << len;
    } else {
      EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kMalformedMessage) << len;
    }
  }
}

TEST(JobCodecTest, GarbageAndWrongIdentifierAreTyped) {
  JobMessage out;
  Error err;
  std::string garbage(64, '\x5a');
  EXPECT_FALSE(Take(DecodeJob(Bytes(garbage)), &out, &err));
  EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kMalformedMessage);
  // A valid admin buffer on the job socket: wrong identifier.
  EXPECT_FALSE(Take(DecodeJob(Bytes(EncodeAdmin(StatusQuery{1}))), &out, &err));
  EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kMalformedMessage);
  EXPECT_NE(err.message.find("identifier"), std::string::npos);
}

TEST(JobCodecTest, OtherMajorVersionIsUnsupported) {
  flatbuffers::FlatBufferBuilder b;
  wire::ProtocolVersion v(kProtocolMajor + 1, 0);
  auto body = wire::job::CreateCapacityQuery(b, 5);
  b.Finish(wire::job::CreateJobEnvelope(b, &v, wire::job::JobMessage::CapacityQuery,
                                        body.Union()),
           wire::job::JobEnvelopeIdentifier());
  std::string buf(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  JobMessage out;
  Error err;
  EXPECT_FALSE(Take(DecodeJob(Bytes(buf)), &out, &err));
  EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kUnsupportedVersion);
}

TEST(JobCodecTest, MissingVersionAndEmptyUnionAreRejected) {
  flatbuffers::FlatBufferBuilder b;
  b.Finish(wire::job::CreateJobEnvelope(b, nullptr), wire::job::JobEnvelopeIdentifier());
  std::string no_version(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  JobMessage out;
  Error err;
  EXPECT_FALSE(Take(DecodeJob(Bytes(no_version)), &out, &err));
  EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kMalformedMessage);

  flatbuffers::FlatBufferBuilder b2;
  wire::ProtocolVersion v(kProtocolMajor, 0);
  b2.Finish(wire::job::CreateJobEnvelope(b2, &v), wire::job::JobEnvelopeIdentifier());
  std::string empty(reinterpret_cast<const char*>(b2.GetBufferPointer()), b2.GetSize());
  EXPECT_FALSE(Take(DecodeJob(Bytes(empty)), &out, &err));
  EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kWrongMessageType);
}

TEST(AdminCodecTest, DrainBoardRoundTrips) {
  AdminMessage out;
  Error err;
  ASSERT_TRUE(Take(DecodeAdmin(Bytes(EncodeAdmin(DrainBoard{7, 2, true, false}))), &out, &err))
      << err.message;
  const DrainBoard& d = std::get<DrainBoard>(out);
  EXPECT_EQ(d.request_tag, 7u);
  EXPECT_EQ(d.board, 2u);
  EXPECT_TRUE(d.evacuate);
  EXPECT_FALSE(d.undrain);
}

TEST(AdminCodecTest, StatusReplyRoundTrips) {
  StatusReply r;
  r.request_tag = 3;
  r.version = "0.1.0";
  r.boards.push_back(BoardInfo{0, "inproc://board0", BoardState::kReady, "sim-0", "mini", "1.0",
                               4096, 1 << 20, 1 << 10, 41.5f, 900.0f, 12,
                               "operator (evacuate)", {38.0f, 41.5f}, 7.25, 4321});
  r.queues.push_back(ModelQueue{"demo", {{"interactive", 2}, {"batch", 9}}});
  r.tenants.push_back(TenantActivity{"team-a", 1, 2, 777});
  r.models.push_back(ModelInfo{"demo", "/m", ModelState::kReady, 2, 100, 400, 1024, 64, 3, {2, 0}});
  r.jobs_finished = 10;
  AdminMessage out;
  Error err;
  ASSERT_TRUE(Take(DecodeAdmin(Bytes(EncodeAdmin(r))), &out, &err)) << err.message;
  const StatusReply& d = std::get<StatusReply>(out);
  ASSERT_EQ(d.boards.size(), 1u);
  EXPECT_EQ(d.boards[0].state, BoardState::kReady);
  EXPECT_FLOAT_EQ(d.boards[0].max_temperature_c, 41.5f);
  EXPECT_EQ(d.boards[0].drain, "operator (evacuate)");
  // Protocol minor 5: what waferctl top shows.
  EXPECT_EQ(d.boards[0].region_temp_c, (std::vector<float>{38.0f, 41.5f}));
  EXPECT_DOUBLE_EQ(d.boards[0].busy_s, 7.25);
  EXPECT_EQ(d.boards[0].tokens_generated, 4321u);
  ASSERT_EQ(d.queues.size(), 1u);
  EXPECT_EQ(d.queues[0].model, "demo");
  ASSERT_EQ(d.queues[0].classes.size(), 2u);
  EXPECT_EQ(d.queues[0].classes[1].name, "batch");
  EXPECT_EQ(d.queues[0].classes[1].queued, 9u);
  ASSERT_EQ(d.tenants.size(), 1u);
  EXPECT_EQ(d.tenants[0].tenant, "team-a");
  EXPECT_EQ(d.tenants[0].queued, 1u);
  EXPECT_EQ(d.tenants[0].running, 2u);
  EXPECT_EQ(d.tenants[0].tokens_generated, 777u);
  ASSERT_EQ(d.models.size(), 1u);
  EXPECT_EQ(d.models[0].slots_used, 3u);
  EXPECT_EQ(d.models[0].boards, (std::vector<uint32_t>{2, 0}));
  EXPECT_EQ(d.jobs_finished, 10u);
  LoadModel load{4, "big", "/m/big", 1, 8, 512, {1, 2, 0}};
  ASSERT_TRUE(Take(DecodeAdmin(Bytes(EncodeAdmin(load))), &out, &err)) << err.message;
  EXPECT_EQ(std::get<LoadModel>(out).boards, (std::vector<uint32_t>{1, 2, 0}));
  EXPECT_FALSE(Take(DecodeAdmin(Bytes(EncodeJob(CapacityQuery{1}))), &out, &err));
  EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kMalformedMessage);
}

}  // namespace
}  // namespace wafer::host

namespace wafer::host {
namespace {

// Found by tests/fuzz/job_decoder_fuzz: a union type whose table is absent verifies, and the
// typed accessor then returns null.
TEST(JobCodecTest, UnionTypeWithoutTableIsMalformed) {
  flatbuffers::FlatBufferBuilder b;
  wire::ProtocolVersion v(kProtocolMajor, 0);
  b.Finish(wire::job::CreateJobEnvelope(b, &v, wire::job::JobMessage::ResumeStream),
           wire::job::JobEnvelopeIdentifier());
  std::string buf(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  JobMessage out;
  Error err;
  EXPECT_FALSE(Take(DecodeJob(Bytes(buf)), &out, &err));
  EXPECT_EQ(DecodeErrorWireCode(err.code), ErrorCode::kMalformedMessage);
}

}  // namespace
}  // namespace wafer::host

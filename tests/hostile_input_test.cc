// Hostile input on every socket: each bad message gets a typed error (or, past the transport's
// size limit, the connection is dropped) and the daemon keeps serving.
#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include "common/net/socket.h"
#include "host/wire/admin_codec.h"
#include "host/wire/job_codec.h"
#include "schemas/job_generated.h"
#include "tests/daemon_harness.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;

constexpr int kTimeoutMs = 20000;

class HostileInputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    ASSERT_TRUE(WriteModel(dir_->path() + "/tiny", "tiny", 3));
    harness_ = new DaemonHarness([](DaemonConfig& c) {
      c.max_message_bytes = 64 * 1024;
      c.max_tokens_limit = 4096;
    });
    ASSERT_EQ(harness_->Load(dir_->path() + "/tiny", "tiny", 4), ErrorCode::kNone);
  }
  static void TearDownTestSuite() {
    delete harness_;
    delete dir_;
  }

  // A fresh DEALER connected to `endpoint`. It sends whatever frames a test gives it: the hostile
  // client is the test's, the socket is common/net's.
  std::unique_ptr<net::Socket> Dealer(zmq::context_t& ctx, const std::string& endpoint) {
    auto s = net::Socket::Connect(ctx, net::SocketType::kDealer, endpoint, {});
    EXPECT_TRUE(s.ok()) << s.error().message;
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // Sends raw frames on a fresh DEALER and returns the decoded reply (or fails).
  JobMessage RawJobExchange(const std::vector<std::string>& frames) {
    zmq::context_t ctx(1);
    JobMessage out;
    std::unique_ptr<net::Socket> s = Dealer(ctx, harness_->daemon().job_endpoint());
    if (s == nullptr) return out;
    std::vector<std::span<const std::byte>> parts;
    for (const std::string& f : frames) parts.push_back(net::AsBytes(f));
    EXPECT_EQ(s->Send(parts), net::SendOutcome::kSent);
    Result<net::Message> reply = s->Receive(kTimeoutMs);
    if (!reply.ok()) {
      ADD_FAILURE() << "no reply: " << reply.status().name();
      return out;
    }
    EXPECT_EQ(reply->frame_count(), 1u);
    HostResult<JobMessage> decoded = DecodeJob(reply->frame(0));
    EXPECT_TRUE(decoded.ok()) << decoded.error().message;
    if (decoded.ok()) out = std::move(decoded).value();
    return out;
  }

  ErrorCode ErrorOf(const JobMessage& m) {
    if (auto* e = std::get_if<ErrorReply>(&m)) return e->code;
    if (auto* r = std::get_if<JobRejected>(&m)) return r->code;
    ADD_FAILURE() << "reply is neither ErrorReply nor JobRejected (index " << m.index() << ")";
    return ErrorCode::kNone;
  }

  ErrorCode Rejection(SubmitJob job) {
    auto client = harness_->NewJobClient();
    SubmitOutcome o;
    EXPECT_TRUE(client->Submit(job, &o, kTimeoutMs).ok());
    EXPECT_FALSE(o.accepted);
    EXPECT_FALSE(o.rejection.detail.empty());
    return o.rejection.code;
  }

  static SubmitJob Valid() {
    SubmitJob j;
    j.model = "tiny";
    j.prompt_text = "hello";
    j.max_tokens = 4;
    return j;
  }

  // The daemon still runs a real job to completion.
  void ExpectStillServing() {
    auto client = harness_->NewJobClient();
    SubmitOutcome o;
    JobFinished f;
    ASSERT_TRUE(client->Run(Valid(), [](const TokenChunk&) {}, &o, &f, kTimeoutMs).ok());
    ASSERT_TRUE(o.accepted);
    EXPECT_EQ(f.reason, FinishReason::kLength);
  }

  static TempDir* dir_;
  static DaemonHarness* harness_;
};

TempDir* HostileInputTest::dir_ = nullptr;
DaemonHarness* HostileInputTest::harness_ = nullptr;

TEST_F(HostileInputTest, GarbageBuffer) {
  EXPECT_EQ(ErrorOf(RawJobExchange({std::string(100, '\x07')})), ErrorCode::kMalformedMessage);
  EXPECT_EQ(ErrorOf(RawJobExchange({std::string("abc")})), ErrorCode::kMalformedMessage);
  EXPECT_EQ(ErrorOf(RawJobExchange({std::string()})), ErrorCode::kMalformedMessage);
  ExpectStillServing();
}

TEST_F(HostileInputTest, TruncatedBuffer) {
  std::string good = EncodeJob(Valid());
  for (size_t len : {size_t{9}, good.size() / 2, good.size() - 12}) {
    EXPECT_EQ(ErrorOf(RawJobExchange({good.substr(0, len)})), ErrorCode::kMalformedMessage) << len;
  }
  ExpectStillServing();
}

TEST_F(HostileInputTest, WrongFileIdentifier) {
  EXPECT_EQ(ErrorOf(RawJobExchange({EncodeAdmin(StatusQuery{1})})), ErrorCode::kMalformedMessage);
  std::string flipped = EncodeJob(Valid());
  flipped[4] = 'X';  // The identifier sits at bytes 4..7.
  EXPECT_EQ(ErrorOf(RawJobExchange({flipped})), ErrorCode::kMalformedMessage);
  ExpectStillServing();
}

TEST_F(HostileInputTest, OtherProtocolVersion) {
  flatbuffers::FlatBufferBuilder b;
  wire::ProtocolVersion v(kProtocolMajor + 7, 0);
  auto body = wire::job::CreateCapacityQuery(b, 9);
  b.Finish(wire::job::CreateJobEnvelope(b, &v, wire::job::JobMessage::CapacityQuery, body.Union()),
           wire::job::JobEnvelopeIdentifier());
  std::string buf(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  EXPECT_EQ(ErrorOf(RawJobExchange({buf})), ErrorCode::kUnsupportedVersion);
  ExpectStillServing();
}

TEST_F(HostileInputTest, ExtraFramesAndDaemonOnlyMessages) {
  std::string good = EncodeJob(Valid());
  EXPECT_EQ(ErrorOf(RawJobExchange({good, good})), ErrorCode::kMalformedMessage);
  EXPECT_EQ(ErrorOf(RawJobExchange({EncodeJob(JobAccepted{1, 2, 0, false})})),
            ErrorCode::kWrongMessageType);
  ExpectStillServing();
}

TEST_F(HostileInputTest, OversizedMessageGetsTypedErrorThenTransportDrop) {
  SubmitJob big = Valid();
  big.prompt_text = std::string(100 * 1024, 'a');  // Over max_message_bytes (64 KiB).
  EXPECT_EQ(ErrorOf(RawJobExchange({EncodeJob(big)})), ErrorCode::kMessageTooLarge);
  {
    // Past ZMQ_MAXMSGSIZE (4x the limit) libzmq drops the connection; nothing reaches the loop.
    zmq::context_t ctx(1);
    std::unique_ptr<net::Socket> s = Dealer(ctx, harness_->daemon().job_endpoint());
    ASSERT_NE(s, nullptr);
    std::string huge(1024 * 1024, 'z');
    EXPECT_EQ(s->Send(net::AsBytes(huge)), net::SendOutcome::kSent);
    EXPECT_EQ(s->Receive(500).status().code(), StatusCode::kDeadlineExceeded);
  }
  ExpectStillServing();
}

TEST_F(HostileInputTest, PromptLongerThanContext) {
  SubmitJob j = Valid();
  j.prompt_text.clear();
  j.prompt_tokens.assign(5000, 5);  // The tiny model's context is 1024.
  EXPECT_EQ(Rejection(j), ErrorCode::kPromptTooLong);
  ExpectStillServing();
}

TEST_F(HostileInputTest, UnknownModel) {
  SubmitJob j = Valid();
  j.model = "no-such-model";
  EXPECT_EQ(Rejection(j), ErrorCode::kUnknownModel);
}

TEST_F(HostileInputTest, MaxTokensZeroOrAbsurd) {
  SubmitJob j = Valid();
  j.max_tokens = 0;
  EXPECT_EQ(Rejection(j), ErrorCode::kInvalidMaxTokens);
  j.max_tokens = 4'000'000'000u;
  EXPECT_EQ(Rejection(j), ErrorCode::kInvalidMaxTokens);
  ExpectStillServing();
}

TEST_F(HostileInputTest, ADeadlineAtOrPast2To63MillisecondsMeansFarAway) {
  // Read as a signed number it was negative, and such a job was refused as already late.
  for (uint64_t deadline : {uint64_t{1} << 63, UINT64_MAX}) {
    SubmitJob j = Valid();
    j.deadline_unix_ms = deadline;
    auto client = harness_->NewJobClient();
    SubmitOutcome o;
    JobFinished f;
    ASSERT_TRUE(client->Run(j, [](const TokenChunk&) {}, &o, &f, kTimeoutMs).ok());
    ASSERT_TRUE(o.accepted) << o.rejection.detail;
    EXPECT_EQ(f.reason, FinishReason::kLength);
  }
  SubmitJob past = Valid();
  past.deadline_unix_ms = 1;  // 1970.
  EXPECT_EQ(Rejection(past), ErrorCode::kDeadlineExceeded);
}

TEST_F(HostileInputTest, BadSamplingTokensAndPromptFields) {
  SubmitJob j = Valid();
  j.sampling.temperature = -1;
  EXPECT_EQ(Rejection(j), ErrorCode::kInvalidSampling);
  j = Valid();
  j.sampling.top_p = 0;
  EXPECT_EQ(Rejection(j), ErrorCode::kInvalidSampling);
  j = Valid();
  j.prompt_text.clear();
  j.prompt_tokens = {1, 999999};
  EXPECT_EQ(Rejection(j), ErrorCode::kInvalidArgument);
  j = Valid();
  j.prompt_tokens = {1};
  EXPECT_EQ(Rejection(j), ErrorCode::kInvalidArgument);  // Both text and tokens.
  j = Valid();
  j.prompt_text.clear();
  EXPECT_EQ(Rejection(j), ErrorCode::kInvalidArgument);  // Empty prompt.
  ExpectStillServing();
}

TEST_F(HostileInputTest, AdminSocketGarbageAndWrongProtocol) {
  zmq::context_t ctx(1);
  std::unique_ptr<net::Socket> s = Dealer(ctx, harness_->daemon().admin_endpoint());
  ASSERT_NE(s, nullptr);
  for (const std::string& bad : {std::string(50, '\xff'), EncodeJob(Valid())}) {
    ASSERT_EQ(s->Send(net::AsBytes(bad)), net::SendOutcome::kSent);
    Result<net::Message> reply = s->Receive(kTimeoutMs);
    ASSERT_TRUE(reply.ok()) << reply.status().name();
    ASSERT_EQ(reply->frame_count(), 1u);
    HostResult<AdminMessage> decoded = DecodeAdmin(reply->frame(0));
    ASSERT_TRUE(decoded.ok());
    const AdminMessage& out = *decoded;
    ASSERT_TRUE(std::holds_alternative<ErrorReply>(out));
    EXPECT_EQ(std::get<ErrorReply>(out).code, ErrorCode::kMalformedMessage);
  }
  auto admin = harness_->NewAdminClient();
  StatusReply st;
  EXPECT_TRUE(admin->QueryStatus(&st, kTimeoutMs).ok());
  ExpectStillServing();
}

}  // namespace
}  // namespace wafer::testing

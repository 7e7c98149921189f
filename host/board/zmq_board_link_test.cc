// End-to-end: host BoardLink <-> firmware <-> SimWafer, over inproc:// (embedded board) and over
// tcp:// to a wafer-sim process; plus timeouts and stale replies against a scripted board.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

#include <sodium.h>

#include <algorithm>

#include "board_sim/board_runner.h"
#include "common/crc32c.h"
#include "board_sim/testing/tiny_llama.h"
#include "host/board/board_codec.h"
#include "common/net/router.h"
#include "common/net/curve.h"
#include "host/board/zmq_board_link.h"
#include "host/placement/placement_planner.h"
#include "schemas/board_generated.h"  // For the scripted board only.

namespace wafer::host {
namespace {

namespace st = ::wafer::sim::testing;

// Passes when `result` is OK; otherwise fails with the Error ("CODE: message").
template <typename T>
::testing::AssertionResult Ok(const HostResult<T>& result) {
  if (result.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << result.error().ToString();
}

ModelManifest TinyManifest(uint32_t id, const ModelArch& a,
                           const std::vector<st::TinyTensor>& tensors) {
  ModelManifest m;
  m.model_id = id;
  m.name = "tiny";
  m.arch = a;
  for (const st::TinyTensor& t : tensors) {
    m.tensors.push_back(TensorDesc{t.name, t.role, t.layer, DType::kF32, t.shape,
                                   t.byte_size()});
  }
  m.slots = 4;
  m.context_length = 128;
  // Placed by the host's planner on the mini preset's 128-column fabric (a few rows).
  PlanRequest request;
  request.arch = m.arch;
  request.board = {128, 64, 48 << 10};
  request.slots = m.slots;
  request.context = m.context_length;
  request.dtype_bytes = 4;
  HostResult<Plan> plan = PlanPlacement(request);
  EXPECT_TRUE(plan.ok()) << plan.error().ToString();
  if (plan.ok()) {
    HostStatus applied = ApplyPlan(*plan, 0, &m);
    EXPECT_TRUE(applied.ok()) << applied.error().ToString();
  }
  return m;
}

// The whole lifecycle against whatever board `link` reaches.
void ExerciseBoard(BoardLink& link) {
  HostResult<BoardIdentity> id = link.Identify();
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->preset, "mini");
  EXPECT_EQ(id->state, BoardBootState::kPowerOn);
  EXPECT_EQ(id->fabric_width, 128u);
  EXPECT_GT(id->max_chunk_bytes, 0u);
  EXPECT_TRUE(id->attached_weights);

  const ModelArch arch = st::TinyArch();
  const auto tensors = st::MakeTinyLlama(arch, 11);
  const ModelManifest manifest = TinyManifest(5, arch, tensors);
  HostStatus unbooted = link.BeginModel(manifest);
  ASSERT_EQ(unbooted.code(), StatusCode::kFailedPrecondition);  // Not booted.
  EXPECT_NE(unbooted.error().message.find("boot state"), std::string::npos)
      << unbooted.error().message;
  ASSERT_TRUE(Ok(link.Boot()));
  ASSERT_TRUE(Ok(link.BeginModel(manifest)));
  EXPECT_EQ(link.BeginModel(manifest).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(link.CommitModel(5).code(), StatusCode::kFailedPrecondition);  // Nothing written.
  constexpr size_t kChunk = 1000;
  // Odd tensors go without a copy, from bytes an owner keeps (as a mapped checkpoint would).
  auto owned = std::make_shared<std::vector<std::vector<std::byte>>>();
  for (const st::TinyTensor& t : tensors) owned->emplace_back(t.bytes().begin(), t.bytes().end());
  for (uint32_t i = 0; i < tensors.size(); ++i) {
    auto bytes = i % 2 == 0 ? tensors[i].bytes() : std::span<const std::byte>((*owned)[i]);
    for (size_t off = 0; off < bytes.size(); off += kChunk) {
      const auto chunk = bytes.subspan(off, std::min(kChunk, bytes.size() - off));
      const HostStatus s = i % 2 == 0 ? link.WriteWeights(5, i, off, chunk)
                                      : link.WriteSharedWeights(5, i, off, chunk, owned);
      ASSERT_TRUE(s.ok()) << s.error().message;
    }
  }
  const std::byte extra[8] = {};
  EXPECT_EQ(link.WriteWeights(5, 0, tensors[0].byte_size() - 4, extra).code(),
            StatusCode::kOutOfRange);
  EXPECT_EQ(link.WriteWeights(5, 999, 0, extra).code(), StatusCode::kOutOfRange);
  ASSERT_TRUE(Ok(link.CommitModel(5)));
  // The board has answered every write: the link and libzmq let go of the owner (libzmq's I/O
  // thread may drop its last reference just after the reply arrives, so wait for that).
  for (int i = 0; i < 500 && owned.use_count() > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(owned.use_count(), 1);

  const std::vector<uint32_t> prompt_a = {3, 1, 4, 1, 5, 9, 2, 6};
  const std::vector<uint32_t> prompt_b = {2, 7, 1, 8};
  const auto want_a = st::ReferenceGenerate(arch, tensors, prompt_a, 5, Sampling{}, 0);
  const auto want_b =
      st::ReferenceGenerate(arch, tensors, prompt_b, 5, Sampling{0.8f, 10, 0.9f}, 1234);
  SeqStep a{.slot = 0, .reset = true, .input_tokens = prompt_a, .generate = 5};
  SeqStep b{.slot = 3, .reset = true, .input_tokens = prompt_b, .generate = 5,
            .sampling = {0.8f, 10, 0.9f, 1234}};
  HostResult<StepOutcome> out = link.Step(5, {a, b});
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->results.size(), 2u);
  EXPECT_EQ(out->results[0].tokens, want_a);
  EXPECT_EQ(out->results[1].tokens, want_b);
  EXPECT_TRUE(out->results[0].status.ok());
  EXPECT_EQ(out->results[0].context_tokens, 8u + 4u);
  EXPECT_GT(out->device_time.total_ns, out->device_time.host_io_ns);
  EXPECT_EQ(link.Step(6, {a}).status().code(), StatusCode::kNotFound);

  HostResult<BoardTelemetry> t = link.ReadTelemetry();
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->state, BoardBootState::kReady);
  EXPECT_EQ(t->steps, 1u);
  EXPECT_EQ(t->region_temp_c.size(), 4u);
  EXPECT_GT(t->sram_used_bytes, 0u);
  EXPECT_EQ(t->sram_total_bytes, 128ull * 128 * 48 * 1024);

  ASSERT_TRUE(link.UnloadModel(5).ok());
  EXPECT_EQ(link.UnloadModel(5).code(), StatusCode::kNotFound);
  ASSERT_TRUE(link.Reset().ok());
  HostResult<BoardIdentity> after = link.Identify();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->state, BoardBootState::kPowerOn);
}

TEST(ZmqBoardLinkTest, EmbeddedBoardOverInproc) {
  zmq::context_t context(1);
  sim::BoardOptions options;
  options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
  auto board = sim::StartEmbeddedBoard(context, "inproc://board-e2e", options);
  ASSERT_TRUE(board.ok()) << board.error().ToString();
  auto link = ConnectBoardLink(context, "inproc://board-e2e", 5000, SystemClock::Get());
  ASSERT_TRUE(link.ok());
  ExerciseBoard(**link);

  // Garbage on the same endpoint gets a typed error and the board keeps serving.
  auto raw = net::Socket::Connect(context, net::SocketType::kDealer, "inproc://board-e2e", {});
  ASSERT_TRUE(raw.ok()) << raw.error().message;
  const char junk[] = "definitely not a flatbuffer";
  ASSERT_EQ((*raw)->Send(net::AsBytes(std::string_view(junk, sizeof(junk)))),
            net::SendOutcome::kSent);
  Result<net::Message> msg = (*raw)->Receive(5000);
  ASSERT_TRUE(msg.ok()) << msg.status().name();
  ASSERT_EQ(msg->frame_count(), 1u);
  HostResult<BoardReply> reply = DecodeBoardReply(msg->frame(0));
  ASSERT_TRUE(reply.ok()) << reply.error().message;
  EXPECT_EQ(reply->type, BoardReplyType::kError);
  EXPECT_NE(reply->detail.find("identifier"), std::string::npos);
  EXPECT_TRUE((*link)->Identify().ok());
}

// A frame larger than the firmware's receive buffer gets an error the board cannot tie to a
// command (id 0): the link takes it as the answer to the one command in flight, at once, instead
// of waiting out its timeout and reconnecting. Before, this Step ended UNAVAILABLE after the
// timeout (which the daemon takes as a lost board).
TEST(ZmqBoardLinkTest, AFrameTooLargeForTheBoardIsRefusedNotTimedOut) {
  zmq::context_t context(1);
  sim::BoardOptions options;
  options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
  auto board = sim::StartEmbeddedBoard(context, "inproc://board-big-frame", options);
  ASSERT_TRUE(board.ok()) << board.error().ToString();
  // A 10-minute timeout: a wait for it would outlast the test's own budget.
  auto link = ConnectBoardLink(context, "inproc://board-big-frame", 600000, SystemClock::Get());
  ASSERT_TRUE(link.ok());
  auto identity = (*link)->Identify();
  ASSERT_TRUE(identity.ok());
  EXPECT_GT(identity->max_frame_bytes, 0u);
  EXPECT_GT(identity->max_step_seqs, 0u);
  EXPECT_GT(identity->max_step_tokens, 0u);
  ASSERT_TRUE((*link)->Boot().ok());
  SeqStep seq;
  seq.input_tokens = {1};
  seq.generate = 1;
  seq.stop_tokens.assign(identity->max_frame_bytes / 4 + 1, 7);  // Over the frame by itself.
  HostResult<StepOutcome> step = (*link)->Step(1, {seq});
  ASSERT_FALSE(step.ok());
  EXPECT_NE(step.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(step.error().message.find("larger than"), std::string::npos) << step.error().message;
  EXPECT_TRUE((*link)->Identify().ok());  // Same socket, board still serving.
}

// A board with CURVE keys (a wafer-sim process on ipc:// or tcp://) answers only the host whose
// public key it was given, over an encrypted link; plaintext and other keys get no answer.
TEST(ZmqBoardLinkTest, ACurveBoardAnswersOnlyItsHost) {
  zmq::context_t context(1);
  const net::CurveKeyPair board_keys = net::GenerateCurveKeyPair().value();
  const net::CurveKeyPair host_keys = net::GenerateCurveKeyPair().value();
  const net::CurveKeyPair other_keys = net::GenerateCurveKeyPair().value();
  sim::BoardOptions options;
  options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
  options.curve_secret_key = board_keys.secret_key;
  options.curve_host_public_key = host_keys.public_key;
  const std::string endpoint = "ipc:///tmp/waferd-curve-board-" + std::to_string(getpid());
  auto board = sim::StartEmbeddedBoard(context, endpoint, options);
  ASSERT_TRUE(board.ok()) << board.error().ToString();
  auto link = ConnectBoardLink(context, endpoint, 5000, SystemClock::Get(),
                               {board_keys.public_key, host_keys.public_key, host_keys.secret_key});
  ASSERT_TRUE(link.ok());
  EXPECT_TRUE(Ok((*link)->Identify()));
  // Refused in the handshake: each call waits out its (short) timeout.
  auto plain = ConnectBoardLink(context, endpoint, 300, SystemClock::Get());
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->Identify().status().code(), StatusCode::kUnavailable);
  auto stranger = ConnectBoardLink(
      context, endpoint, 300, SystemClock::Get(),
      {board_keys.public_key, other_keys.public_key, other_keys.secret_key});
  ASSERT_TRUE(stranger.ok());
  EXPECT_EQ((*stranger)->Identify().status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE((*link)->Identify().ok());  // The host's link is unaffected.
}

// Firmware update and the error log over the link: a signed image activates, a badly signed one
// is refused, an image that cannot boot rolls back, and the error log tells the story.
TEST(ZmqBoardLinkTest, FirmwareUpdateAndErrorLogOverInproc) {
  ASSERT_GE(sodium_init(), 0);
  sim::FirmwarePublicKey pk{};
  std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
  crypto_sign_keypair(pk.data(), sk.data());
  auto sign = [&](const std::vector<std::byte>& m) {
    std::vector<std::byte> sig(crypto_sign_BYTES);
    crypto_sign_detached(reinterpret_cast<unsigned char*>(sig.data()), nullptr,
                         reinterpret_cast<const unsigned char*>(m.data()), m.size(), sk.data());
    return sig;
  };
  auto make_image = [](size_t n, std::string_view embed) {
    std::vector<std::byte> image(n);
    for (size_t i = 0; i < n; ++i) image[i] = std::byte((i * 13 + 1) & 0xFF);
    std::memcpy(image.data() + 100, embed.data(), embed.size());
    return image;
  };

  zmq::context_t context(1);
  FakeClock clock(7'000'000'000);
  sim::BoardOptions options;
  options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
  options.clock = &clock;
  options.firmware_public_key = pk;
  // Manufacture signs the factory image with the board's key; the board checks it at boot.
  const auto factory = sim::SimFirmwareFlash::factory_image();
  const auto factory_sig = sign(std::vector<std::byte>(factory.begin(), factory.end()));
  options.factory_image_signature.emplace();
  std::copy(factory_sig.begin(), factory_sig.end(), options.factory_image_signature->begin());
  auto board = sim::StartEmbeddedBoard(context, "inproc://board-fw", options);
  ASSERT_TRUE(board.ok()) << board.error().ToString();
  auto connected = ConnectBoardLink(context, "inproc://board-fw", 5000, SystemClock::Get());
  ASSERT_TRUE(connected.ok());
  BoardLink& link = **connected;
  HostResult<BoardIdentity> id = link.Identify();
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->active_firmware_slot, 0u);
  ASSERT_TRUE(Ok(link.Boot()));

  auto send = [&](uint32_t slot, const std::vector<std::byte>& image,
                  const std::vector<std::byte>& sig) {
    HostStatus s = link.BeginFirmwareImage(slot, image.size(), Crc32c(image), sig);
    if (!s.ok()) return s;
    constexpr size_t kChunk = 100'000;
    for (size_t off = 0; off < image.size(); off += kChunk) {
      const auto chunk = std::span<const std::byte>(image).subspan(
          off, std::min(kChunk, image.size() - off));
      s = link.WriteFirmwareChunk(slot, off, chunk);
      if (!s.ok()) return s;
    }
    return link.CommitFirmwareImage(slot);
  };

  const auto good = make_image(300'000, "waferfw-1.1.0");
  EXPECT_EQ(link.BeginFirmwareImage(0, good.size(), Crc32c(good), sign(good)).code(),
            StatusCode::kFailedPrecondition);  // Slot 0 runs.
  EXPECT_EQ(link.BeginFirmwareImage(1, good.size(), Crc32c(good), {}).code(),
            StatusCode::kInvalidArgument);
  auto bad_sig = sign(good);
  bad_sig[0] ^= std::byte{1};
  HostStatus refused = send(1, good, bad_sig);
  ASSERT_EQ(refused.code(), StatusCode::kPermissionDenied) << refused.error().message;
  EXPECT_NE(refused.error().message.find("signature"), std::string::npos)
      << refused.error().message;
  ASSERT_TRUE(link.BeginFirmwareImage(1, good.size(), Crc32c(good) ^ 1, sign(good)).ok());
  ASSERT_TRUE(Ok(link.WriteFirmwareChunk(1, 0, good)));
  EXPECT_EQ(link.CommitFirmwareImage(1).code(), StatusCode::kDataLoss);
  ASSERT_TRUE(Ok(send(1, good, sign(good))));
  EXPECT_EQ(link.Identify()->active_firmware_slot, 0u);  // Until the reset.
  ASSERT_TRUE(link.Reset().ok());
  ASSERT_TRUE(Ok(link.Boot()));
  EXPECT_EQ(link.Identify()->active_firmware_slot, 1u);

  // An image that cannot boot: slot 0 now (1 runs). The board rolls back on its own.
  const auto broken = make_image(50'000, sim::SimWafer::kFailSelfTestMarker);
  ASSERT_TRUE(Ok(send(0, broken, sign(broken))));
  clock.Advance(5'000);
  ASSERT_TRUE(link.Reset().ok());
  EXPECT_EQ(link.Identify()->active_firmware_slot, 0u);  // On trial.
  ASSERT_TRUE(Ok(link.Boot()));
  EXPECT_EQ(link.Identify()->active_firmware_slot, 1u);  // Rolled back.

  HostResult<BoardErrorLog> log = link.ReadErrorLog(0);
  ASSERT_TRUE(log.ok()) << log.error().message;
  EXPECT_EQ(log->dropped_count, 0u);
  ASSERT_FALSE(log->records.empty());
  EXPECT_EQ(log->records.front().sequence, 1u);
  EXPECT_EQ(log->next_sequence, log->records.back().sequence + 1);
  std::vector<std::string> names;
  for (const BoardLogRecord& r : log->records) names.push_back(BoardLogCodeName(r.code));
  auto count = [&](const char* name) { return std::count(names.begin(), names.end(), name); };
  EXPECT_EQ(count("kImageSignatureInvalid"), 1);
  EXPECT_EQ(count("kImageCrcMismatch"), 1);
  EXPECT_EQ(count("kImageAccepted"), 2);
  EXPECT_EQ(count("kImageActivated"), 2);
  EXPECT_EQ(count("kImageConfirmed"), 1);
  EXPECT_EQ(count("kSelfTestFailed"), 1);
  EXPECT_EQ(count("kImageRolledBack"), 1);
  const BoardLogRecord& rollback =
      log->records[std::find(names.begin(), names.end(), "kImageRolledBack") - names.begin()];
  EXPECT_EQ(rollback.severity, BoardLogSeverity::kError);
  EXPECT_EQ(rollback.args, (std::vector<uint64_t>{0, 1}));  // Failed slot, restored slot.
  EXPECT_EQ(rollback.timestamp_ns, 7'000'005'000);
  EXPECT_EQ(log->records.front().timestamp_ns, 7'000'000'000);
  // Caught up: nothing more, same cursor.
  HostResult<BoardErrorLog> more = link.ReadErrorLog(log->next_sequence);
  ASSERT_TRUE(more.ok());
  EXPECT_TRUE(more->records.empty());
  EXPECT_EQ(more->next_sequence, log->next_sequence);
}

TEST(ZmqBoardLinkTest, BadPresetAndBusyEndpointAreReported) {
  zmq::context_t context(1);
  sim::BoardOptions options;
  options.preset = "nope";
  options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
  EXPECT_EQ(sim::StartEmbeddedBoard(context, "inproc://x", options).status().code(),
            StatusCode::kNotFound);
  options.preset = "mini";
  auto first = sim::StartEmbeddedBoard(context, "inproc://dup", options);
  ASSERT_TRUE(first.ok()) << first.error().ToString();
  auto second = sim::StartEmbeddedBoard(context, "inproc://dup", options);
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  const std::string error = second.ok() ? std::string() : second.error().message;
  EXPECT_NE(error.find("inproc://dup"), std::string::npos);
}

// A scripted board on `endpoint`. For the n-th command (from 1) it asks `answer(n)`; when that
// says yes it replies twice, first with a wrong command_id (a stale reply), then with the right
// one, both IdentifyReplies. Stops and joins on destruction.
class ScriptedBoard {
 public:
  ScriptedBoard(zmq::context_t& context, const std::string& endpoint,
                std::function<bool(int)> answer) {
    auto router = net::Socket::Bind(context, net::SocketType::kRouter, endpoint, {});
    EXPECT_TRUE(router.ok()) << router.error().message;
    if (!router.ok()) return;
    router_ = std::move(router).value();  // Used only by the thread from here on.
    thread_ = std::thread([this, answer = std::move(answer)] { Serve(answer); });
  }
  ~ScriptedBoard() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Serve(const std::function<bool(int)>& answer) {
    int seen = 0;
    while (!stop_) {
      Result<net::RouterReceipt> received = net::ReceiveFromPeer(*router_, 20);
      if (!received.ok()) continue;
      const auto* command = std::get_if<net::PeerMessage>(&*received);
      if (command == nullptr || !answer(++seen)) continue;
      const std::span<const std::byte> payload = command->payload();
      std::vector<uint64_t> aligned(payload.size() / 8 + 1);
      std::memcpy(aligned.data(), payload.data(), payload.size());
      const uint64_t id = wafer::wire::board::GetBoardEnvelope(aligned.data())->command_id();
      for (uint64_t reply_id : {id + 100, id}) {
        flatbuffers::FlatBufferBuilder fbb;
        auto msg = wafer::wire::board::CreateIdentifyReplyDirect(
            fbb, reply_id == id ? "right" : "stale", "mini");
        const wafer::wire::ProtocolVersion v(1, 0);
        fbb.Finish(wafer::wire::board::CreateBoardEnvelope(
                       fbb, &v, reply_id, wafer::wire::board::BoardMessage::IdentifyReply,
                       msg.Union()),
                   "WBRD");
        const auto bytes = std::as_bytes(std::span(fbb.GetBufferPointer(), fbb.GetSize()));
        EXPECT_EQ(net::SendToPeer(*router_, command->peer, bytes), net::SendOutcome::kSent);
      }
    }
  }

  std::unique_ptr<net::Socket> router_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The scripted board ignores the first command, then answers every one (stale reply first).
TEST(ZmqBoardLinkTest, TimeoutReconnectsAndStaleRepliesAreSkipped) {
  zmq::context_t context(1);
  ScriptedBoard board(context, "inproc://scripted", [](int n) { return n > 1; });
  auto link = ConnectBoardLink(context, "inproc://scripted", 150, SystemClock::Get());
  ASSERT_TRUE(link.ok());
  HostResult<BoardIdentity> first = (*link)->Identify();
  ASSERT_EQ(first.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(first.error().message.find("no reply"), std::string::npos) << first.error().message;
  for (int i = 0; i < 3; ++i) {
    HostResult<BoardIdentity> again = (*link)->Identify();
    ASSERT_TRUE(again.ok()) << again.error().message;
    EXPECT_EQ(again->board_id, "right");
  }
}

// The link's deadline is read on the clock it was given. The scripted board moves that clock two
// minutes on before answering the first command: the stale reply then finds the call's 60 s
// deadline passed, and the call ends without waiting for the right answer queued behind it. With
// the clock left alone the same exchange succeeds.
TEST(ZmqBoardLinkTest, DeadlinesAreReadOnTheInjectedClock) {
  zmq::context_t context(1);
  FakeClock clock(1'000'000'000);
  ScriptedBoard board(context, "inproc://clocked", [&clock](int n) {
    if (n == 1) clock.Advance(120'000'000'000);
    return true;
  });
  auto link = ConnectBoardLink(context, "inproc://clocked", 60000, clock);
  ASSERT_TRUE(link.ok());
  HostResult<BoardIdentity> late = (*link)->Identify();
  ASSERT_EQ(late.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(late.error().message.find("no reply"), std::string::npos) << late.error().message;
  EXPECT_NE(late.error().message.find("60000 ms"), std::string::npos) << late.error().message;
  HostResult<BoardIdentity> in_time = (*link)->Identify();
  ASSERT_TRUE(in_time.ok()) << in_time.error().message;
  EXPECT_EQ(in_time->board_id, "right");
}

// Starts wafer-sim on an ephemeral tcp port; returns its pid and endpoint.
pid_t StartWaferSim(std::string& endpoint) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(WAFER_SIM_BINARY, "wafer-sim", "--endpoint", "tcp://127.0.0.1:*", "--preset", "mini",
          "--preset-dir", WAFER_PRESET_DIR_FOR_TEST, "--seed", "3", "--board-id", "proc-0",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  FILE* out = fdopen(fds[0], "r");
  char line[512] = {};
  const bool got = std::fgets(line, sizeof(line), out) != nullptr;
  std::fclose(out);
  const std::string text = got ? line : "";
  const std::string prefix = "wafer-sim: serving ";
  if (text.rfind(prefix, 0) != 0) return pid;
  endpoint = text.substr(prefix.size(), text.find(' ', prefix.size()) - prefix.size());
  return pid;
}

TEST(ZmqBoardLinkTest, WaferSimProcessOverTcp) {
  std::string endpoint;
  const pid_t pid = StartWaferSim(endpoint);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u) << "wafer-sim did not report its endpoint";
  {
    zmq::context_t context(1);
    auto link = ConnectBoardLink(context, endpoint, 5000, SystemClock::Get());
    ASSERT_TRUE(link.ok());
    HostResult<BoardIdentity> id = (*link)->Identify();
    ASSERT_TRUE(id.ok()) << id.error().message;
    EXPECT_EQ(id->board_id, "proc-0");
    ExerciseBoard(**link);
  }
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  // With the process gone, calls time out instead of hanging.
  zmq::context_t context(1);
  auto link = ConnectBoardLink(context, endpoint, 100, SystemClock::Get());
  ASSERT_TRUE(link.ok());
  EXPECT_EQ((*link)->Identify().status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace wafer::host

namespace wafer::host {
namespace {

TEST(ZmqBoardLinkFaultTest, GeometryFaultsCrcRetryHangAndHeartbeat) {
  zmq::context_t context(1);
  FakeClock clock(1'000'000'000);
  sim::BoardOptions options;
  options.preset_dir = WAFER_PRESET_DIR_FOR_TEST;
  options.clock = &clock;
  options.seed = 5;
  auto board = sim::StartEmbeddedBoard(context, "inproc://board-faults", options);
  ASSERT_TRUE(board.ok()) << board.error().ToString();
  auto connected = ConnectBoardLink(context, "inproc://board-faults", 300, SystemClock::Get());
  ASSERT_TRUE(connected.ok());
  BoardLink& link = **connected;

  ASSERT_TRUE(Ok(link.Boot()));
  HostResult<BoardIdentity> id = link.Identify();
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(id->harvested);
  EXPECT_EQ(id->physical_rows, 128u);
  EXPECT_EQ(id->physical_cols, 132u);
  EXPECT_EQ(id->usable_pes, uint64_t{id->fabric_width} * id->fabric_height);
  EXPECT_EQ(id->healthy_pes + id->failed_pes, id->physical_pes);
  HostResult<BoardHarvestMap> geo = link.ReadGeometry();
  ASSERT_TRUE(geo.ok()) << geo.error().message;
  EXPECT_EQ(geo->row_failed.size(), 128u);
  EXPECT_EQ(geo->usable_height, id->fabric_height);

  // A PE stops: the fault report names it.
  ASSERT_TRUE(Ok(link.InjectFault({BoardFaultKind::kPeStop, 0, 2, 3, 0})));
  HostResult<BoardFaults> faults = link.ReadFaults(0);
  ASSERT_TRUE(faults.ok());
  ASSERT_EQ(faults->faults.size(), 1u);
  EXPECT_EQ(faults->faults[0].kind, BoardFaultKind::kPeStop);
  EXPECT_EQ(faults->faults[0].row, 2u);
  EXPECT_EQ(faults->faults[0].pe, 3u);
  EXPECT_TRUE(faults->faults[0].remapped);
  EXPECT_EQ(link.ReadFaults(faults->next_sequence)->faults.size(), 0u);

  // Two frames fail the link CRC: the link resends and the call still succeeds.
  ASSERT_TRUE(link.InjectFault({BoardFaultKind::kLinkCrc, 0, 0, 0, 2}).ok());
  HostResult<BoardTelemetry> t = link.ReadTelemetry();
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->link_crc_errors, 2u);
  EXPECT_EQ(t->runtime_failed_pes, 1u);
  EXPECT_EQ(t->region_clock_hz.size(), 4u);
  EXPECT_GT(t->core_power_w, 0);
  EXPECT_GT(t->coolant_flow_kg_s, 0);

  // An embedded board refuses to crash the process it lives in.
  EXPECT_EQ(link.InjectFault({BoardFaultKind::kProcessCrash, 0, 0, 0, 0}).code(),
            StatusCode::kUnimplemented);

  // The firmware hangs: no heartbeat, nothing answered, until a Reset.
  ASSERT_TRUE(link.Heartbeat().ok());
  ASSERT_TRUE(link.InjectFault({BoardFaultKind::kFirmwareHang, 0, 0, 0, 0}).ok());
  EXPECT_EQ(link.Heartbeat().code(), StatusCode::kUnavailable);
  EXPECT_EQ(link.Identify().status().code(), StatusCode::kUnavailable);
  ASSERT_TRUE(Ok(link.Reset()));
  EXPECT_TRUE(link.Heartbeat().ok());
  ASSERT_TRUE(link.Boot().ok());
  // The stopped PE stays dead across the reset; the self-test finds it.
  EXPECT_EQ(link.Identify()->failed_pes, id->failed_pes + 1);
}

TEST(ZmqBoardLinkFaultTest, WaferSimCrashesOnRequest) {
  std::string endpoint;
  const pid_t pid = StartWaferSim(endpoint);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(endpoint.rfind("tcp://127.0.0.1:", 0), 0u);
  zmq::context_t context(1);
  auto link = ConnectBoardLink(context, endpoint, 1000, SystemClock::Get());
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(Ok((*link)->Heartbeat()));
  EXPECT_EQ((*link)->InjectFault({BoardFaultKind::kProcessCrash, 0, 0, 0, 0}).code(),
            StatusCode::kUnavailable);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), sim::kCrashExitCode);
  EXPECT_EQ((*link)->Heartbeat().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace wafer::host

// BoardLink over a ZeroMQ DEALER speaking board.fbs (see zmq_board_link.h).
#include "host/board/zmq_board_link.h"

#include <functional>

#include "common/crc32c.h"
#include "common/net/socket.h"
#include "host/board/board_codec.h"

namespace wafer::host {
namespace {

constexpr size_t kFirmwareSignatureBytes = 64;  // Ed25519.
constexpr int kMaxCrcRetries = 3;

// Not thread-safe; owned by the thread that drives the board (the socket is that thread's).
class ZmqBoardLink final : public BoardLink {
 public:
  // `context` and `clock` outlive this.
  ZmqBoardLink(zmq::context_t& context, std::string endpoint, int timeout_ms, const Clock& clock,
               const BoardLinkKeys& keys)
      : context_(context), endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms), clock_(clock) {
    options_.curve_server_key = keys.board_public_key;
    options_.curve_public_key = keys.public_key;
    options_.curve_secret_key = keys.secret_key;
  }

  // UNAVAILABLE (the socket's own detail as the message) when the socket cannot be made.
  HostStatus Connect() {
    auto socket = net::Socket::Connect(context_, net::SocketType::kDealer, endpoint_, options_);
    if (!socket.ok()) return Error{StatusCode::kUnavailable, std::move(socket).error().message};
    socket_ = std::move(socket).value();
    return HostOk();
  }

  HostResult<BoardIdentity> Identify() override {
    WAFER_HOST_ASSIGN_OR_RETURN(BoardReply r,
                                Call(EncodeIdentify, "Identify", BoardReplyType::kIdentify));
    attached_weights_ = r.identity.attached_weights;
    return r.identity;
  }

  HostStatus Boot() override {
    WAFER_HOST_ASSIGN_OR_RETURN(BoardReply r, Call(EncodeBoot, "Boot", BoardReplyType::kBoot));
    (void)r;
    return HostOk();
  }

  HostStatus BeginModel(const ModelManifest& manifest) override {
    return Ack([&](uint64_t id) { return EncodeBeginModel(id, manifest); }, "BeginModel");
  }

  HostStatus WriteWeights(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                          std::span<const std::byte> data) override {
    const uint32_t crc = Crc32c(data);
    return Ack(
        [&](uint64_t id) {
          return EncodeWriteWeights(id, model_id, tensor_index, offset, data, crc);
        },
        "WriteWeights");
  }

  // The chunk goes as the message's second frame, straight from `data` (a board that said
  // attached_weights in its last Identify on this connection); otherwise as WriteWeights does.
  HostStatus WriteSharedWeights(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                                std::span<const std::byte> data,
                                const std::shared_ptr<const void>& owner) override {
    if (!attached_weights_ || data.empty() || owner == nullptr) {
      return WriteWeights(model_id, tensor_index, offset, data);
    }
    const uint32_t crc = Crc32c(data);
    const Attachment attachment{data, owner};
    HostResult<BoardReply> r = Call(
        [&](uint64_t id) {
          return EncodeWriteWeightsHeader(id, model_id, tensor_index, offset, data.size(), crc);
        },
        "WriteWeights", BoardReplyType::kAck, &attachment);
    if (!r.ok()) return std::move(r).error();
    return HostOk();
  }

  HostStatus CommitModel(uint32_t model_id) override {
    return Ack([&](uint64_t id) { return EncodeCommitModel(id, model_id); }, "CommitModel");
  }

  HostStatus UnloadModel(uint32_t model_id) override {
    return Ack([&](uint64_t id) { return EncodeUnloadModel(id, model_id); }, "UnloadModel");
  }

  HostResult<StepOutcome> Step(uint32_t model_id, const std::vector<SeqStep>& seqs) override {
    WAFER_HOST_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeStep(id, model_id, seqs); }, "Step",
             BoardReplyType::kStep));
    // A pipeline whose later stage failed answers with no results and says which stage.
    const size_t expected = r.step.pipeline.failed_stage != 0 ? 0 : seqs.size();
    if (r.step.results.size() != expected) {
      return Error{StatusCode::kDataLoss,
                   "Step: reply has " + std::to_string(r.step.results.size()) + " results for " +
                       std::to_string(seqs.size()) + " sequences" +
                       (expected == 0 ? " (a failed pipeline stage answers with none)" : "")};
    }
    return std::move(r.step);
  }

  HostResult<BoardTelemetry> ReadTelemetry() override {
    WAFER_HOST_ASSIGN_OR_RETURN(
        BoardReply r, Call(EncodeReadTelemetry, "ReadTelemetry", BoardReplyType::kTelemetry));
    return std::move(r.telemetry);
  }

  HostStatus Reset() override { return Ack(EncodeReset, "Reset"); }

  HostResult<BoardErrorLog> ReadErrorLog(uint64_t from_sequence) override {
    WAFER_HOST_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeReadErrorLog(id, from_sequence, 0); },
             "ReadErrorLog", BoardReplyType::kErrorLog));
    return std::move(r.error_log);
  }

  HostStatus BeginFirmwareImage(uint32_t slot, uint64_t size, uint32_t crc32c,
                                std::span<const std::byte> signature) override {
    if (signature.size() != kFirmwareSignatureBytes) {
      return Error{StatusCode::kInvalidArgument,
                   "BeginFirmwareImage: signature must be 64 bytes (Ed25519)"};
    }
    return Ack(
        [&](uint64_t id) { return EncodeBeginFirmwareImage(id, slot, size, crc32c, signature); },
        "BeginFirmwareImage");
  }

  HostStatus WriteFirmwareChunk(uint32_t slot, uint64_t offset,
                                std::span<const std::byte> data) override {
    const uint32_t crc = Crc32c(data);
    return Ack(
        [&](uint64_t id) { return EncodeWriteFirmwareChunk(id, slot, offset, data, crc); },
        "WriteFirmwareChunk");
  }

  HostStatus CommitFirmwareImage(uint32_t slot) override {
    return Ack([&](uint64_t id) { return EncodeCommitFirmwareImage(id, slot); },
               "CommitFirmwareImage");
  }

  HostResult<BoardHarvestMap> ReadGeometry() override {
    WAFER_HOST_ASSIGN_OR_RETURN(
        BoardReply r, Call(EncodeReadGeometry, "ReadGeometry", BoardReplyType::kGeometry));
    return std::move(r.geometry);
  }

  HostResult<BoardFirmwareSlots> ReadFirmwareSlots() override {
    WAFER_HOST_ASSIGN_OR_RETURN(BoardReply r, Call(EncodeReadFirmwareSlots, "ReadFirmwareSlots",
                                                   BoardReplyType::kFirmwareSlots));
    return std::move(r.firmware_slots);
  }

  HostStatus RollbackFirmware() override {
    return Ack([&](uint64_t id) { return EncodeRollbackFirmware(id); }, "RollbackFirmware");
  }

  HostResult<BoardFaults> ReadFaults(uint64_t from_sequence) override {
    WAFER_HOST_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeReadFaults(id, from_sequence); }, "ReadFaults",
             BoardReplyType::kFaults));
    return std::move(r.faults);
  }

  HostResult<BoardDiagnostic> RunDiagnostic(BoardDiagTest test, uint32_t first_row,
                                            uint32_t row_count) override {
    WAFER_HOST_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeRunDiagnostic(id, test, first_row, row_count); },
             "RunDiagnostic", BoardReplyType::kDiagnostic));
    return std::move(r.diagnostic);
  }

  HostStatus InjectFault(const BoardFaultInjection& fault) override {
    return Ack([&](uint64_t id) { return EncodeInjectFault(id, fault); }, "InjectFault");
  }

  HostStatus Heartbeat() override {
    const int64_t sent = clock_.NowNanos();
    WAFER_HOST_ASSIGN_OR_RETURN(
        BoardReply r, Call([&](uint64_t id) { return EncodeHeartbeat(id, sent); }, "Heartbeat",
                           BoardReplyType::kHeartbeat));
    if (r.heartbeat_sent_ns != sent) {
      return Error{StatusCode::kDataLoss, "Heartbeat: the board echoed a different timestamp"};
    }
    return HostOk();
  }

  uint64_t link_crc_retries() const { return link_crc_retries_; }

 private:
  using Encoder = std::function<Frame(uint64_t)>;
  // Bytes sent as a command's second frame, without a copy, and what keeps them valid.
  struct Attachment {
    std::span<const std::byte> data;
    std::shared_ptr<const void> owner;
  };

  HostStatus Ack(const Encoder& encode, const char* what) {
    HostResult<BoardReply> r = Call(encode, what, BoardReplyType::kAck);
    if (!r.ok()) return std::move(r).error();
    return HostOk();
  }

  // Sends one command and waits for the reply carrying its command_id. Replies to earlier,
  // abandoned commands are discarded. A board verdict other than OK is returned as the Error's
  // code (its message names the command, the endpoint and the board's detail); OK replies of the
  // wrong type are DATA_LOSS.
  HostResult<BoardReply> Call(const Encoder& encode, const char* what, BoardReplyType want,
                              const Attachment* attachment = nullptr) {
    HostResult<BoardReply> reply = Error{StatusCode::kDataLoss, {}};
    // A frame the board's link CRC rejected was not processed: resending it is safe.
    for (int attempt = 0;; ++attempt) {
      const uint64_t id = ++next_command_id_;
      reply = Exchange(encode(id), id, what, attachment);
      if (!reply.ok() || !reply->frame_crc_failed || attempt == kMaxCrcRetries) break;
      ++link_crc_retries_;
    }
    if (!reply.ok()) return reply;
    BoardReply& r = *reply;
    if (r.type == BoardReplyType::kError || r.type == BoardReplyType::kAck ||
        r.type == BoardReplyType::kBoot) {
      if (!r.status.ok()) {
        return Error{r.status.code(),
                     std::string(what) + " failed on " + endpoint_ + ": " + r.detail};
      }
    }
    if (r.type != want) {
      return Error{StatusCode::kDataLoss,
                   std::string(what) + ": unexpected reply type from " + endpoint_};
    }
    return reply;
  }

  HostResult<BoardReply> Exchange(const Frame& frame, uint64_t id, const char* what,
                                  const Attachment* attachment) {
    if (socket_ == nullptr) WAFER_HOST_RETURN_IF_ERROR(Connect());
    const int64_t deadline = clock_.NowNanos() + int64_t{timeout_ms_} * 1000000;
    const std::span<const std::byte> header(frame.data(), frame.size());
    const net::SendOutcome sent =
        attachment == nullptr
            ? socket_->Send(header)
            : socket_->SendWithAttachment(std::span<const std::span<const std::byte>>(&header, 1),
                                          attachment->data, attachment->owner);
    switch (sent) {
      case net::SendOutcome::kSent:
        break;
      case net::SendOutcome::kPeerBacklog:
        return TimedOut(what, "send would block");
      case net::SendOutcome::kPeerGone:
      case net::SendOutcome::kError:
        return Reconnected(
            Error{StatusCode::kUnavailable, std::string(what) + ": send failed on " + endpoint_});
    }
    for (;;) {
      const int64_t left_ms = (deadline - clock_.NowNanos()) / 1000000;
      if (left_ms <= 0) return TimedOut(what, "no reply");
      Result<net::Message> msg = socket_->Receive(static_cast<int>(left_ms));
      if (msg.status().code() == StatusCode::kDeadlineExceeded) return TimedOut(what, "no reply");
      if (!msg.ok()) {
        return Reconnected(Error{StatusCode::kUnavailable, std::string(what) +
                                                               ": receive failed on " + endpoint_ +
                                                               " (" + msg.status().name() + ")"});
      }
      if (msg->frame_count() != 1) {
        return Error{StatusCode::kDataLoss, std::string(what) + ": reply of " +
                                                std::to_string(msg->frame_count()) +
                                                " frames from " + endpoint_};
      }
      HostResult<BoardReply> reply = DecodeBoardReply(msg->frame(0));
      if (!reply.ok()) {
        return std::move(reply).error().WithContext(std::string(what) + ": bad reply from " +
                                                    endpoint_);
      }
      // A late reply to an abandoned command is skipped. An error with id 0 is the board's
      // answer to a frame it could not read its id from (a link-CRC failure, a frame larger
      // than its receive buffer, one that failed verification): one command is in flight on
      // this socket (a timed-out one's socket was replaced), so it answers this one, at once.
      const bool unreadable_frame =
          reply->type == BoardReplyType::kError && reply->command_id == 0;
      if (reply->command_id != id && !unreadable_frame) continue;
      return reply;
    }
  }

  // UNAVAILABLE: drops the socket (and any reply still in flight to it) and connects a fresh
  // one. The message names the call and the wait, then why the reconnect failed if it did.
  Error TimedOut(const char* what, const char* why) {
    Error timeout{StatusCode::kUnavailable, std::string(what) + ": " + why + " from " + endpoint_ +
                                                " within " + std::to_string(timeout_ms_) + " ms"};
    HostStatus reconnected = Reconnect();
    if (!reconnected.ok()) timeout.message += "; " + reconnected.error().message;
    return timeout;
  }

  // `failure` after a reconnect; when the reconnect itself fails, its Error replaces `failure`
  // (what the link has always reported: the connect's detail, UNAVAILABLE either way).
  Error Reconnected(Error failure) {
    HostStatus reconnected = Reconnect();
    if (!reconnected.ok()) return std::move(reconnected).error();
    return failure;
  }

  HostStatus Reconnect() {
    attached_weights_ = false;  // Until the board on the new connection says so again.
    socket_.reset();
    return Connect();
  }

  zmq::context_t& context_;
  std::string endpoint_;
  int timeout_ms_;
  const Clock& clock_;
  net::SocketOptions options_;  // CURVE keys, when the link has them.
  std::unique_ptr<net::Socket> socket_;  // Null only when the last Connect() failed.
  uint64_t next_command_id_ = 0;
  uint64_t link_crc_retries_ = 0;
  bool attached_weights_ = false;  // The last Identify's answer on this connection.
};

}  // namespace

HostResult<std::unique_ptr<BoardLink>> ConnectBoardLink(zmq::context_t& context,
                                                        const std::string& endpoint,
                                                        int timeout_ms, const Clock& clock,
                                                        const BoardLinkKeys& keys) {
  if (timeout_ms <= 0) {
    return Error{StatusCode::kInvalidArgument,
                 "board link to " + endpoint + ": timeout_ms must be positive"};
  }
  auto link = std::make_unique<ZmqBoardLink>(context, endpoint, timeout_ms, clock, keys);
  WAFER_HOST_RETURN_IF_ERROR(link->Connect());
  return std::unique_ptr<BoardLink>(std::move(link));
}

}  // namespace wafer::host

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

  Status Connect() {
    std::string detail;
    auto socket =
        net::Socket::Connect(context_, net::SocketType::kDealer, endpoint_, options_, &detail);
    if (!socket.ok()) {
      last_error_ = detail;
      return Unavailable();
    }
    socket_ = std::move(socket).value();
    return OkStatus();
  }

  Result<BoardIdentity> Identify() override {
    WAFER_ASSIGN_OR_RETURN(BoardReply r, Call(EncodeIdentify, "Identify", BoardReplyType::kIdentify));
    attached_weights_ = r.identity.attached_weights;
    return r.identity;
  }

  Status Boot() override {
    WAFER_ASSIGN_OR_RETURN(BoardReply r, Call(EncodeBoot, "Boot", BoardReplyType::kBoot));
    (void)r;
    return OkStatus();
  }

  Status BeginModel(const ModelManifest& manifest) override {
    return Ack([&](uint64_t id) { return EncodeBeginModel(id, manifest); }, "BeginModel");
  }

  Status WriteWeights(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
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
  Status WriteSharedWeights(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                            std::span<const std::byte> data,
                            const std::shared_ptr<const void>& owner) override {
    if (!attached_weights_ || data.empty() || owner == nullptr) {
      return WriteWeights(model_id, tensor_index, offset, data);
    }
    const uint32_t crc = Crc32c(data);
    const Attachment attachment{data, owner};
    Result<BoardReply> r = Call(
        [&](uint64_t id) {
          return EncodeWriteWeightsHeader(id, model_id, tensor_index, offset, data.size(), crc);
        },
        "WriteWeights", BoardReplyType::kAck, &attachment);
    return r.ok() ? OkStatus() : r.status();
  }

  Status CommitModel(uint32_t model_id) override {
    return Ack([&](uint64_t id) { return EncodeCommitModel(id, model_id); }, "CommitModel");
  }

  Status UnloadModel(uint32_t model_id) override {
    return Ack([&](uint64_t id) { return EncodeUnloadModel(id, model_id); }, "UnloadModel");
  }

  Result<StepOutcome> Step(uint32_t model_id, const std::vector<SeqStep>& seqs) override {
    WAFER_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeStep(id, model_id, seqs); }, "Step",
             BoardReplyType::kStep));
    // A pipeline whose later stage failed answers with no results and says which stage.
    const size_t expected = r.step.pipeline.failed_stage != 0 ? 0 : seqs.size();
    if (r.step.results.size() != expected) {
      last_error_ = "Step: reply has " + std::to_string(r.step.results.size()) +
                    " results for " + std::to_string(seqs.size()) + " sequences" +
                    (expected == 0 ? " (a failed pipeline stage answers with none)" : "");
      return DataLoss();
    }
    return std::move(r.step);
  }

  Result<BoardTelemetry> ReadTelemetry() override {
    WAFER_ASSIGN_OR_RETURN(BoardReply r,
                           Call(EncodeReadTelemetry, "ReadTelemetry", BoardReplyType::kTelemetry));
    return std::move(r.telemetry);
  }

  Status Reset() override { return Ack(EncodeReset, "Reset"); }

  Result<BoardErrorLog> ReadErrorLog(uint64_t from_sequence) override {
    WAFER_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeReadErrorLog(id, from_sequence, 0); },
             "ReadErrorLog", BoardReplyType::kErrorLog));
    return std::move(r.error_log);
  }

  Status BeginFirmwareImage(uint32_t slot, uint64_t size, uint32_t crc32c,
                            std::span<const std::byte> signature) override {
    if (signature.size() != kFirmwareSignatureBytes) {
      last_error_ = "BeginFirmwareImage: signature must be 64 bytes (Ed25519)";
      return InvalidArgument();
    }
    return Ack(
        [&](uint64_t id) { return EncodeBeginFirmwareImage(id, slot, size, crc32c, signature); },
        "BeginFirmwareImage");
  }

  Status WriteFirmwareChunk(uint32_t slot, uint64_t offset,
                            std::span<const std::byte> data) override {
    const uint32_t crc = Crc32c(data);
    return Ack(
        [&](uint64_t id) { return EncodeWriteFirmwareChunk(id, slot, offset, data, crc); },
        "WriteFirmwareChunk");
  }

  Status CommitFirmwareImage(uint32_t slot) override {
    return Ack([&](uint64_t id) { return EncodeCommitFirmwareImage(id, slot); },
               "CommitFirmwareImage");
  }

  Result<BoardHarvestMap> ReadGeometry() override {
    WAFER_ASSIGN_OR_RETURN(BoardReply r,
                           Call(EncodeReadGeometry, "ReadGeometry", BoardReplyType::kGeometry));
    return std::move(r.geometry);
  }

  Result<BoardFirmwareSlots> ReadFirmwareSlots() override {
    WAFER_ASSIGN_OR_RETURN(BoardReply r, Call(EncodeReadFirmwareSlots, "ReadFirmwareSlots",
                                              BoardReplyType::kFirmwareSlots));
    return std::move(r.firmware_slots);
  }

  Status RollbackFirmware() override {
    return Ack([&](uint64_t id) { return EncodeRollbackFirmware(id); }, "RollbackFirmware");
  }

  Result<BoardFaults> ReadFaults(uint64_t from_sequence) override {
    WAFER_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeReadFaults(id, from_sequence); }, "ReadFaults",
             BoardReplyType::kFaults));
    return std::move(r.faults);
  }

  Result<BoardDiagnostic> RunDiagnostic(BoardDiagTest test, uint32_t first_row,
                                        uint32_t row_count) override {
    WAFER_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeRunDiagnostic(id, test, first_row, row_count); },
             "RunDiagnostic", BoardReplyType::kDiagnostic));
    return std::move(r.diagnostic);
  }

  Status InjectFault(const BoardFaultInjection& fault) override {
    return Ack([&](uint64_t id) { return EncodeInjectFault(id, fault); }, "InjectFault");
  }

  Status Heartbeat() override {
    const int64_t sent = clock_.NowNanos();
    WAFER_ASSIGN_OR_RETURN(
        BoardReply r, Call([&](uint64_t id) { return EncodeHeartbeat(id, sent); }, "Heartbeat",
                           BoardReplyType::kHeartbeat));
    if (r.heartbeat_sent_ns != sent) {
      last_error_ = "Heartbeat: the board echoed a different timestamp";
      return DataLoss();
    }
    return OkStatus();
  }

  uint64_t link_crc_retries() const { return link_crc_retries_; }

  const std::string& last_error() const override { return last_error_; }

 private:
  using Encoder = std::function<Frame(uint64_t)>;
  // Bytes sent as a command's second frame, without a copy, and what keeps them valid.
  struct Attachment {
    std::span<const std::byte> data;
    std::shared_ptr<const void> owner;
  };

  Status Ack(const Encoder& encode, const char* what) {
    Result<BoardReply> r = Call(encode, what, BoardReplyType::kAck);
    return r.ok() ? OkStatus() : r.status();
  }

  // Sends one command and waits for the reply carrying its command_id. Replies to earlier,
  // abandoned commands are discarded. A board verdict other than OK is returned as the Status
  // (with last_error() set); OK replies of the wrong type are DATA_LOSS.
  Result<BoardReply> Call(const Encoder& encode, const char* what, BoardReplyType want,
                          const Attachment* attachment = nullptr) {
    Result<BoardReply> reply = DataLoss();
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
        last_error_ = std::string(what) + " failed on " + endpoint_ + ": " + r.detail;
        return r.status;
      }
    }
    if (r.type != want) {
      last_error_ = std::string(what) + ": unexpected reply type from " + endpoint_;
      return DataLoss();
    }
    return reply;
  }

  Result<BoardReply> Exchange(const Frame& frame, uint64_t id, const char* what,
                              const Attachment* attachment) {
    if (socket_ == nullptr && !Connect().ok()) return Unavailable();
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
        last_error_ = std::string(what) + ": send failed on " + endpoint_;
        Reconnect();
        return Unavailable();
    }
    for (;;) {
      const int64_t left_ms = (deadline - clock_.NowNanos()) / 1000000;
      if (left_ms <= 0) return TimedOut(what, "no reply");
      Result<net::Message> msg = socket_->Receive(static_cast<int>(left_ms));
      if (msg.status().code() == StatusCode::kDeadlineExceeded) return TimedOut(what, "no reply");
      if (!msg.ok()) {
        last_error_ = std::string(what) + ": receive failed on " + endpoint_ + " (" +
                      msg.status().name() + ")";
        Reconnect();
        return Unavailable();
      }
      if (msg->frame_count() != 1) {
        last_error_ = std::string(what) + ": reply of " + std::to_string(msg->frame_count()) +
                      " frames from " + endpoint_;
        return DataLoss();
      }
      std::string error;
      Result<BoardReply> reply = DecodeBoardReply(msg->frame(0), &error);
      if (!reply.ok()) {
        last_error_ = std::string(what) + ": bad reply from " + endpoint_ + ": " + error;
        return reply.status();
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

  // Drops the socket (and any reply still in flight to it) and connects a fresh one.
  Status TimedOut(const char* what, const char* why) {
    last_error_ = std::string(what) + ": " + why + " from " + endpoint_ + " within " +
                  std::to_string(timeout_ms_) + " ms";
    const std::string keep = last_error_;
    Reconnect();
    if (last_error_ != keep) last_error_ = keep + "; " + last_error_;
    return Unavailable();
  }

  void Reconnect() {
    attached_weights_ = false;  // Until the board on the new connection says so again.
    socket_.reset();
    Connect().IgnoreError();
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
  std::string last_error_;
};

}  // namespace

Result<std::unique_ptr<BoardLink>> ConnectBoardLink(zmq::context_t& context,
                                                    const std::string& endpoint, int timeout_ms,
                                                    const Clock& clock,
                                                    const BoardLinkKeys& keys) {
  if (timeout_ms <= 0) return InvalidArgument();
  auto link = std::make_unique<ZmqBoardLink>(context, endpoint, timeout_ms, clock, keys);
  WAFER_RETURN_IF_ERROR(link->Connect());
  return std::unique_ptr<BoardLink>(std::move(link));
}

}  // namespace wafer::host

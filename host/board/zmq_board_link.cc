// BoardLink over a ZeroMQ DEALER speaking board.fbs (see board_link.h).
#include <chrono>
#include <functional>

#include "common/clock.h"
#include "common/crc32c.h"
#include "host/board/board_codec.h"
#include "host/board/board_link.h"

namespace wafer::host {
namespace {

constexpr size_t kFirmwareSignatureBytes = 64;  // Ed25519.
constexpr int kMaxCrcRetries = 3;

// Not thread-safe; owned by the thread that drives the board (the socket is that thread's).
class ZmqBoardLink final : public BoardLink {
 public:
  // `context` outlives this.
  ZmqBoardLink(zmq::context_t& context, std::string endpoint, int timeout_ms)
      : context_(context), endpoint_(std::move(endpoint)), timeout_ms_(timeout_ms) {}

  Status Connect() {
    try {
      zmq::socket_t socket(context_, zmq::socket_type::dealer);
      socket.set(zmq::sockopt::linger, 0);
      socket.connect(endpoint_);
      socket_ = std::move(socket);
      return OkStatus();
    } catch (const zmq::error_t& e) {
      last_error_ = "cannot connect to " + endpoint_ + ": " + e.what();
      return Unavailable();
    }
  }

  Result<BoardIdentity> Identify() override {
    WAFER_ASSIGN_OR_RETURN(BoardReply r, Call(EncodeIdentify, "Identify", BoardReplyType::kIdentify));
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
    if (r.step.results.size() != seqs.size()) {
      last_error_ = "Step: reply has " + std::to_string(r.step.results.size()) +
                    " results for " + std::to_string(seqs.size()) + " sequences";
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

  Result<BoardFaults> ReadFaults(uint64_t from_sequence) override {
    WAFER_ASSIGN_OR_RETURN(
        BoardReply r,
        Call([&](uint64_t id) { return EncodeReadFaults(id, from_sequence); }, "ReadFaults",
             BoardReplyType::kFaults));
    return std::move(r.faults);
  }

  Status InjectFault(const BoardFaultInjection& fault) override {
    return Ack([&](uint64_t id) { return EncodeInjectFault(id, fault); }, "InjectFault");
  }

  Status Heartbeat() override {
    const int64_t sent = SystemClock::Get().NowNanos();
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

  Status Ack(const Encoder& encode, const char* what) {
    Result<BoardReply> r = Call(encode, what, BoardReplyType::kAck);
    return r.ok() ? OkStatus() : r.status();
  }

  // Sends one command and waits for the reply carrying its command_id. Replies to earlier,
  // abandoned commands are discarded. A board verdict other than OK is returned as the Status
  // (with last_error() set); OK replies of the wrong type are DATA_LOSS.
  Result<BoardReply> Call(const Encoder& encode, const char* what, BoardReplyType want) {
    Result<BoardReply> reply = DataLoss();
    // A frame the board's link CRC rejected was not processed: resending it is safe.
    for (int attempt = 0;; ++attempt) {
      const uint64_t id = ++next_command_id_;
      reply = Exchange(encode(id), id, what);
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

  Result<BoardReply> Exchange(const Frame& frame, uint64_t id, const char* what) {
    if (!socket_.handle() && !Connect().ok()) return Unavailable();
    const int64_t deadline = SystemClock::Get().NowNanos() + int64_t{timeout_ms_} * 1000000;
    try {
      if (!socket_.send(zmq::const_buffer(frame.data(), frame.size()),
                        zmq::send_flags::dontwait)) {
        return TimedOut(what, "send would block");
      }
      for (;;) {
        const int64_t left_ms = (deadline - SystemClock::Get().NowNanos()) / 1000000;
        if (left_ms <= 0) return TimedOut(what, "no reply");
        zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
        if (zmq::poll(&item, 1, std::chrono::milliseconds(left_ms)) == 0) {
          return TimedOut(what, "no reply");
        }
        zmq::message_t msg;
        if (!socket_.recv(msg, zmq::recv_flags::dontwait)) continue;
        std::string error;
        Result<BoardReply> reply = DecodeBoardReply(
            std::span(static_cast<const std::byte*>(msg.data()), msg.size()), &error);
        if (!reply.ok()) {
          last_error_ = std::string(what) + ": bad reply from " + endpoint_ + ": " + error;
          return reply.status();
        }
        // A late reply to an abandoned command. A link-CRC rejection carries id 0 (the board
        // could not trust the frame's id); with one command in flight it answers this one.
        if (reply->command_id != id && !(reply->frame_crc_failed && reply->command_id == 0)) {
          continue;
        }
        return reply;
      }
    } catch (const zmq::error_t& e) {
      last_error_ = std::string(what) + ": " + e.what();
      Reconnect();
      return Unavailable();
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
    try {
      socket_.close();
    } catch (const zmq::error_t&) {
    }
    Connect().IgnoreError();
  }

  zmq::context_t& context_;
  std::string endpoint_;
  int timeout_ms_;
  zmq::socket_t socket_;
  uint64_t next_command_id_ = 0;
  uint64_t link_crc_retries_ = 0;
  std::string last_error_;
};

}  // namespace

Result<std::unique_ptr<BoardLink>> ConnectBoardLink(zmq::context_t& context,
                                                    const std::string& endpoint, int timeout_ms) {
  if (timeout_ms <= 0) return InvalidArgument();
  auto link = std::make_unique<ZmqBoardLink>(context, endpoint, timeout_ms);
  WAFER_RETURN_IF_ERROR(link->Connect());
  return std::unique_ptr<BoardLink>(std::move(link));
}

}  // namespace wafer::host

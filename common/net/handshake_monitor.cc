#include "common/net/handshake_monitor.h"

#include <atomic>
#include <cstdint>
#include <cstring>

namespace wafer::net {
namespace {

std::string Describe(uint16_t event, uint32_t value, const std::string& endpoint) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
      return "plaintext or another security mechanism on " + endpoint;
    }
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) {
      return "a CURVE handshake that did not verify (a client with another server key?) on " +
             endpoint;
    }
    return "a malformed handshake (ZMTP error " + std::to_string(value) + ") on " + endpoint;
  }
  // libzmq reports a plaintext client on a CURVE socket this way too when the client hangs up
  // before the server has read its greeting.
  return "a handshake the client broke off (" +
         std::string(zmq_strerror(static_cast<int>(value))) + "; plaintext?) on " + endpoint;
}

}  // namespace

HostResult<std::unique_ptr<HandshakeMonitor>> HandshakeMonitor::Start(zmq::context_t& context,
                                                                     Socket& watched) {
  static std::atomic<uint64_t> next{0};
  const std::string endpoint = "inproc://wafer-handshake-monitor-" + std::to_string(next++);
  if (zmq_socket_monitor(watched.handle(), endpoint.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0) {
    return Error{StatusCode::kUnavailable, std::string("cannot monitor the socket's handshakes: ") +
                                               zmq_strerror(zmq_errno())};
  }
  HostResult<std::unique_ptr<Socket>> events =
      Socket::Connect(context, SocketType::kPair, endpoint, {});
  if (!events.ok()) {
    zmq_socket_monitor(watched.handle(), nullptr, 0);
    return std::move(events).error();
  }
  return std::unique_ptr<HandshakeMonitor>(
      new HandshakeMonitor(watched, std::move(events).value()));
}

HandshakeMonitor::HandshakeMonitor(Socket& watched, std::unique_ptr<Socket> events)
    : watched_(watched), events_(std::move(events)) {}

HandshakeMonitor::~HandshakeMonitor() {
  zmq_socket_monitor(watched_.handle(), nullptr, 0);
  events_.reset();
}

void HandshakeMonitor::Drain(const std::function<void(const std::string&)>& on_failure) {
  while (true) {
    Result<Message> m = events_->Receive(0);
    if (!m.ok()) return;
    // libzmq's event: [uint16 event, uint32 value] then [endpoint].
    if (m->frame_count() < 2 || m->frame(0).size() < 6) continue;
    uint16_t event;
    uint32_t value;
    std::memcpy(&event, m->frame(0).data(), sizeof(event));
    std::memcpy(&value, m->frame(0).data() + 2, sizeof(value));
    const std::span<const std::byte> where = m->frame(1);
    on_failure(Describe(event, value,
                        std::string(reinterpret_cast<const char*>(where.data()), where.size())));
  }
}

}  // namespace wafer::net

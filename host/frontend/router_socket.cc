#include "host/frontend/router_socket.h"

#include <chrono>
#include <thread>

namespace wafer::host {

RouterSocket::RouterSocket(zmq::context_t& context, const char* name, const char* zap_domain,
                           const AccessPolicy& access, telemetry::DaemonMetrics& metrics)
    : context_(context),
      name_(name),
      zap_domain_(zap_domain),
      access_(access),
      metrics_(metrics) {}

HostStatus RouterSocket::Bind(const std::string& endpoint, const DaemonConfig& config,
                              const std::string& curve_secret_key) {
  net::SocketOptions options;
  options.send_high_water_mark = static_cast<int>(config.send_high_water_mark);
  options.receive_high_water_mark = static_cast<int>(config.send_high_water_mark);
  // libzmq drops the connection of a peer that sends more than this; below it, an oversized
  // message gets a typed MESSAGE_TOO_LARGE reply from the front end.
  options.max_message_bytes = static_cast<int64_t>(config.max_message_bytes) * 4;
  options.router_mandatory = true;
  options.curve_secret_key = curve_secret_key;
  if (!curve_secret_key.empty()) options.zap_domain = zap_domain_;
  HostResult<std::unique_ptr<net::Socket>> socket =
      net::Socket::Bind(context_, net::SocketType::kRouter, endpoint, options);
  if (!socket.ok()) {
    return Error{StatusCode::kUnavailable,
                 std::string("cannot bind the ") + name_ + " endpoint: " + socket.error().message};
  }
  socket_ = std::move(socket).value();
  // Set by the first Bind only: a Rebind binds the same (resolved) endpoint, and other threads
  // read endpoint() while the loop rebinds (TSan caught the rewrite racing a client's copy).
  if (endpoint_.empty()) endpoint_ = socket_->last_endpoint();
  if (!curve_secret_key.empty()) {
    // Plaintext clients never reach the ZAP handler: only a monitor sees them turned away.
    auto monitor = net::HandshakeMonitor::Start(context_, *socket_);
    if (!monitor.ok()) return std::move(monitor).error();
    monitor_ = std::move(monitor).value();
  }
  return HostOk();
}

HostStatus RouterSocket::Rebind(const DaemonConfig& config, const std::string& new_secret_key,
                                const std::string& old_secret_key) {
  const std::string endpoint = endpoint_;
  monitor_.reset();
  socket_.reset();
  // libzmq closes the listener on its I/O thread, a moment after the socket: until then the
  // endpoint is taken. A key rotation is rare; the loop may wait a little for it. Returns the
  // last attempt's result.
  auto bind = [&](const std::string& key) {
    HostStatus bound = HostOk();
    for (int attempt = 0; attempt < 200; ++attempt) {
      bound = Bind(endpoint, config, key);
      if (bound.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return bound;
  };
  HostStatus bound = bind(new_secret_key);
  if (bound.ok()) return bound;
  Error error{StatusCode::kUnavailable, std::move(bound).error().message};
  if (HostStatus again = bind(old_secret_key); !again.ok()) {
    error.message += "; the old key's socket could not be bound again either (" +
                     again.error().message + "): the " + name_ +
                     " socket is closed until waferd restarts";
  }
  return error;
}

void RouterSocket::Pump(
    int burst,
    const std::function<void(const std::string&, const ClientKeyConfig*,
                             std::span<const std::byte>)>& on_message,
    const std::function<void(const std::string&, const ErrorReply&)>& on_refused) {
  if (!socket_) return;  // Closed by a failed Rebind.
  // A failed receive (the context is closing) ends this turn; the poll loop sees the stop.
  net::PumpRouter(
      *socket_, burst,
      [&](const net::PeerMessage& m) {
        bool refused = false;
        const std::optional<ClientKeyConfig> key = access_.Caller(zap_domain_, m.user_id, &refused);
        if (refused) {
          on_refused(m.peer, ErrorReply{ErrorCode::kPermissionDenied,
                                        "key '" + m.user_id + "' is no longer allowed", 0});
          return;
        }
        on_message(m.peer, key ? &*key : nullptr, m.payload());
      },
      [&](const net::MalformedMessage& m) {
        on_refused(m.peer, ErrorReply{ErrorCode::kMalformedMessage,
                                      "expected one payload frame, got " +
                                          std::to_string(m.payload_frames),
                                      0});
      })
      .status()
      .IgnoreError();
}

void RouterSocket::DrainRefusedHandshakes(AuditLog& audit) {
  if (!monitor_) return;
  monitor_->Drain([&](const std::string& what) {
    audit.RecordRepeatable("auth_refused", "-", std::string(name_) + " socket",
                           "refused: " + what);
  });
}

bool RouterSocket::Send(const std::string& peer, std::span<const std::byte> payload) {
  if (!socket_) {
    metrics_.Dropped(name_, "socket_closed").Increment();
    return false;
  }
  const net::SendOutcome outcome = net::SendToPeer(*socket_, peer, payload);
  // kPeerGone: the peer disconnected. Its job keeps running; ResumeStream replays it.
  if (outcome != net::SendOutcome::kSent) {
    metrics_.Dropped(name_, net::SendOutcomeName(outcome)).Increment();
    return false;
  }
  return true;
}

}  // namespace wafer::host

// The daemon's two client-facing sockets (jobs, admin): a common/net ROUTER configured from
// waferd.yaml, pumped with net::PumpRouter, each message's sender resolved against the access
// policy, and its lost sends counted in the metrics.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/error.h"
#include "common/net/handshake_monitor.h"
#include "common/net/router.h"
#include "common/net/socket.h"
#include "common/status.h"
#include "host/config/daemon_config.h"
#include "host/frontend/access.h"
#include "host/frontend/audit_log.h"
#include "host/wire/messages.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

// Not thread-safe; belongs to the step loop's thread.
class RouterSocket {
 public:
  // `name` labels the socket in metrics ("job", "admin"); `zap_domain` is the ZAP domain its
  // CURVE clients are admitted in, and the one `access` checks each sender against.
  // REQUIRES: `context`, `access` and `metrics` outlive the socket; Bind before any other call.
  RouterSocket(zmq::context_t& context, const char* name, const char* zap_domain,
               const AccessPolicy& access, telemetry::DaemonMetrics& metrics);

  // Configures (ROUTER_MANDATORY, high-water marks and ZMQ_MAXMSGSIZE from `config`, linger 0;
  // CURVE with `curve_secret_key` when it is not empty) and binds. Returns OK, UNAVAILABLE (the
  // message names the endpoint and why, e.g. "cannot bind the job endpoint: ... Address already
  // in use") when it cannot be bound, or the handshake monitor's code when that cannot start.
  HostStatus Bind(const std::string& endpoint, const DaemonConfig& config,
                  const std::string& curve_secret_key);
  // Binds the same endpoint again with another CURVE secret key (the server key rotated):
  // clients of the old public key are cut off, the new one's connect. When the new socket
  // cannot be bound, the old key's is bound again and UNAVAILABLE returned (the message says
  // why, and whether the old key's socket is back).
  HostStatus Rebind(const DaemonConfig& config, const std::string& new_secret_key,
                    const std::string& old_secret_key);
  // The endpoint actually bound (a "tcp://127.0.0.1:*" gets its real port here). Fixed once the
  // first Bind returned (a Rebind keeps it), so any thread may read it from then on.
  const std::string& endpoint() const { return endpoint_; }
  // nullptr after a Rebind that could bind neither key (the loop must not poll it).
  void* handle() { return socket_ ? socket_->handle() : nullptr; }
  // On a CURVE socket: readable when a connection's handshake failed (DrainRefusedHandshakes
  // says which); nullptr otherwise.
  void* monitor_handle() { return monitor_ ? monitor_->handle() : nullptr; }
  // Audits as auth_refused (AuditLog::RecordRepeatable) each handshake libzmq dropped:
  // plaintext or another mechanism on a CURVE socket, a CURVE handshake that did not verify, a
  // malformed greeting.
  void DrainRefusedHandshakes(AuditLog& audit);

  // Receives up to `burst` messages without blocking. A DEALER sends [payload], a REQ
  // [empty, payload]: `on_message(peer, key, payload)` gets the payload and the sender's client
  // key (nullptr on a plaintext socket: anonymous). A message that is refused gets
  // `on_refused(peer, reply)`: MALFORMED_MESSAGE for any other framing, PERMISSION_DENIED for a
  // key a reload removed or moved off this socket's roles since its handshake.
  void Pump(int burst,
            const std::function<void(const std::string&, const ClientKeyConfig*,
                                     std::span<const std::byte>)>& on_message,
            const std::function<void(const std::string&, const ErrorReply&)>& on_refused);

  // Sends [peer, payload] without blocking. A backlogged or vanished peer loses the message,
  // counted in wafer_dropped_messages_total{socket, reason}. True when it was sent.
  bool Send(const std::string& peer, std::span<const std::byte> payload);

 private:
  zmq::context_t& context_;
  const char* name_;
  const char* zap_domain_;
  const AccessPolicy& access_;
  telemetry::DaemonMetrics& metrics_;
  std::unique_ptr<net::Socket> socket_;  // Set by Bind.
  std::unique_ptr<net::HandshakeMonitor> monitor_;  // CURVE sockets; destroyed before socket_.
  std::string endpoint_;                 // What Bind bound.
};

}  // namespace wafer::host

// The daemon's two client-facing sockets (jobs, admin): a common/net ROUTER configured from
// waferd.yaml, pumped with net::PumpRouter, and its lost sends counted in the metrics.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>

#include <memory>

#include <zmq.hpp>

#include "common/net/router.h"
#include "common/net/socket.h"
#include "common/status.h"
#include "host/config/daemon_config.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

// The detail both front ends answer a message of `frames` payload frames with (not one).
std::string MalformedFramingDetail(size_t frames);
// The detail of the refusal of a message whose key a reload removed or moved to another role.
std::string NoLongerAllowedDetail(const std::string& key_name);

// Not thread-safe; belongs to the step loop's thread.
class RouterSocket {
 public:
  // `name` labels the socket in metrics ("job", "admin").
  // REQUIRES: `context` and `metrics` outlive the socket; Bind before any other call.
  RouterSocket(zmq::context_t& context, const char* name, telemetry::DaemonMetrics& metrics);

  // Configures (ROUTER_MANDATORY, high-water marks and ZMQ_MAXMSGSIZE from `config`, linger 0;
  // CURVE with `curve_secret_key` when it is not empty, clients authenticated in `zap_domain`)
  // and binds. UNAVAILABLE (`detail` names the endpoint) when it cannot be bound.
  Status Bind(const std::string& endpoint, const DaemonConfig& config,
              const std::string& curve_secret_key, const char* zap_domain, std::string* detail);
  // The endpoint actually bound (a "tcp://127.0.0.1:*" gets its real port here).
  const std::string& endpoint() const { return socket_->last_endpoint(); }
  void* handle() { return socket_->handle(); }

  // Receives up to `burst` messages without blocking. A DEALER sends [payload], a REQ
  // [empty, payload]: `on_message(peer, user_id, payload)` gets the payload and the name the
  // ZAP handler gave the client's key (empty on a plaintext socket); any other framing calls
  // `on_malformed(peer, payload_frames)`.
  void Pump(int burst,
            const std::function<void(const std::string&, const std::string&,
                                     std::span<const std::byte>)>& on_message,
            const std::function<void(const std::string&, size_t)>& on_malformed);

  // Sends [peer, payload] without blocking. A backlogged or vanished peer loses the message,
  // counted in wafer_dropped_messages_total{socket, reason}.
  void Send(const std::string& peer, std::span<const std::byte> payload);

 private:
  zmq::context_t& context_;
  const char* name_;
  telemetry::DaemonMetrics& metrics_;
  std::unique_ptr<net::Socket> socket_;  // Set by Bind.
};

}  // namespace wafer::host

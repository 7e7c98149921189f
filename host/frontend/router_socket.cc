#include "host/frontend/router_socket.h"

#include <vector>

namespace wafer::host {

RouterSocket::RouterSocket(zmq::context_t& context, const char* name,
                           telemetry::DaemonMetrics& metrics)
    : socket_(context, zmq::socket_type::router), name_(name), metrics_(metrics) {}

Status RouterSocket::Bind(const std::string& endpoint, const DaemonConfig& config,
                          std::string* detail) {
  try {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.set(zmq::sockopt::router_mandatory, 1);
    socket_.set(zmq::sockopt::sndhwm, static_cast<int>(config.send_high_water_mark));
    socket_.set(zmq::sockopt::rcvhwm, static_cast<int>(config.send_high_water_mark));
    // libzmq drops the connection of a peer that sends more than this; below it, an oversized
    // message gets a typed MESSAGE_TOO_LARGE reply from the front end.
    socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(config.max_message_bytes) * 4);
    socket_.bind(endpoint);
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    *detail = std::string("cannot bind the ") + name_ + " endpoint " + endpoint + ": " + e.what();
    return Unavailable();
  }
  return OkStatus();
}

void RouterSocket::Pump(
    int burst,
    const std::function<void(const std::string&, std::span<const std::byte>)>& on_message,
    const std::function<void(const std::string&, size_t)>& on_malformed) {
  std::vector<zmq::message_t> frames;
  for (int i = 0; i < burst; ++i) {
    zmq::message_t identity;
    if (!socket_.recv(identity, zmq::recv_flags::dontwait)) return;
    const std::string peer(static_cast<const char*>(identity.data()), identity.size());
    frames.clear();
    while (socket_.get(zmq::sockopt::rcvmore)) {
      frames.emplace_back();
      if (!socket_.recv(frames.back(), zmq::recv_flags::dontwait)) break;
    }
    if (!frames.empty() && frames.front().size() == 0) frames.erase(frames.begin());
    if (frames.size() != 1) {
      on_malformed(peer, frames.size());
      continue;
    }
    on_message(peer, {static_cast<const std::byte*>(frames.front().data()),
                      frames.front().size()});
  }
}

void RouterSocket::Send(const std::string& peer, std::span<const std::byte> payload) {
  try {
    zmq::message_t id(peer.data(), peer.size());
    if (!socket_.send(id, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      metrics_.Dropped(name_, "peer_backlog").Increment();
      return;
    }
    zmq::message_t body(payload.data(), payload.size());
    socket_.send(body, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH: the peer disconnected. Its job keeps running; ResumeStream replays it.
    metrics_.Dropped(name_, e.num() == EHOSTUNREACH ? "peer_gone" : "send_error").Increment();
  }
}

}  // namespace wafer::host

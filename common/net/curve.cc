#include "common/net/curve.h"

#include <array>
#include <vector>

namespace wafer::net {

Result<CurveKeyPair> GenerateCurveKeyPair() {
  std::array<char, 41> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0) return Internal();
  return CurveKeyPair{std::string(pub.data(), 40), std::string(sec.data(), 40)};
}

Result<std::string> CurvePublicKeyOf(const std::string& secret_key) {
  if (secret_key.size() != 40) return InvalidArgument();
  std::array<char, 41> pub{};
  if (zmq_curve_public(pub.data(), secret_key.c_str()) != 0) return InvalidArgument();
  return std::string(pub.data(), 40);
}

HostResult<std::unique_ptr<ZapHandler>> ZapHandler::Start(zmq::context_t& context,
                                                          Authorizer authorize) {
  try {
    zmq::socket_t socket(context, zmq::socket_type::rep);
    socket.set(zmq::sockopt::linger, 0);
    socket.bind("inproc://zeromq.zap.01");
    std::unique_ptr<ZapHandler> handler(new ZapHandler(std::move(socket), std::move(authorize)));
    handler->thread_ = std::thread([h = handler.get()] { h->Run(); });
    return handler;
  } catch (const zmq::error_t& e) {
    return Error{StatusCode::kUnavailable,
                 std::string("cannot start the ZAP handler: ") + e.what()};
  }
}

ZapHandler::ZapHandler(zmq::socket_t socket, Authorizer authorize)
    : socket_(std::move(socket)), authorize_(std::move(authorize)) {}

ZapHandler::~ZapHandler() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZapHandler::SetAuthorizer(Authorizer authorize) {
  std::lock_guard<std::mutex> lock(mu_);
  authorize_ = std::move(authorize);
}

std::optional<std::string> ZapHandler::Authorize(const std::string& domain,
                                                 const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  return authorize_ ? authorize_(domain, key) : std::nullopt;
}

void ZapHandler::Run() {
  // ZAP 1.0 (rfc.zeromq.org/spec/27): request [version, request id, domain, address, identity,
  // mechanism, credentials...]; reply [version, request id, status code, status text, user id,
  // metadata].
  while (!stop_.load()) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    std::vector<zmq::message_t> frames;
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(50)) == 0) continue;
      do {
        frames.emplace_back();
        if (!socket_.recv(frames.back(), zmq::recv_flags::dontwait)) break;
      } while (frames.back().more());
    } catch (const zmq::error_t&) {
      break;  // Context terminated.
    }
    const auto text = [&](size_t i) { return i < frames.size() ? frames[i].to_string() : ""; };
    std::optional<std::string> user;
    if (frames.size() >= 7 && text(0) == "1.0" && text(5) == "CURVE" && frames[6].size() == 32) {
      std::array<char, 41> z85{};
      zmq_z85_encode(z85.data(), static_cast<const uint8_t*>(frames[6].data()), 32);
      user = Authorize(text(2), std::string(z85.data(), 40));
    }
    ++answered_;
    if (!user) ++refused_;
    try {
      socket_.send(zmq::buffer(text(0).empty() ? std::string("1.0") : text(0)),
                   zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(text(1)), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(std::string(user ? "200" : "400")), zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(std::string(user ? "OK" : "key not allowed here")),
                   zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(user.value_or("")), zmq::send_flags::sndmore);
      socket_.send(zmq::message_t(), zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      break;
    }
  }
  socket_.close();
}

}  // namespace wafer::net

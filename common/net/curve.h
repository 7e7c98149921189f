// CURVE keys and the ZAP handler that authenticates the clients of every CURVE server socket
// of a context. libzmq's CURVE server with no ZAP handler accepts any client that knows its
// public key: start a ZapHandler before binding a CURVE socket, and treat its failure to start
// as fatal.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "common/error.h"
#include "common/result.h"

namespace wafer::net {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters.
  std::string secret_key;  // Z85, 40 characters.
};

// A fresh key pair from libsodium. INTERNAL when libzmq was built without CURVE.
Result<CurveKeyPair> GenerateCurveKeyPair();
// The public key of a Z85 secret key. INVALID_ARGUMENT for a malformed key.
Result<std::string> CurvePublicKeyOf(const std::string& secret_key);

// Answers libzmq's ZAP requests for one context (inproc://zeromq.zap.01) on a thread of its
// own: a CURVE client is accepted when `authorize(domain, client public key in Z85)` gives a
// name, which then reaches the server as the message property "User-Id"; any other mechanism
// (a plaintext client of a ZAP domain) is refused. Thread-safe: SetAuthorizer may be called
// while it runs (a reload).
class ZapHandler {
 public:
  using Authorizer =
      std::function<std::optional<std::string>(const std::string& domain,
                                               const std::string& public_key)>;

  // Binds the ZAP endpoint in `context` and starts answering. UNAVAILABLE (the message says
  // why) when it cannot bind (another handler runs in this context).
  // REQUIRES: `context` outlives the handler.
  static HostResult<std::unique_ptr<ZapHandler>> Start(zmq::context_t& context,
                                                       Authorizer authorize);
  ~ZapHandler();  // Stops the thread.

  void SetAuthorizer(Authorizer authorize);
  // Requests answered, and of them refused.
  uint64_t answered() const { return answered_.load(); }
  uint64_t refused() const { return refused_.load(); }

 private:
  ZapHandler(zmq::socket_t socket, Authorizer authorize);
  void Run();
  std::optional<std::string> Authorize(const std::string& domain, const std::string& key);

  zmq::socket_t socket_;  // REP; used only by the thread after Start.
  std::mutex mu_;
  Authorizer authorize_;  // Guarded by mu_.
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> answered_{0};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
};

}  // namespace wafer::net

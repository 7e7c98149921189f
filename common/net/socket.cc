#include "common/net/socket.h"

#include <cerrno>
#include <chrono>
#include <functional>
#include <utility>

// ThreadSanitizer cannot see the synchronisation inside libzmq (Debian's libzmq is not
// instrumented), so every hand-off through a socket (a pointer over an owned channel, a board
// reply, a worker's message) looked like a race between the thread that wrote the data before
// sending and the thread that reads it after receiving. This file is the one place every host
// message is sent and received, so it tells TSan of the happens-before edge once: a release
// before each send and an acquire after each receive, on an address tied to the channel (its
// endpoint, which both ends share). Compiled only under TSan.
#if defined(__SANITIZE_THREAD__)
#define WAFER_TSAN_ANNOTATIONS 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WAFER_TSAN_ANNOTATIONS 1
#endif
#endif

#ifdef WAFER_TSAN_ANNOTATIONS
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace wafer::net {
namespace {

#ifdef WAFER_TSAN_ANNOTATIONS
// The synchronisation address of the channel at `endpoint`: both ends of a channel name the same
// endpoint (the bound one, wildcard port resolved, is what peers connect to). Two endpoints that
// share a slot only synchronise more than they must, which can hide a race but never invent one.
void* ChannelSyncAddress(const std::string& endpoint) {
  static char slots[4096];
  return &slots[std::hash<std::string>{}(endpoint) % sizeof(slots)];
}
void ReleaseBeforeSend(const std::string& endpoint) {
  __tsan_release(ChannelSyncAddress(endpoint));
}
void AcquireAfterReceive(const std::string& endpoint) {
  __tsan_acquire(ChannelSyncAddress(endpoint));
}
#else
void ReleaseBeforeSend(const std::string&) {}
void AcquireAfterReceive(const std::string&) {}
#endif

zmq::socket_type ZmqType(SocketType type) {
  switch (type) {
    case SocketType::kRouter:
      return zmq::socket_type::router;
    case SocketType::kDealer:
      return zmq::socket_type::dealer;
    case SocketType::kReq:
      return zmq::socket_type::req;
    case SocketType::kPair:
      return zmq::socket_type::pair;
  }
  return zmq::socket_type::pair;  // Unreachable: the switch covers every enumerator.
}

// INVALID_ARGUMENT, the message saying which option, for options libzmq would refuse or misuse.
HostStatus ValidateOptions(const SocketOptions& options) {
  if (options.send_high_water_mark < 0 || options.receive_high_water_mark < 0) {
    return Error{StatusCode::kInvalidArgument, "high-water marks must be >= 0"};
  }
  if (options.max_message_bytes < -1) {
    return Error{StatusCode::kInvalidArgument, "max_message_bytes must be >= -1"};
  }
  if (options.linger_ms < -1) {
    return Error{StatusCode::kInvalidArgument, "linger_ms must be >= -1"};
  }
  for (const std::string* key : {&options.curve_secret_key, &options.curve_public_key,
                                  &options.curve_server_key}) {
    if (!key->empty() && key->size() != 40) {
      return Error{StatusCode::kInvalidArgument, "a CURVE key is 40 characters of Z85"};
    }
  }
  if (!options.curve_secret_key.empty() && options.curve_server_key.empty() &&
      options.zap_domain.empty()) {
    return Error{StatusCode::kInvalidArgument,
                 "a CURVE server needs a ZAP domain (clients are authenticated there)"};
  }
  if (!options.curve_server_key.empty() &&
      (options.curve_public_key.empty() || options.curve_secret_key.empty())) {
    return Error{StatusCode::kInvalidArgument,
                 "a CURVE client needs its own public and secret keys"};
  }
  return HostOk();
}

// Every option Waferd sets, in one place. Throws zmq::error_t (caught by Socket::Open).
void Configure(zmq::socket_t& socket, SocketType type, const SocketOptions& options) {
  socket.set(zmq::sockopt::linger, options.linger_ms);
  socket.set(zmq::sockopt::sndhwm, options.send_high_water_mark);
  socket.set(zmq::sockopt::rcvhwm, options.receive_high_water_mark);
  socket.set(zmq::sockopt::maxmsgsize, options.max_message_bytes);
  if (type == SocketType::kRouter) {
    socket.set(zmq::sockopt::router_mandatory, options.router_mandatory ? 1 : 0);
  }
  // Security, here and only here.
  if (options.curve_secret_key.empty()) return;
  if (options.curve_server_key.empty()) {
    socket.set(zmq::sockopt::zap_domain, options.zap_domain);
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey, options.curve_secret_key);
  } else {
    socket.set(zmq::sockopt::curve_serverkey, options.curve_server_key);
    socket.set(zmq::sockopt::curve_publickey, options.curve_public_key);
    socket.set(zmq::sockopt::curve_secretkey, options.curve_secret_key);
  }
}

// Endpoint errors the caller can fix by writing the endpoint differently.
bool IsEndpointSyntaxError(int error) {
  return error == EINVAL || error == EPROTONOSUPPORT || error == ENOCOMPATPROTO;
}

}  // namespace

const char* SocketTypeName(SocketType type) {
  switch (type) {
    case SocketType::kRouter:
      return "ROUTER";
    case SocketType::kDealer:
      return "DEALER";
    case SocketType::kReq:
      return "REQ";
    case SocketType::kPair:
      return "PAIR";
  }
  return "UNKNOWN";
}

const char* SendOutcomeName(SendOutcome outcome) {
  switch (outcome) {
    case SendOutcome::kSent:
      return "sent";
    case SendOutcome::kPeerBacklog:
      return "peer_backlog";
    case SendOutcome::kPeerGone:
      return "peer_gone";
    case SendOutcome::kError:
      return "send_error";
  }
  return "send_error";
}

Socket::Socket(zmq::socket_t socket, SocketType type, std::string last_endpoint)
    : socket_(std::move(socket)), type_(type), last_endpoint_(std::move(last_endpoint)) {}

Socket::~Socket() {
  try {
    socket_.close();
  } catch (const zmq::error_t&) {
    // close() fails only on an already invalid handle; there is nothing left to release.
  }
}

HostResult<std::unique_ptr<Socket>> Socket::Bind(zmq::context_t& context, SocketType type,
                                                 const std::string& endpoint,
                                                 const SocketOptions& options) {
  return Open(context, type, endpoint, options, /*bind=*/true);
}

HostResult<std::unique_ptr<Socket>> Socket::Connect(zmq::context_t& context, SocketType type,
                                                    const std::string& endpoint,
                                                    const SocketOptions& options) {
  return Open(context, type, endpoint, options, /*bind=*/false);
}

HostResult<std::unique_ptr<Socket>> Socket::Open(zmq::context_t& context, SocketType type,
                                                 const std::string& endpoint,
                                                 const SocketOptions& options, bool bind) {
  const std::string what = std::string(bind ? "cannot bind " : "cannot connect ") +
                           SocketTypeName(type) + " to " + endpoint;
  if (HostStatus valid = ValidateOptions(options); !valid.ok()) {
    return std::move(valid).error().WithContext(what);
  }
  enum class Stage { kCreate, kConfigure, kAttach } stage = Stage::kCreate;
  try {
    zmq::socket_t socket(context, ZmqType(type));
    stage = Stage::kConfigure;
    Configure(socket, type, options);
    stage = Stage::kAttach;
    if (bind) {
      socket.bind(endpoint);
    } else {
      socket.connect(endpoint);
    }
    std::string last = socket.get(zmq::sockopt::last_endpoint);
    return std::unique_ptr<Socket>(new Socket(std::move(socket), type, std::move(last)));
  } catch (const zmq::error_t& e) {
    StatusCode code = StatusCode::kUnavailable;
    switch (stage) {
      case Stage::kCreate:
        code = e.num() == EMFILE ? StatusCode::kResourceExhausted : StatusCode::kUnavailable;
        break;
      case Stage::kConfigure:
        code = StatusCode::kInternal;
        break;
      case Stage::kAttach:
        code = IsEndpointSyntaxError(e.num()) ? StatusCode::kInvalidArgument
                                               : StatusCode::kUnavailable;
        break;
    }
    return Error{code, what + ": " + e.what()};
  }
}

SendOutcome Socket::Send(std::span<const std::byte> frame) {
  const std::span<const std::byte> frames[] = {frame};
  return Send(std::span<const std::span<const std::byte>>(frames));
}

SendOutcome Socket::Send(std::initializer_list<std::span<const std::byte>> frames) {
  return Send(std::span<const std::span<const std::byte>>(frames.begin(), frames.size()));
}

SendOutcome Socket::Send(std::span<const std::span<const std::byte>> frames) {
  if (frames.empty()) return SendOutcome::kError;
  try {
    for (size_t i = 0; i < frames.size(); ++i) {
      const bool last = i + 1 == frames.size();
      const zmq::send_flags flags =
          last ? zmq::send_flags::dontwait : zmq::send_flags::dontwait | zmq::send_flags::sndmore;
      zmq::message_t part(frames[i].data(), frames[i].size());
      // After the copy into libzmq's buffer (the receiver reads that buffer), before it leaves.
      ReleaseBeforeSend(last_endpoint_);
      if (!socket_.send(part, flags)) {
        // libzmq accepts the rest of a message once it took its first frame, so a backlog after
        // the first frame would be a libzmq bug; the half-sent message cannot be recalled.
        return i == 0 ? SendOutcome::kPeerBacklog : SendOutcome::kError;
      }
    }
    return SendOutcome::kSent;
  } catch (const zmq::error_t& e) {
    return e.num() == EHOSTUNREACH ? SendOutcome::kPeerGone : SendOutcome::kError;
  }
}

namespace {

// libzmq's free function for an attachment: drops the owner it was given.
void DropOwner(void* /*data*/, void* hint) { delete static_cast<std::shared_ptr<const void>*>(hint); }

}  // namespace

SendOutcome Socket::SendWithAttachment(std::span<const std::span<const std::byte>> frames,
                                       std::span<const std::byte> attachment,
                                       std::shared_ptr<const void> owner) {
  if (frames.empty()) return SendOutcome::kError;
  try {
    for (const std::span<const std::byte> frame : frames) {
      zmq::message_t part(frame.data(), frame.size());
      ReleaseBeforeSend(last_endpoint_);
      if (!socket_.send(part, zmq::send_flags::dontwait | zmq::send_flags::sndmore)) {
        return &frame == &frames.front() ? SendOutcome::kPeerBacklog : SendOutcome::kError;
      }
    }
    // From here libzmq owns a copy of `owner` (the hint) and frees it through DropOwner when the
    // last reference to the message goes, even if the send below fails.
    auto* hint = new std::shared_ptr<const void>(std::move(owner));
    zmq::message_t part;
    try {
      part.rebuild(const_cast<std::byte*>(attachment.data()), attachment.size(), &DropOwner,
                   hint);
    } catch (const zmq::error_t&) {
      delete hint;
      throw;
    }
    ReleaseBeforeSend(last_endpoint_);
    return socket_.send(part, zmq::send_flags::dontwait) ? SendOutcome::kSent
                                                         : SendOutcome::kError;
  } catch (const zmq::error_t& e) {
    return e.num() == EHOSTUNREACH ? SendOutcome::kPeerGone : SendOutcome::kError;
  }
}

Result<Message> Socket::Receive(int timeout_ms) {
  if (timeout_ms < 0) return InvalidArgument();
  try {
    zmq::message_t frame;
    // Take what is queued first; otherwise wait in libzmq's own blocking receive, bounded by
    // ZMQ_RCVTIMEO (set only when the timeout changes): one wake-up per message, not a
    // zmq_poll and a second receive.
    if (!socket_.recv(frame, zmq::recv_flags::dontwait)) {
      if (timeout_ms == 0) return DeadlineExceeded();
      if (timeout_ms != receive_timeout_ms_) {
        socket_.set(zmq::sockopt::rcvtimeo, timeout_ms);
        receive_timeout_ms_ = timeout_ms;
      }
      if (!socket_.recv(frame, zmq::recv_flags::none)) return DeadlineExceeded();
    }
    Message message;
    bool more = frame.more();
    message.Append(std::move(frame));
    while (more) {
      zmq::message_t next;
      // libzmq delivers a message's frames together: the rest is already here.
      if (!socket_.recv(next, zmq::recv_flags::dontwait)) return Internal();
      more = next.more();
      message.Append(std::move(next));
    }
    // Every frame is here, each sent after its sender's release.
    AcquireAfterReceive(last_endpoint_);
    return message;
  } catch (const zmq::error_t& e) {
    return e.num() == ETERM || e.num() == EINTR ? Unavailable() : Internal();
  }
}

}  // namespace wafer::net

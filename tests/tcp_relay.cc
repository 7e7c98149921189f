#include "tests/tcp_relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace wafer::testing {
namespace {

// A side stops reading while this much waits to go the other way.
constexpr size_t kMaxBuffered = 4 << 20;

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

void CloseBoth(int down, int up) {
  close(down);
  close(up);
}

// False at end of stream or on an error.
bool ReadInto(int fd, std::string* out) {
  char buf[65536];
  const ssize_t n = read(fd, buf, sizeof(buf));
  if (n > 0) out->append(buf, static_cast<size_t>(n));
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

// Sends what it can of `pending`; false on an error.
bool Flush(int fd, std::string* pending) {
  while (!pending->empty()) {
    const ssize_t n = send(fd, pending->data(), pending->size(), MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    pending->erase(0, static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

TcpRelay::TcpRelay(int upstream_port, int listeners) : upstream_port_(upstream_port) {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) return;
  for (int i = 0; i < listeners; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in a = Loopback(0);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        listen(fd, 64) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      if (fd >= 0) close(fd);
      return;
    }
    listeners_.push_back(fd);
    ports_.push_back(ntohs(a.sin_port));
  }
  ok_ = true;
  thread_ = std::thread([this] { Loop(); });
}

TcpRelay::~TcpRelay() {
  stop_ = true;
  Wake();
  if (thread_.joinable()) thread_.join();
  for (Pipe& p : pipes_) CloseBoth(p.down, p.up);
  for (int fd : listeners_) close(fd);
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
}

int TcpRelay::Drop(int listener) {
  if (!ok_) return 0;  // No thread would answer.
  std::promise<int> done;
  std::future<int> count = done.get_future();
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back({listener, &done});
  }
  Wake();
  return count.get();
}

void TcpRelay::Wake() {
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
}

void TcpRelay::Accept(int listener) {
  while (true) {
    const int down = accept4(listeners_[listener], nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (down < 0) return;
    const int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(upstream_port_);
    if (up < 0 || connect(up, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(down);  // The server is down: the client sees a refused connection and retries.
      if (up >= 0) close(up);
      continue;
    }
    fcntl(up, F_SETFL, fcntl(up, F_GETFL) | O_NONBLOCK);
    const int one = 1;
    setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(down, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    pipes_.push_back(Pipe{listener, down, up, {}, {}, false});
  }
}

void TcpRelay::Loop() {
  std::vector<pollfd> fds;
  while (!stop_) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    for (int fd : listeners_) fds.push_back({fd, POLLIN, 0});
    const size_t base = fds.size(), n = pipes_.size();
    for (const Pipe& p : pipes_) {
      fds.push_back({p.down,
                     static_cast<short>((p.to_up.size() < kMaxBuffered ? POLLIN : 0) |
                                        (p.to_down.empty() ? 0 : POLLOUT)),
                     0});
      fds.push_back({p.up,
                     static_cast<short>((p.to_down.size() < kMaxBuffered ? POLLIN : 0) |
                                        (p.to_up.empty() ? 0 : POLLOUT)),
                     0});
    }
    if (poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) {
      char buf[64];
      while (read(wake_[0], buf, sizeof(buf)) > 0) {
      }
    }
    for (size_t i = 0; i < n; ++i) {
      Pipe& p = pipes_[i];
      const short down = fds[base + 2 * i].revents, up = fds[base + 2 * i + 1].revents;
      if (down & (POLLIN | POLLHUP | POLLERR)) p.dead |= !ReadInto(p.down, &p.to_up);
      if (up & (POLLIN | POLLHUP | POLLERR)) p.dead |= !ReadInto(p.up, &p.to_down);
      if (!p.dead) p.dead = !Flush(p.up, &p.to_up) || !Flush(p.down, &p.to_down);
    }
    for (size_t l = 0; l < listeners_.size(); ++l) {
      if (fds[1 + l].revents & POLLIN) Accept(static_cast<int>(l));
    }
    std::vector<Request> requests;
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests.swap(requests_);
    }
    for (const Request& r : requests) {
      int dropped = 0;
      for (Pipe& p : pipes_) {
        if (p.listener == r.listener && !p.dead) {
          p.dead = true;
          ++dropped;
        }
      }
      r.done->set_value(dropped);
    }
    for (Pipe& p : pipes_) {
      if (p.dead) CloseBoth(p.down, p.up);
    }
    std::erase_if(pipes_, [](const Pipe& p) { return p.dead; });
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const Request& r : requests_) r.done->set_value(0);
  requests_.clear();
}

}  // namespace wafer::testing

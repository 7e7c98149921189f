#include "bench/echo_probe.h"

#include <string>

#include <zmq.hpp>

#include "common/clock.h"
#include "common/net/router.h"
#include "common/net/socket.h"

namespace wafer::bench {

EchoProbe::EchoProbe(int interval_ms, size_t bytes)
    : thread_([this, interval_ms, bytes] { Run(interval_ms, bytes); }) {}

EchoProbe::~EchoProbe() { Stop(); }

std::vector<double> EchoProbe::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  return samples_;
}

void EchoProbe::Run(int interval_ms, size_t bytes) {
  zmq::context_t context(1);
  auto router = net::Socket::Bind(context, net::SocketType::kRouter, "tcp://127.0.0.1:*", {});
  if (!router.ok()) return;
  auto dealer = net::Socket::Connect(context, net::SocketType::kDealer,
                                     (*router)->last_endpoint(), {});
  if (!dealer.ok()) return;
  const Clock& clock = SystemClock::Get();
  const std::string payload(bytes, 'p');
  bool warm = false;  // The first round trip also connects: not counted.
  while (!stop_) {
    const int64_t t0 = clock.NowNanos();
    if ((*dealer)->Send(net::AsBytes(payload)) != net::SendOutcome::kSent) break;
    Result<net::RouterReceipt> in = net::ReceiveFromPeer(**router, 1000);
    if (!in.ok()) break;
    const auto* m = std::get_if<net::PeerMessage>(&*in);
    if (m == nullptr ||
        net::SendToPeer(**router, m->peer, m->payload()) != net::SendOutcome::kSent) {
      break;
    }
    if (!(*dealer)->Receive(1000).ok()) break;
    if (warm) samples_.push_back(static_cast<double>(clock.NowNanos() - t0) / 1e9);
    warm = true;
    // Waits out the interval on the DEALER, where nothing arrives.
    (void)(*dealer)->Receive(interval_ms);
  }
}

}  // namespace wafer::bench

// A raw ZeroMQ round trip measured beside a benchmark run: a DEALER pings a ROUTER on loopback
// TCP (the transport waferd's job socket uses) at a steady interval and the ROUTER echoes. What
// it sees is the host's own latency floor while the run loads it (scheduling delays on a busy
// machine included), against which the client-side latency of waferd's replies can be judged.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

namespace wafer::bench {

// Start and Stop are called from one thread; the probe runs on a thread of its own, which owns
// both sockets.
class EchoProbe {
 public:
  // Starts pinging every `interval_ms` with `bytes`-byte messages.
  EchoProbe(int interval_ms, size_t bytes);
  ~EchoProbe();
  EchoProbe(const EchoProbe&) = delete;
  EchoProbe& operator=(const EchoProbe&) = delete;

  // Stops the probe and returns its round trips in seconds (empty when its sockets could not be
  // made).
  std::vector<double> Stop();

 private:
  void Run(int interval_ms, size_t bytes);

  std::atomic<bool> stop_{false};
  std::vector<double> samples_;  // Written by the probe thread until it is joined.
  std::thread thread_;
};

}  // namespace wafer::bench

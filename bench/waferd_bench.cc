// waferd-bench: measures waferd (a separate process, embedded simulated board) against raw
// ZeroMQ baselines measured in the same run, and prints each figure beside its baseline as a
// ratio, with the target it is held to. Timing lives here, never in tests.
//
//   waferd-bench [--bin DIR] [--quick] [--only SECTIONS]
//
// (a) submit -> JobAccepted round trip vs a raw DEALER/ROUTER echo of the same bytes.
// (b) token streaming through waferd (many concurrent jobs) vs a raw ZeroMQ relay carrying the
//     same TokenChunk messages.
// The baselines are "raw" in that nothing but ZeroMQ sits between the ends; their sockets are made
// and driven through common/net like waferd's, so both sides pay the same adapter costs.
// (c) waferd's resident memory idle and with 1,000 queued jobs.
// (s) the durable job store's cost: submit -> accepted with the store on (fsync per commit) and
//     off, beside a raw write + fdatasync of the same bytes to a file on the same disk, at 1 and
//     at 256 concurrent submitters; and token streaming with the store on and off.
// (f) scheduling: one seeded multi-tenant trace replayed open loop under the fair policy and
//     under FIFO at 50%, 80% and 150% of the board's capacity (measured first) and bursty at
//     80%, on the 8B shape with real-time pacing (bench/sched_bench.h).
// (a) to (d) and (f) run waferd with `store: {path: memory}`: their targets predate the store,
// whose cost (s) measures on its own.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <zmq.hpp>

#include "bench/load_generator.h"
#include "bench/sched_bench.h"
#include "bench/waferd_process.h"
#include "common/clock.h"
#include "common/net/router.h"
#include "common/net/socket.h"
#include "host/client/wafer_client.h"
#include "host/config/daemon_config.h"
#include "host/wire/job_codec.h"

namespace wafer::bench {
namespace {

using host::JobMessage;

struct Options {
  std::string bin = WAFER_BIN_DIR;
  bool quick = false;
  std::string only;  // Section letters to run (--only as); empty: all.
  bool Runs(char section) const { return only.empty() || only.find(section) != std::string::npos; }
};

double NowS() { return static_cast<double>(SystemClock::Get().NowNanos()) / 1e9; }

// waferd with `shape` loaded with `slots` sequences of `context` tokens, split over `boards`
// embedded wse3 boards (a layer pipeline) when more than one; `store` is its store.path
// ("memory": none). No pacing: steps answer as fast as the host computes them.
WaferdOptions Daemon(const Options& o, const std::string& dir, const char* shape, uint32_t slots,
                     uint32_t context, uint32_t boards = 1, const std::string& store = "memory") {
  WaferdOptions w;
  w.bin_dir = o.bin;
  w.dir = dir;
  w.shape = shape;
  w.slots = slots;
  w.context = context;
  w.boards = boards;
  w.store = store;
  return w;
}

// False (saying why) when waferd did not start or load its model.
bool Started(const HostResult<std::unique_ptr<WaferdProcess>>& waferd) {
  if (waferd.ok()) return true;
  std::fprintf(stderr, "waferd-bench: %s\n", waferd.error().ToString().c_str());
  return false;
}

// Streams `jobs` jobs of `max_tokens` tokens (8-token prompts) through `waferd`'s shape-only
// model, `in_flight` at a time. False (with a message) when the run failed.
bool StreamShapeJobs(const WaferdProcess& waferd, uint32_t jobs, uint32_t in_flight,
                     uint32_t max_tokens, LoadReport* report) {
  LoadOptions load;
  load.endpoint = waferd.job_endpoint();
  load.model = "shape";
  load.jobs = jobs;
  load.concurrency = in_flight;
  load.max_tokens = max_tokens;
  load.token_prompts = true;
  load.prompt_tokens = 8;
  HostStatus run = RunLoad(load, report);
  if (run.ok()) return true;
  std::fprintf(stderr, "waferd-bench: streaming run failed: %s\n", run.error().message.c_str());
  return false;
}

host::SubmitJob BenchJob(uint32_t max_tokens) {
  host::SubmitJob j;
  j.model = "shape";
  j.tenant = "bench";
  j.prompt_tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  j.max_tokens = max_tokens;
  j.want_text = false;
  return j;
}

struct Latency {
  double p50_us = 0, p99_us = 0;
};

// Every wait for a reply is bounded, so a daemon that died ends the run instead of hanging it.
constexpr int kReplyWaitMs = 30000;

// Sends through `send` (a non-blocking common/net send on `socket`); while the peer is
// backlogged, sleeps in poll until `socket` can send again, as a blocking send would (a spinning
// retry would take a core from the other threads of the measurement). False when the send failed
// for another reason, or the peer stayed backlogged for kReplyWaitMs.
template <typename SendFn>
bool SendWhenReady(net::Socket& socket, const SendFn& send) {
  net::SendOutcome outcome;
  while ((outcome = send()) == net::SendOutcome::kPeerBacklog) {
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLOUT, 0};
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(kReplyWaitMs)) == 0) return false;
    } catch (const zmq::error_t&) {
      return false;
    }
  }
  return outcome == net::SendOutcome::kSent;
}

// A socket the bench cannot do without: reports why and exits when it cannot be made.
std::unique_ptr<net::Socket> MustOpen(HostResult<std::unique_ptr<net::Socket>> socket) {
  if (!socket.ok()) {
    std::fprintf(stderr, "waferd-bench: %s\n", socket.error().message.c_str());
    std::exit(1);
  }
  return std::move(socket).value();
}

// (a) waferd: send `make(i)`, time until the first reply that `answers(i, reply)`, then read
// (untimed) until `done(i, reply)` says the exchange is over. The first 100 samples warm up.
Latency DaemonRoundTrip(const std::string& endpoint, int iterations,
                        const std::function<std::string(int)>& make,
                        const std::function<bool(int, const JobMessage&)>& answers,
                        const std::function<bool(int, const JobMessage&)>& done) {
  zmq::context_t ctx(1);
  std::unique_ptr<net::Socket> s = MustOpen(
      net::Socket::Connect(ctx, net::SocketType::kDealer, endpoint, {}));
  std::vector<double> samples;
  for (int i = 0; i < iterations; ++i) {
    std::string bytes = make(i);
    double t0 = NowS();
    if (!SendWhenReady(*s, [&] { return s->Send(net::AsBytes(bytes)); })) break;
    bool answered = false, finished = false;
    while (!finished) {
      Result<net::Message> m = s->Receive(kReplyWaitMs);
      if (!m.ok()) break;
      HostResult<JobMessage> result = host::DecodeJob(m->frame(0));
      if (!result.ok()) break;
      const JobMessage& decoded = *result;
      if (!answered && answers(i, decoded)) {
        samples.push_back((NowS() - t0) * 1e6);
        answered = true;
      }
      finished = done(i, decoded);
    }
  }
  samples.erase(samples.begin(), samples.begin() + std::min<size_t>(samples.size(), 100));
  return {Quantile(samples, 0.5), Quantile(samples, 0.99)};
}

// Any reply answers (an idle daemon sends nothing else).
bool AnyReply(int, const JobMessage&) { return true; }

// The JobAccepted or JobRejected of submit `i` (EncodedSubmit tags it i + 1).
bool AcceptsSubmit(int i, const JobMessage& m) {
  const uint64_t tag = static_cast<uint64_t>(i + 1);
  if (const auto* a = std::get_if<host::JobAccepted>(&m)) return a->request_tag == tag;
  if (const auto* r = std::get_if<host::JobRejected>(&m)) return r->request_tag == tag;
  return false;
}

std::string EncodedSubmit(int i) {
  host::SubmitJob job = BenchJob(1);
  job.request_tag = static_cast<uint64_t>(i + 1);
  return host::EncodeJob(job);
}

// (a) baseline: a ROUTER thread that echoes each message back to its sender.
Latency RawEchoRoundTrip(int iterations, size_t message_bytes) {
  zmq::context_t ctx(1);
  std::unique_ptr<net::Socket> router = MustOpen(
      net::Socket::Bind(ctx, net::SocketType::kRouter, "tcp://127.0.0.1:*", {}));
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    while (!stop) {
      Result<net::RouterReceipt> r = net::ReceiveFromPeer(*router, 50);
      if (!r.ok()) continue;
      if (const auto* m = std::get_if<net::PeerMessage>(&*r)) {
        SendWhenReady(*router, [&] { return net::SendToPeer(*router, m->peer, m->payload()); });
      }
    }
  });
  std::unique_ptr<net::Socket> s = MustOpen(
      net::Socket::Connect(ctx, net::SocketType::kDealer, router->last_endpoint(), {}));
  std::string payload(message_bytes, 'x');
  std::vector<double> samples;
  for (int i = 0; i < iterations; ++i) {
    double t0 = NowS();
    if (!SendWhenReady(*s, [&] { return s->Send(net::AsBytes(payload)); })) break;
    if (!s->Receive(kReplyWaitMs).ok()) break;
    samples.push_back((NowS() - t0) * 1e6);
  }
  stop = true;
  echo.join();
  samples.erase(samples.begin(), samples.begin() + std::min<size_t>(samples.size(), 100));
  return {Quantile(samples, 0.5), Quantile(samples, 0.99)};
}

// (b) baseline: producer -> relay (recv, forward with the client's routing id) -> client, the
// same TokenChunk messages waferd would send, over the same transports (inproc in, tcp out).
double RawRelayTokensPerSecond(uint64_t total_tokens, uint32_t tokens_per_chunk, uint32_t jobs) {
  zmq::context_t ctx(2);
  net::SocketOptions deep;  // Queues deep enough that the run never waits on a high-water mark.
  deep.send_high_water_mark = 100000;
  deep.receive_high_water_mark = 100000;
  // To the client, like the job socket.
  std::unique_ptr<net::Socket> front = MustOpen(
      net::Socket::Bind(ctx, net::SocketType::kRouter, "tcp://127.0.0.1:*", deep));
  // From the producer, like a board worker's channel.
  std::unique_ptr<net::Socket> back = MustOpen(
      net::Socket::Bind(ctx, net::SocketType::kPair, "inproc://relay-back", {}));
  const uint64_t chunks = total_tokens / tokens_per_chunk;
  std::unique_ptr<net::Socket> client = MustOpen(
      net::Socket::Connect(ctx, net::SocketType::kDealer, front->last_endpoint(), deep));
  if (!SendWhenReady(*client, [&] { return client->Send(net::AsBytes("hello")); })) return 0;
  Result<net::RouterReceipt> hello = net::ReceiveFromPeer(*front, kReplyWaitMs);
  if (!hello.ok() || !std::holds_alternative<net::PeerMessage>(*hello)) return 0;
  const std::string client_id = std::get<net::PeerMessage>(*hello).peer;
  // The producer's end, made here and used only by its thread.
  std::unique_ptr<net::Socket> out = MustOpen(
      net::Socket::Connect(ctx, net::SocketType::kPair, "inproc://relay-back", deep));
  // The clock starts before the producer does: chunks it encodes and queues while the relay
  // thread starts are part of the measured work (waferd's clock runs over all of its work too).
  const double t0 = NowS();
  std::thread producer([&] {
    std::vector<uint32_t> tokens(tokens_per_chunk, 1234);
    for (uint64_t i = 0; i < chunks; ++i) {
      host::TokenChunk c{1 + i % jobs, static_cast<uint32_t>(i / jobs), 0, tokens, ""};
      const std::string bytes = host::EncodeJob(c);
      if (!SendWhenReady(*out, [&] { return out->Send(net::AsBytes(bytes)); })) return;
    }
  });
  std::thread relay([&] {
    for (uint64_t i = 0; i < chunks; ++i) {
      Result<net::Message> m = back->Receive(kReplyWaitMs);
      if (!m.ok()) return;
      if (!SendWhenReady(*front, [&] { return net::SendToPeer(*front, client_id, m->frame(0)); })) {
        return;
      }
    }
  });
  uint64_t received = 0;
  for (uint64_t i = 0; i < chunks; ++i) {
    Result<net::Message> m = client->Receive(kReplyWaitMs);
    if (!m.ok()) break;
    // The client decodes, as it does for waferd.
    HostResult<JobMessage> decoded = host::DecodeJob(m->frame(0));
    if (decoded.ok()) received += std::get<host::TokenChunk>(*decoded).tokens.size();
  }
  double elapsed = NowS() - t0;
  producer.join();
  relay.join();
  return static_cast<double>(received) / elapsed;
}

// (s) 256 submitters at once, each on its own connection with one submit outstanding: sends
// `total` submits and returns accepted jobs per second (0 when a reply did not come).
double AcceptedPerSecond(const std::string& endpoint, int submitters, int total) {
  zmq::context_t ctx(1);
  std::vector<std::unique_ptr<net::Socket>> sockets;
  for (int i = 0; i < submitters; ++i) {
    sockets.push_back(MustOpen(
        net::Socket::Connect(ctx, net::SocketType::kDealer, endpoint, {})));
  }
  std::vector<int> outstanding(submitters, -1);  // The submit each socket waits for.
  int sent = 0, accepted = 0;
  const double t0 = NowS();
  auto send_next = [&](int k) {
    if (sent >= total) return true;
    const std::string bytes = EncodedSubmit(sent);
    outstanding[k] = sent++;
    return SendWhenReady(*sockets[k], [&] { return sockets[k]->Send(net::AsBytes(bytes)); });
  };
  for (int k = 0; k < submitters; ++k) {
    if (!send_next(k)) return 0;
  }
  std::vector<zmq::pollitem_t> items;
  for (auto& s : sockets) items.push_back({s->handle(), 0, ZMQ_POLLIN, 0});
  while (accepted < total) {
    if (zmq::poll(items.data(), items.size(), std::chrono::milliseconds(kReplyWaitMs)) == 0) {
      return 0;
    }
    for (int k = 0; k < submitters; ++k) {
      if (!(items[k].revents & ZMQ_POLLIN)) continue;
      while (true) {
        Result<net::Message> m = sockets[k]->Receive(0);
        if (!m.ok()) break;
        HostResult<JobMessage> result = host::DecodeJob(m->frame(0));
        if (!result.ok()) return 0;
        const JobMessage& decoded = *result;
        if (outstanding[k] >= 0 && AcceptsSubmit(outstanding[k], decoded)) {
          if (!std::holds_alternative<host::JobAccepted>(decoded)) return 0;
          ++accepted;
          outstanding[k] = -1;
          if (!send_next(k)) return 0;
        }
      }
    }
  }
  return accepted / (NowS() - t0);
}

// (s) baseline: `bytes` bytes written and made durable (fdatasync) `records` times to a file
// in `dir`, `batch` records per fdatasync (1: each its own). Returns the p50 and p99 time of
// one durable write in us, and records per second overall.
struct RawFsync {
  Latency latency;
  double records_per_s = 0;
};
RawFsync RawFsyncWrites(const std::string& dir, size_t bytes, int records, int batch) {
  const std::string path = dir + "/raw-fsync";
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return {};
  const std::string record(bytes, 'r');
  std::vector<double> samples;
  const double start = NowS();
  for (int done = 0; done < records; done += batch) {
    const double t0 = NowS();
    for (int i = 0; i < batch; ++i) {
      if (write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size())) break;
    }
    fdatasync(fd);
    samples.push_back((NowS() - t0) * 1e6);
  }
  const double elapsed = NowS() - start;
  close(fd);
  unlink(path.c_str());
  return {{Quantile(samples, 0.5), Quantile(samples, 0.99)}, records / elapsed};
}

const char* Verdict(bool ok) { return ok ? "MET" : "MISSED"; }

// (b) at one decode_tokens_per_step: waferd streaming `jobs` jobs against the raw relay carrying
// the same number of tokens in TokenChunks of that many tokens.
struct Stream {
  bool ok = false;
  uint32_t tokens_per_step = 0;
  double waferd = 0, raw = 0, device_per_user = 0;
};
Stream StreamFigures(const WaferdProcess& waferd, uint32_t jobs, uint32_t slots,
                     uint32_t max_tokens, uint32_t tokens_per_step) {
  Stream f;
  f.tokens_per_step = tokens_per_step;
  LoadReport report;
  if (!StreamShapeJobs(waferd, jobs, slots, max_tokens, &report)) return f;
  f.waferd = report.tokens_per_s();
  f.raw = RawRelayTokensPerSecond(report.tokens, tokens_per_step, slots);
  f.device_per_user = Quantile(report.device_tokens_per_s, 0.5);
  f.ok = f.raw > 0;
  return f;
}

// `waferctl model plan`'s decode rate per user for the model of `config_json` over `boards`
// wse3 boards (pack placement, as waferd's default) at the benchmarks' tokens per Step, or 0
// when it could not be run.
double PlannedDecodePerUser(const std::string& bin, const std::string& config_json,
                            uint32_t boards, uint32_t slots, uint32_t context,
                            uint32_t prompt_tokens) {
  const std::string cmd = bin + "/waferctl model plan --config " + config_json +
                          " --preset wse3 --boards " + std::to_string(boards) + " --slots " +
                          std::to_string(slots) + " --context " + std::to_string(context) +
                          " --prompt-tokens " + std::to_string(prompt_tokens) +
                          " --tokens-per-step " + std::to_string(kThroughputTokens) +
                          " --pack --json";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return 0;
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  if (pclose(pipe) != 0) {
    std::fprintf(stderr, "waferd-bench: %s failed:\n%s\n", cmd.c_str(), out.c_str());
    return 0;
  }
  const nlohmann::json plan = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (!plan.is_object() || !plan.contains("decode")) return 0;
  return plan["decode"].value("tokens_per_s_per_user", 0.0);
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--bin" && i + 1 < argc) o.bin = argv[++i];
    else if (a == "--quick") o.quick = true;
    else if (a == "--only" && i + 1 < argc) o.only = argv[++i];
    else {
      std::fprintf(stderr, "usage: waferd-bench [--bin DIR] [--quick] [--only SECTIONS]\n"
                           "  --only acbdsf: run only these sections ((a) with (c), (a) under load "
                           "with (b), (d), (s), (f) scheduling)\n");
      return 2;
    }
  }
  char tmpl[] = "/tmp/waferd-bench-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const int rtt_iterations = o.quick ? 500 : 3000;

  std::printf("waferd-bench: waferd is a separate process with an embedded wse3 board and a\n"
              "shape-only model (config.json alone: synthetic tokens, modeled timing, no pacing):\n"
              "Llama 3.1 8B's shape for (a) and (c), Llama 3.2 1B's for (b) and (d); (f) paces\n"
              "the 8B shape in real time.\n\n");
  if (o.Runs('a') || o.Runs('c')) {
    auto started = WaferdProcess::Start(Daemon(o, dir, kLlama8B, 64, 1024));
    if (!Started(started)) return 1;
    WaferdProcess& waferd = **started;
    const double idle_rss = waferd.RssMb();
    const size_t bytes = EncodedSubmit(0).size();
    // Each submit's job runs to its end before the next: the daemon is idle at every submit.
    Latency w = DaemonRoundTrip(waferd.job_endpoint(), rtt_iterations, EncodedSubmit, AnyReply,
                                [](int, const JobMessage& m) {
                                  return std::holds_alternative<host::JobFinished>(m) ||
                                         std::holds_alternative<host::JobRejected>(m);
                                });
    // The same exchange without a job behind it: how much of (a) is the job's own work (its
    // step starts on the board while the reply is in flight) rather than the front end.
    Latency q = DaemonRoundTrip(
        waferd.job_endpoint(), rtt_iterations,
        [](int i) { return host::EncodeJob(host::CapacityQuery{static_cast<uint64_t>(i)}); },
        AnyReply, AnyReply);
    Latency raw = RawEchoRoundTrip(rtt_iterations, bytes);
    const double r50 = w.p50_us / raw.p50_us, r99 = w.p99_us / raw.p99_us;
    std::printf("(a) submit -> accepted round trip, %d submits of %zu bytes\n", rtt_iterations, bytes);
    std::printf("    %-22s p50 %8.1f us   p99 %8.1f us\n", "waferd", w.p50_us, w.p99_us);
    std::printf("    %-22s p50 %8.1f us   p99 %8.1f us\n", "raw DEALER/ROUTER echo", raw.p50_us, raw.p99_us);
    std::printf("    %-22s p50 %8.1f us   p99 %8.1f us   (%.2fx / %.2fx raw; no job started)\n",
                "waferd capacity query", q.p50_us, q.p99_us, q.p50_us / raw.p50_us, q.p99_us / raw.p99_us);
    std::printf("    ratio                  p50 %8.2fx        p99 %8.2fx   (target <= 1.5x / 2x: %s / %s)\n\n",
                r50, r99, Verdict(r50 <= 1.5), Verdict(r99 <= 2.0));

    // (c) memory with 1,000 queued jobs: 64 slots busy with long jobs, the rest wait.
    auto client = host::JobClient::Connect(waferd.job_endpoint());
    uint32_t sent = 0, accepted = 0, refused = 0;
    std::string why;
    while (accepted + refused < 1064) {
      // The DEALER queues 1,000 messages at most: send while it takes them, then read replies.
      while (sent < 1064 && (*client)->Send(BenchJob(1000)).ok()) ++sent;
      JobMessage m;
      if (!(*client)->Receive(&m, 10000).ok()) break;
      if (std::holds_alternative<host::JobAccepted>(m)) ++accepted;
      if (auto* r = std::get_if<host::JobRejected>(&m)) {
        ++refused;
        why = r->detail;
      }
      if (auto* e = std::get_if<host::ErrorReply>(&m)) {
        ++refused;
        why = e->detail;
      }
    }
    if (refused > 0) std::printf("    (%u submissions refused: %s)\n", refused, why.c_str());
    const double queued_rss = waferd.RssMb();
    std::printf("(c) waferd resident memory (VmRSS)\n");
    std::printf("    idle, model loaded     %8.1f MB   (target < 50 MB: %s)\n", idle_rss, Verdict(idle_rss < 50));
    std::printf("    1,000 jobs queued      %8.1f MB   (target < 100 MB: %s; %u accepted, 64 of them running)\n\n",
                queued_rss, Verdict(queued_rss < 100), accepted);
  }
  std::vector<Stream> stream_figures;  // (b), at the default tokens per step and at 32.
  double stream_rss = 0;
  if (o.Runs('b')) {
    const uint32_t slots = 256, jobs = o.quick ? 512 : 4096, max_tokens = o.quick ? 500 : 1000;
    auto started = WaferdProcess::Start(Daemon(o, dir, kLlama1B, slots, 1024));
    if (!Started(started)) return 1;
    WaferdProcess& waferd = **started;
    {
      // (a) again while streams run: a cluster scheduler submits to a busy daemon. The load is
      // a run long enough (about a second at (b)'s rate) to outlast the probes, which start as
      // soon as it is under way; the raw echo is measured under the same load (its threads
      // share the cores with the streams). If the load ended first, that is printed as a miss.
      LoadReport load;
      std::atomic<bool> loading{true};
      bool loaded = false;
      std::thread stream([&] {
        loaded = StreamShapeJobs(waferd, o.quick ? 8000 : 20000, slots, max_tokens, &load);
        loading = false;
      });
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const int probes = o.quick ? 200 : 1000;
      // Timed to its own JobAccepted; the streams of earlier probes' jobs are read and skipped.
      const Latency busy = DaemonRoundTrip(waferd.job_endpoint(), probes, EncodedSubmit,
                                           AcceptsSubmit, AcceptsSubmit);
      const Latency busy_raw = RawEchoRoundTrip(probes, EncodedSubmit(0).size());
      const bool under_load = loading.load();
      stream.join();
      if (!loaded) return 1;
      const double b50 = busy.p50_us / busy_raw.p50_us, b99 = busy.p99_us / busy_raw.p99_us;
      std::printf("(a) under load: submit -> accepted while %u streams run (%d submits, 1B shape)\n",
                  slots, probes);
      std::printf("    %-22s p50 %8.1f us   p99 %8.1f us\n", "waferd", busy.p50_us, busy.p99_us);
      std::printf("    %-22s p50 %8.1f us   p99 %8.1f us\n", "raw echo, same load",
                  busy_raw.p50_us, busy_raw.p99_us);
      if (under_load) {
        std::printf("    ratio                  p50 %8.2fx        p99 %8.2fx   (target <= 1.5x / 2x: %s / %s)\n\n",
                    b50, b99, Verdict(b50 <= 1.5), Verdict(b99 <= 2.0));
      } else {
        std::printf("    MISSED: the load ended before the probes did; not a measurement under load\n\n");
      }
    }
    stream_figures.push_back(StreamFigures(waferd, jobs, slots, max_tokens, kThroughputTokens));
    stream_rss = waferd.RssMb();
  }
  if (o.Runs('b')) {
    // (b) again at waferd's default decode_tokens_per_step, in a fresh daemon: a quarter of the
    // tokens per Step and per TokenChunk, so four times the messages per token on both sides.
    const uint32_t slots = 256, jobs = o.quick ? 512 : 4096, max_tokens = o.quick ? 500 : 1000;
    const uint32_t tokens = host::DaemonConfig{}.decode_tokens_per_step;
    WaferdOptions options = Daemon(o, dir, kLlama1B, slots, 1024);
    options.scheduler_yaml = ThroughputSchedulerYaml(0);
    auto started = WaferdProcess::Start(options);
    if (!Started(started)) return 1;
    WaferdProcess& waferd = **started;
    stream_figures.insert(stream_figures.begin(),
                          StreamFigures(waferd, jobs, slots, max_tokens, tokens));
    for (const Stream& f : stream_figures) {
      if (!f.ok) return 1;
      std::printf("(b) token streaming, %u jobs x %u tokens, %u in flight, decode_tokens_per_step "
                  "%u%s (as many tokens per TokenChunk)\n",
                  jobs, max_tokens, slots, f.tokens_per_step,
                  f.tokens_per_step == tokens ? " (waferd's default)" : "");
      std::printf("    %-22s %12.0f tokens/s   (target >= 2,000,000: %s)\n", "waferd", f.waferd,
                  Verdict(f.waferd >= 2e6));
      std::printf("    %-22s %12.0f tokens/s\n", "raw ZeroMQ relay", f.raw);
      std::printf("    ratio                  %12.2fx          (target >= 0.5x: %s)\n",
                  f.waferd / f.raw, Verdict(f.waferd / f.raw >= 0.5));
      std::printf("    modeled device decode  %12.0f tokens/s per user (p50, wse3, 1B shape)\n",
                  f.device_per_user);
    }
    std::printf("    waferd VmRSS after the run at %u %11.1f MB (finished jobs kept for "
                "ResumeStream)\n\n",
                kThroughputTokens, stream_rss);
  }
  if (o.Runs('d')) {
    // (d) A model split over boards against the same model on one board, each in a daemon of
    // its own. "board to board" (pipeline_handoff: direct): the first board runs each Step's
    // tokens through both boards, handing hidden states over the inter-wafer link, micro-batches
    // overlapping the stages. "relayed by waferd" (host): each Step is one token's pass, its
    // hidden states going through the step loop: the way split models ran before.
    const uint32_t slots = 64, jobs = o.quick ? 128 : 256, max_tokens = o.quick ? 200 : 400;
    struct Split {
      const char* label;
      uint32_t boards;
      const char* handoff;
      double rate = 0, device = 0;
    };
    Split runs[] = {{"one board", 1, "direct"},
                    {"split, board to board", 2, "direct"},
                    {"split, relayed by waferd", 2, "host"}};
    for (Split& run : runs) {
      WaferdOptions w = Daemon(o, dir, kLlama1B, slots, 1024, run.boards);
      w.extra_yaml = std::string("pipeline_handoff: ") + run.handoff + "\n";
      auto started = WaferdProcess::Start(w);
      if (!Started(started)) return 1;
      WaferdProcess& waferd = **started;
      LoadReport report;
      if (!StreamShapeJobs(waferd, jobs, slots, max_tokens, &report)) return 1;
      run.rate = report.tokens_per_s();
      run.device = Quantile(report.device_tokens_per_s, 0.5);
    }
    std::printf("(d) a model split over 2 boards, %u jobs x %u tokens, %u in flight (1B shape, wse3)\n",
                jobs, max_tokens, slots);
    for (const Split& run : runs) {
      std::printf("    %-26s %10.0f tokens/s   modeled %8.0f tokens/s per user\n", run.label,
                  run.rate, run.device);
    }
    const double host = runs[1].rate / runs[0].rate, user = runs[1].device / runs[0].device;
    std::printf("    board to board / one board  %6.2fx host throughput (target >= 0.5x: %s)\n",
                host, Verdict(host >= 0.5));
    std::printf("                                %6.2fx modeled per user (target >= 0.75x, within "
                "25%%: %s)\n", user, Verdict(user >= 0.75));
    std::printf("    relayed / one board         %6.2fx host throughput, %.2fx modeled per user\n",
                runs[2].rate / runs[0].rate, runs[2].device / runs[0].device);

    // 70B over four wse3 boards: the daemon's modeled per-user rate beside `waferctl model
    // plan`'s for the same model, boards, slots and placement (pack), at the jobs' mean context.
    const uint32_t big_slots = 16, big_jobs = o.quick ? 32 : 64, big_tokens = 200;
    WaferdOptions w = Daemon(o, dir, kLlama70B, big_slots, 1024, 4);
    double served = 0;
    {
      auto started = WaferdProcess::Start(w);
      if (!Started(started)) return 1;
      WaferdProcess& waferd = **started;
      LoadReport report;
      if (!StreamShapeJobs(waferd, big_jobs, big_slots, big_tokens, &report)) return 1;
      served = Quantile(report.device_tokens_per_s, 0.5);
    }
    const uint32_t mean_context = 8 + big_tokens / 2;
    const double planned = PlannedDecodePerUser(o.bin, dir + "/config.json", 4, big_slots, 1024,
                                                mean_context);
    std::printf("    70B over 4 wse3 boards, %u jobs x %u tokens, %u in flight (board to board)\n",
                big_jobs, big_tokens, big_slots);
    std::printf("    %-26s %10.0f tokens/s per user (modeled, p50)\n", "waferd", served);
    std::printf("    %-26s %10.0f tokens/s per user (decode at context %u, --pack, "
                "--tokens-per-step %u)\n", "waferctl model plan", planned, mean_context,
                kThroughputTokens);
    const double agree = planned > 0 ? served / planned : 0;
    std::printf("    ratio                       %6.2fx          (target within 10%%: %s)\n\n",
                agree, Verdict(agree >= 0.9 && agree <= 1.1));
  }
  if (o.Runs('s')) {
    // (s) The durable store's cost, each configuration in a fresh daemon with a fresh store.
    const int one = o.quick ? 300 : 1000, many = o.quick ? 4000 : 20000;
    const uint32_t stream_jobs = o.quick ? 256 : 512, stream_tokens = o.quick ? 250 : 500;
    struct Figures {
      Latency one;
      double many_per_s = 0;
      double stream_tokens_per_s = 0;
    } on, off;
    int run = 0;
    for (Figures* f : {&on, &off}) {
      const std::string store = f == &on ? dir + "/jobs-" + std::to_string(run++) + ".db" : "memory";
      {
        auto started = WaferdProcess::Start(Daemon(o, dir, kLlama1B, 256, 1024, 1, store));
        if (!Started(started)) return 1;
        WaferdProcess& waferd = **started;
        f->one = DaemonRoundTrip(waferd.job_endpoint(), one, EncodedSubmit, AcceptsSubmit,
                                 AcceptsSubmit);
      }
      {
        auto started = WaferdProcess::Start(
            Daemon(o, dir, kLlama1B, 256, 1024, 1, store + (f == &on ? "-256" : "")));
        if (!Started(started)) return 1;
        WaferdProcess& waferd = **started;
        f->many_per_s = AcceptedPerSecond(waferd.job_endpoint(), 256, many);
      }
      {
        auto started = WaferdProcess::Start(
            Daemon(o, dir, kLlama1B, 256, 1024, 1, store + (f == &on ? "-stream" : "")));
        if (!Started(started)) return 1;
        WaferdProcess& waferd = **started;
        LoadReport report;
        if (!StreamShapeJobs(waferd, stream_jobs, 256, stream_tokens, &report)) return 1;
        f->stream_tokens_per_s = report.tokens_per_s();
      }
    }
    const size_t bytes = EncodedSubmit(0).size();
    const RawFsync raw_one = RawFsyncWrites(dir, bytes, one, 1);
    const RawFsync raw_many = RawFsyncWrites(dir, bytes, many, 256);
    std::printf("(s) the durable job store (SQLite WAL, fsync per commit) on the disk of %s\n",
                dir.c_str());
    std::printf("    1 submitter, submit -> accepted (%d submits of %zu bytes)\n", one, bytes);
    std::printf("    %-22s p50 %8.1f us   p99 %8.1f us\n", "store on", on.one.p50_us, on.one.p99_us);
    std::printf("    %-22s p50 %8.1f us   p99 %8.1f us\n", "store off", off.one.p50_us,
                off.one.p99_us);
    std::printf("    %-22s p50 %8.1f us   p99 %8.1f us\n", "raw write + fdatasync",
                raw_one.latency.p50_us, raw_one.latency.p99_us);
    const double one_ratio = on.one.p50_us / raw_one.latency.p50_us;
    std::printf("    ratio on / raw fsync   p50 %8.2fx                       (target <= 1.5x: %s)\n",
                one_ratio, Verdict(one_ratio <= 1.5));
    std::printf("    256 submitters, %d submits\n", many);
    std::printf("    %-22s %12.0f accepted/s\n", "store on", on.many_per_s);
    std::printf("    %-22s %12.0f accepted/s\n", "store off", off.many_per_s);
    std::printf("    %-22s %12.0f records/s (256 per fdatasync)\n", "raw write + fdatasync",
                raw_many.records_per_s);
    const double many_ratio = off.many_per_s > 0 ? on.many_per_s / off.many_per_s : 0;
    std::printf("    ratio on / off         %12.2fx          (target >= 0.5x: %s)\n", many_ratio,
                Verdict(many_ratio >= 0.5));
    std::printf("    token streaming, %u jobs x %u tokens, 256 in flight (every chunk durable before "
                "it is sent)\n", stream_jobs, stream_tokens);
    std::printf("    %-22s %12.0f tokens/s\n", "store on", on.stream_tokens_per_s);
    std::printf("    %-22s %12.0f tokens/s\n", "store off", off.stream_tokens_per_s);
    std::printf("    ratio on / off         %12.2fx\n\n",
                off.stream_tokens_per_s > 0 ? on.stream_tokens_per_s / off.stream_tokens_per_s
                                            : 0);
  }
  if (o.Runs('f')) {
    SchedBenchOptions sched;
    sched.bin_dir = o.bin;
    sched.dir = dir;
    sched.quick = o.quick;
    if (!RunSchedulingBench(sched)) return 1;
  }
  std::string rm = "rm -rf " + dir;
  return std::system(rm.c_str()) == 0 ? 0 : 0;
}

}  // namespace
}  // namespace wafer::bench

int main(int argc, char** argv) { return wafer::bench::Main(argc, argv); }

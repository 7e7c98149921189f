// waferd: the parts (front ends, job table, scheduler, model manager, boards, loader) wired
// together, and the poll loop that drives them on one thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <zmq.hpp>

#include "common/clock.h"
#include "common/error.h"
#include "host/boards/board_link_factory.h"
#include "host/config/daemon_config.h"
#include "host/frontend/admin_frontend.h"
#include "host/jobs/job_store.h"

namespace wafer::host {

struct DaemonParts;

// Thread-compatible: construct, then Run() on one thread. RequestStop() is thread-safe and
// async-signal-safe (it writes an eventfd).
class Daemon {
 public:
  // Opens the job store, binds the sockets and the metrics endpoint, starts the loader and the
  // board workers (each reaching its board through `link_factory`), queues the config's model
  // loads and the store's (stored loads, unfinished jobs). Each Error's message says what failed
  // and where: the socket and endpoint that could not be bound and libzmq's reason ("cannot bind
  // the job endpoint: cannot bind ROUTER to tcp://127.0.0.1:7421: Address already in use"), the
  // file, the key.
  //
  // Returns:
  //   OK                  - the daemon, ready to Run().
  //   INVALID_ARGUMENT    - a bad config: an unknown scheduler policy, an endpoint reachable
  //                         from other hosts without CURVE, a secret key or auth file that is
  //                         readable by others or malformed.
  //   NOT_FOUND           - the secret key, metrics auth or audit log file cannot be read or
  //                         opened.
  //   UNAVAILABLE         - an endpoint (job, admin, metrics, an internal channel) could not be
  //                         bound, or the store cannot be opened or is in use.
  //   DATA_LOSS           - the store is damaged.
  //   FAILED_PRECONDITION - the store was written by a newer waferd.
  //   INTERNAL            - an eventfd could not be made.
  // REQUIRES: `context` and `clock` outlive the daemon; embedded boards are already listening
  // on their inproc:// endpoints in `context`.
  static HostResult<std::unique_ptr<Daemon>> Create(zmq::context_t& context,
                                                    const DaemonConfig& config, const Clock& clock,
                                                    BoardLinkFactory link_factory);
  ~Daemon();

  // Serves until RequestStop(), then drains: no new jobs, accepted ones run to completion (up to
  // drain_timeout_ms), then returns. Jobs still unfinished then stay in a durable store for the
  // next start; with store.path memory they are cancelled.
  void Run();
  void RequestStop();
  // Re-reads the client allowlist and the server's CURVE secret key file through the source
  // given here (waferd: the config file) at the next turn of the loop; a new server key rebinds
  // the job and admin sockets (clients of the old public key are cut off). RequestReload is
  // async-signal-safe (it writes an eventfd); without a source set it does nothing.
  // set_config_source is thread-safe. The source returns the configuration read afresh, or the
  // Error that the audit log records (the running allowlist and key then stay).
  void RequestReload();
  void set_config_source(std::function<HostResult<DaemonConfig>()> source);

  // The endpoints actually bound (a "tcp://127.0.0.1:*" config gets its real port here). Fixed
  // after Create, key reloads included: safe to read from any thread while Run() runs.
  const std::string& job_endpoint() const;
  const std::string& admin_endpoint() const;
  int metrics_port() const;

 private:
  Daemon(zmq::context_t& context, const DaemonConfig& config, const Clock& clock);
  void OnWorkerEvent(Board& board, WorkerEvent& event);
  void OnBoardUpdate(Board& board, const BoardUpdate& update);
  // The board is ready again (booted, or a reset done): its lost models reload, and the health
  // monitor judges the reset that brought it back.
  void BoardBack(Board& board);
  // True when the drain at shutdown is over (idle, or its time is up: the rest is cancelled).
  bool ShutdownDrained();
  void Reload();
  // A new server secret key in the (re-read) config: both sockets are bound again with it.
  void ReloadServerKey(const SecurityConfig& fresh);
  // After a restart: the stored model loads start again and the stored unfinished jobs queue.
  void Recover();
  // Adds what the job store did this turn to /metrics.
  void ExportStoreStats();
  // Counts the queued jobs per model, class and tenant, and each replica's running jobs and
  // slots, for /metrics, every kSchedulerGaugesPeriodNs at most.
  void ExportSchedulerGauges();
  static constexpr int64_t kSchedulerGaugesPeriodNs = 250'000'000;

  zmq::context_t& context_;
  const DaemonConfig config_;
  const Clock& clock_;
  int stop_fd_ = -1;
  int reload_fd_ = -1;
  std::mutex source_mu_;
  std::function<HostResult<DaemonConfig>()> config_source_;  // Guarded by source_mu_.
  bool stopping_ = false;
  int64_t drain_deadline_ns_ = 0;
  JobStoreStats exported_store_stats_;  // What /metrics has been told so far.
  int64_t scheduler_gauges_exported_ns_ = 0;
  std::unique_ptr<DaemonParts> parts_;
  std::string server_secret_key_;  // The CURVE key the sockets are bound with (Z85), or "".
};

}  // namespace wafer::host

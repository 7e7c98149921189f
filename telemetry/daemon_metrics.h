// waferd's Prometheus metrics, registered once at startup and cached as references, and the
// HTTP exposer that serves them. Names follow wafer_<subsystem>_<what>_<unit>; labels are
// low-cardinality (model, reason, board, region, socket), never a job id.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "common/error.h"
#include "common/status.h"
#include "telemetry/board_signal_metrics.h"
#include "telemetry/health_metrics.h"
#include "telemetry/replica_metrics.h"
#include "telemetry/scheduler_metrics.h"

namespace prometheus {
class Exposer;
}

namespace wafer::telemetry {

// Per-model series, created when a model is registered.
struct ModelSeries {
  prometheus::Counter* submitted = nullptr;
  prometheus::Counter* tokens = nullptr;
  prometheus::Histogram* ttft = nullptr;
  prometheus::Histogram* inter_token = nullptr;
  prometheus::Histogram* queue_wait = nullptr;
};

// Per-board series.
struct BoardSeries {
  std::vector<prometheus::Gauge*> state;  // One-hot, indexed by state.
  prometheus::Gauge* max_temperature = nullptr;
  prometheus::Gauge* power = nullptr;
  prometheus::Gauge* sram_used = nullptr;
  prometheus::Gauge* sram_capacity = nullptr;
  prometheus::Counter* steps = nullptr;
  prometheus::Counter* device_seconds = nullptr;
  std::vector<prometheus::Gauge*> region_temperature;
  std::vector<prometheus::Gauge*> drained;  // 1 while the reason holds, indexed like the names.
};

// Updating a metric is thread-safe (prometheus-cpp metrics are atomic). Looking up or creating
// series (Model, Board, Finished, Rejected, Dropped) is not: only waferd's step loop does it.
// Returned references stay valid for the life of this object.
class DaemonMetrics {
 public:
  // The board states in the order of the one-hot `state` label values.
  static const std::vector<std::string>& BoardStateNames();
  // The drain reasons in the order of BoardSeries::drained (host::DrainReason's order).
  static const std::vector<std::string>& DrainReasonNames();

  DaemonMetrics();
  ~DaemonMetrics();

  // Starts serving /metrics on `address` ("127.0.0.1:0" picks a port), behind HTTP basic
  // authentication when `user` is not empty. Returns OK, or UNAVAILABLE (bind failed; the
  // message names the address and says why).
  HostStatus Serve(const std::string& address, const std::string& user,
                   const std::string& password);
  // The bound port, or 0 when not serving.
  int port() const { return port_; }

  ModelSeries& Model(const std::string& model);
  BoardSeries& Board(uint32_t board, size_t regions);
  prometheus::Counter& Finished(const std::string& model, const std::string& reason);
  prometheus::Counter& Rejected(const std::string& reason);
  prometheus::Counter& Dropped(const std::string& socket, const std::string& reason);
  // wafer_audit_events_total{event}. Create each event's series at startup (AuditLog does):
  // afterwards any thread may look it up and increment it.
  prometheus::Counter& Audit(const std::string& event);

  // wafer_build_info{version} = 1: which waferd an instance runs. Call once at startup.
  void SetBuildInfo(const std::string& version);

  prometheus::Gauge& queue_depth() { return *queue_depth_; }
  prometheus::Gauge& jobs_running() { return *jobs_running_; }
  prometheus::Counter& load_bytes() { return *load_bytes_; }
  // The job store (the daemon adds what its stats moved since the last turn).
  prometheus::Counter& store_commits() { return *store_commits_; }
  prometheus::Counter& store_fsyncs() { return *store_fsyncs_; }
  prometheus::Counter& store_fsync_seconds() { return *store_fsync_seconds_; }
  prometheus::Counter& store_write_failures() { return *store_write_failures_; }
  prometheus::Gauge& store_stalled() { return *store_stalled_; }
  prometheus::Gauge& replies_waiting() { return *replies_waiting_; }
  prometheus::Counter& jobs_recovered() { return *jobs_recovered_; }

  SchedulerMetrics& scheduler() { return *scheduler_; }
  ReplicaMetrics& replicas() { return *replicas_; }
  // ECC, link CRC, PEs, throttling, thermal trip and firmware per board; Board() creates a
  // board's series there too.
  BoardSignalMetrics& board_signals() { return *board_signals_; }
  HealthMetrics& health() { return *health_; }
  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;

  prometheus::Family<prometheus::Counter>* submitted_;
  prometheus::Family<prometheus::Counter>* finished_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Family<prometheus::Counter>* tokens_;
  prometheus::Family<prometheus::Counter>* dropped_;
  prometheus::Family<prometheus::Counter>* audit_;
  prometheus::Family<prometheus::Histogram>* ttft_;
  prometheus::Family<prometheus::Histogram>* inter_token_;
  prometheus::Family<prometheus::Histogram>* queue_wait_;
  prometheus::Family<prometheus::Gauge>* board_state_;
  prometheus::Family<prometheus::Gauge>* board_temp_;
  prometheus::Family<prometheus::Gauge>* region_temp_;
  prometheus::Family<prometheus::Gauge>* board_power_;
  prometheus::Family<prometheus::Gauge>* sram_used_;
  prometheus::Family<prometheus::Gauge>* sram_capacity_;
  prometheus::Family<prometheus::Gauge>* board_drained_;
  prometheus::Family<prometheus::Counter>* steps_;
  prometheus::Family<prometheus::Counter>* device_seconds_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* jobs_running_;
  prometheus::Counter* load_bytes_;
  prometheus::Counter* store_commits_;
  prometheus::Counter* store_fsyncs_;
  prometheus::Counter* store_fsync_seconds_;
  prometheus::Counter* store_write_failures_;
  prometheus::Gauge* store_stalled_;
  prometheus::Gauge* replies_waiting_;
  prometheus::Counter* jobs_recovered_;

  std::unique_ptr<SchedulerMetrics> scheduler_;
  std::unique_ptr<ReplicaMetrics> replicas_;
  std::unique_ptr<BoardSignalMetrics> board_signals_;
  std::unique_ptr<HealthMetrics> health_;
  std::map<std::string, ModelSeries> models_;
  std::map<uint32_t, BoardSeries> boards_;
};

}  // namespace wafer::telemetry

// Per-replica series: a model loaded as several replicas (copies on their own boards) is told
// apart by `board`, the first board of the replica (as `waferctl unload NAME --board N` names
// it). The per-model series (DaemonMetrics::Model) sum every replica of a name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace wafer::telemetry {

// What one replica holds now.
struct ReplicaState {
  std::string model;
  uint32_t board = 0;  // Its first board.
  uint32_t running = 0;
  uint32_t slots = 0;
  bool serving = false;  // Takes new jobs: loaded and none of its boards drained.
};

// Looking series up is not thread-safe (waferd's step loop only); updating one is.
class ReplicaMetrics {
 public:
  explicit ReplicaMetrics(prometheus::Registry& registry);

  // wafer_replica_tokens_total{model, board}. The reference stays valid until a SetReplicas
  // that leaves the replica out.
  prometheus::Counter& Tokens(const std::string& model, uint32_t board);
  // wafer_replica_jobs_running, wafer_replica_slots and wafer_replica_serving {model, board},
  // for exactly these replicas: the series of a replica absent from `replicas` (unloaded) are
  // removed, its tokens too.
  void SetReplicas(const std::vector<ReplicaState>& replicas);

 private:
  using Key = std::pair<std::string, uint32_t>;  // model, first board
  struct Series {
    prometheus::Counter* tokens = nullptr;
    prometheus::Gauge* running = nullptr;
    prometheus::Gauge* slots = nullptr;
    prometheus::Gauge* serving = nullptr;
  };
  Series& Find(const Key& key);

  prometheus::Family<prometheus::Counter>& tokens_;
  prometheus::Family<prometheus::Gauge>& running_;
  prometheus::Family<prometheus::Gauge>& slots_;
  prometheus::Family<prometheus::Gauge>& serving_;
  std::map<Key, Series> series_;
};

}  // namespace wafer::telemetry

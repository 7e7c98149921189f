#include "telemetry/replica_metrics.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

namespace wafer::telemetry {
namespace {

// Every sample of the registry as "name{model,board}" -> value.
std::map<std::string, double> Samples(prometheus::Registry& registry) {
  std::map<std::string, double> out;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    for (const prometheus::ClientMetric& m : family.metric) {
      std::string key = family.name + "{";
      for (const prometheus::ClientMetric::Label& l : m.label) key += l.value + ",";
      key.back() = '}';
      out[key] = family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return out;
}

TEST(ReplicaMetricsTest, EachReplicaHasItsSeriesAndAnUnloadedOneLosesThem) {
  prometheus::Registry registry;
  ReplicaMetrics metrics(registry);
  metrics.SetReplicas({{"m", 0, 3, 8, true}, {"m", 2, 1, 4, false}});
  metrics.Tokens("m", 0).Increment(10);
  metrics.Tokens("m", 2).Increment(4);
  std::map<std::string, double> s = Samples(registry);
  // Labels come sorted by name: board, then model.
  EXPECT_EQ(s.at("wafer_replica_jobs_running{0,m}"), 3);
  EXPECT_EQ(s.at("wafer_replica_slots{0,m}"), 8);
  EXPECT_EQ(s.at("wafer_replica_serving{0,m}"), 1);
  EXPECT_EQ(s.at("wafer_replica_tokens_total{0,m}"), 10);
  EXPECT_EQ(s.at("wafer_replica_jobs_running{2,m}"), 1);
  EXPECT_EQ(s.at("wafer_replica_serving{2,m}"), 0);
  EXPECT_EQ(s.at("wafer_replica_tokens_total{2,m}"), 4);
  EXPECT_EQ(s.size(), 8u);

  // The replica on board 2 is unloaded: its series go; the other's stay, tokens counted on.
  metrics.SetReplicas({{"m", 0, 0, 8, true}});
  metrics.Tokens("m", 0).Increment(1);
  s = Samples(registry);
  EXPECT_EQ(s.size(), 4u);
  EXPECT_EQ(s.count("wafer_replica_tokens_total{2,m}"), 0u);
  EXPECT_EQ(s.at("wafer_replica_jobs_running{0,m}"), 0);
  EXPECT_EQ(s.at("wafer_replica_tokens_total{0,m}"), 11);
}

}  // namespace
}  // namespace wafer::telemetry

#include "telemetry/replica_metrics.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include "telemetry/testing/registry_samples.h"

namespace wafer::telemetry {
namespace {

using testing::Samples;

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

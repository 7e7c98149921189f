#include "host/config/scheduling_config.h"

#include <gtest/gtest.h>

#include "host/config/daemon_config.h"

namespace wafer::host {
namespace {

TEST(SchedulingConfigTest, DefaultsRoundTripThroughTheDefaultYaml) {
  DaemonConfig c;
  c.scheduling.classes.clear();
  c.scheduling.preemption.min_run_ms = 1;
  HostResult<DaemonConfig> parsed = ParseDaemonConfig(DefaultConfigYaml());
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  c = std::move(parsed).value();
  const SchedulingConfig d;
  EXPECT_EQ(c.scheduler_policy, "fair");
  ASSERT_EQ(c.scheduling.classes.size(), d.classes.size());
  for (size_t i = 0; i < d.classes.size(); ++i) {
    EXPECT_EQ(c.scheduling.classes[i].name, d.classes[i].name);
    EXPECT_EQ(c.scheduling.classes[i].min_priority, d.classes[i].min_priority);
  }
  EXPECT_EQ(c.scheduling.preemption.min_run_ms, d.preemption.min_run_ms);
  EXPECT_EQ(c.scheduling.model_queue_limit, d.model_queue_limit);
  EXPECT_EQ(c.scheduling.output_token_cost, d.output_token_cost);
  EXPECT_TRUE(c.scheduling.tenants.empty());
}

TEST(SchedulingConfigTest, ReadsClassesTenantsAndPreemption) {
  const char* yaml = R"(
scheduler:
  policy: fifo
  model_queue_limit: 50
  classes:
    - {name: gold, min_priority: 128}
    - {name: rest, min_priority: 0}
  default_tenant: {weight: 2, max_class: rest, requests_per_minute: 60}
  tenants:
    - {name: acme, weight: 5, max_queued: 10, tokens_per_minute: 100000, shed_on_ttft_miss: true}
    - {name: free, max_class: rest, reject_above_max_class: true}
  preemption: {enabled: false, min_class_gap: 1, min_run_ms: 20}
)";
  DaemonConfig c;
  HostResult<DaemonConfig> parsed = ParseDaemonConfig(yaml);
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  c = std::move(parsed).value();
  const SchedulingConfig& s = c.scheduling;
  EXPECT_EQ(c.scheduler_policy, "fifo");
  EXPECT_EQ(s.model_queue_limit, 50u);
  EXPECT_EQ(s.ClassOf(255), 0u);
  EXPECT_EQ(s.ClassOf(128), 0u);
  EXPECT_EQ(s.ClassOf(127), 1u);
  EXPECT_FALSE(s.preemption.enabled);
  EXPECT_EQ(s.preemption.min_run_ms, 20u);

  const TenantConfig& acme = s.TenantNamed("acme");
  EXPECT_EQ(acme.weight, 5u);
  EXPECT_EQ(acme.max_queued, 10u);
  EXPECT_EQ(acme.tokens_per_minute, 100000u);
  EXPECT_TRUE(acme.shed_on_ttft_miss);
  bool above = false;
  EXPECT_EQ(s.ClassFor(200, acme, &above), 0u);  // No max_class: the top class.
  EXPECT_FALSE(above);

  const TenantConfig& stranger = s.TenantNamed("stranger");  // The default tenant's settings.
  EXPECT_EQ(&stranger, &s.default_tenant);
  EXPECT_EQ(stranger.weight, 2u);
  EXPECT_EQ(stranger.requests_per_minute, 60u);
  EXPECT_EQ(s.ClassFor(200, stranger, &above), 1u);  // Capped at max_class rest.
  EXPECT_TRUE(above);
  EXPECT_TRUE(s.TenantNamed("free").reject_above_max_class);
  EXPECT_EQ(s.MetricLabel("acme"), "acme");
  EXPECT_EQ(s.MetricLabel("stranger"), "other");
}

TEST(SchedulingConfigTest, ErrorsNameKeyAndLine) {
  struct BadCase {
    const char* yaml;
    const char* expect;
  };
  const BadCase cases[] = {
      {"scheduler:\n  classes: []\n", "scheduler.classes: must be a list of 1 to 16 classes"},
      {"scheduler:\n  classes:\n    - {name: a, min_priority: 5}\n",
       "the last class must have min_priority 0"},
      {"scheduler:\n  classes:\n    - {name: a, min_priority: 0}\n    - {name: b, min_priority: 9}\n",
       "line 4: scheduler.classes[1].min_priority: must be below the class before it"},
      {"scheduler:\n  classes:\n    - {name: a, min_priority: 9}\n    - {name: a, min_priority: 0}\n",
       "scheduler.classes[1].name: is used twice"},
      {"scheduler:\n  classes:\n    - {name: a}\n", "scheduler.classes[0].min_priority: is required"},
      {"scheduler:\n  classes:\n    - {name: a, min_priority: 300}\n",
       "must be between 0 and 255"},
      {"scheduler:\n  tenants:\n    - {name: x, weight: 0}\n",
       "line 3: scheduler.tenants[0].weight: must be between 1 and 1000"},
      {"scheduler:\n  tenants:\n    - {name: x, max_class: platinum}\n",
       "scheduler.tenants[0].max_class: names no class"},
      {"scheduler:\n  tenants:\n    - {name: x}\n    - {name: x}\n",
       "scheduler.tenants[1].name: is used twice"},
      {"scheduler:\n  tenants:\n    - {weight: 3}\n", "scheduler.tenants[0].name: is required"},
      {"scheduler:\n  tenants:\n    - {name: x, colour: red}\n",
       "scheduler.tenants[0].colour: unknown key"},
      {"scheduler:\n  default_tenant: {name: x}\n", "scheduler.default_tenant.name: unknown key"},
      {"scheduler:\n  default_tenant: {shed_on_ttft_miss: maybe}\n",
       "scheduler.default_tenant.shed_on_ttft_miss: must be true or false"},
      {"scheduler:\n  preemption: {min_class_gap: 0}\n",
       "scheduler.preemption.min_class_gap: must be between 1 and 16"},
      {"scheduler:\n  prompt_token_cost: 0\n  output_token_cost: 0\n", "may not both be 0"},
      {"scheduler:\n  policy: lottery\n", "unknown policy (known: fair, fifo)"},
  };
  for (const BadCase& bad : cases) {
    HostResult<DaemonConfig> parsed = ParseDaemonConfig(bad.yaml);
    EXPECT_FALSE(parsed.ok()) << bad.yaml;
    const std::string detail = parsed.ok() ? std::string() : parsed.error().message;
    EXPECT_NE(detail.find(bad.expect), std::string::npos) << bad.yaml << " -> " << detail;
  }
}

}  // namespace
}  // namespace wafer::host

#include "host/config/daemon_config.h"

#include <gtest/gtest.h>

namespace wafer::host {
namespace {

TEST(DaemonConfigTest, DefaultYamlParsesToDefaults) {
  DaemonConfig c;
  c.queue_limit = 1;
  HostResult<DaemonConfig> parsed = ParseDaemonConfig(DefaultConfigYaml());
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  c = std::move(parsed).value();
  DaemonConfig d;
  EXPECT_EQ(c.job_endpoint, d.job_endpoint);
  EXPECT_EQ(c.admin_endpoint, d.admin_endpoint);
  EXPECT_EQ(c.queue_limit, d.queue_limit);
  EXPECT_EQ(c.decode_tokens_per_step, d.decode_tokens_per_step);
  ASSERT_EQ(c.boards.size(), 1u);
  EXPECT_TRUE(c.boards[0].embedded());
  EXPECT_TRUE(c.models.empty());
}

TEST(DaemonConfigTest, EmptyFileMeansDefaults) {
  DaemonConfig c;
  HostResult<DaemonConfig> parsed = ParseDaemonConfig("");
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  c = std::move(parsed).value();
  EXPECT_EQ(c.max_batch, DaemonConfig{}.max_batch);
}

TEST(DaemonConfigTest, ReadsNestedValues) {
  DaemonConfig c;
  HostResult<DaemonConfig> parsed = ParseDaemonConfig(R"(
job_endpoint: ipc:///tmp/j
scheduler:
  max_batch: 32
boards:
  - endpoint: tcp://127.0.0.1:9000
  - endpoint: inproc://b1
    preset: mini
models:
  - path: /models/demo
    board: 1
    slots: 8
)");
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  c = std::move(parsed).value();
  EXPECT_EQ(c.job_endpoint, "ipc:///tmp/j");
  EXPECT_EQ(c.max_batch, 32u);
  ASSERT_EQ(c.boards.size(), 2u);
  EXPECT_FALSE(c.boards[0].embedded());
  EXPECT_TRUE(c.boards[1].embedded());
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].board, 1u);
  EXPECT_EQ(c.models[0].boards, std::vector<uint32_t>{1});
  EXPECT_EQ(c.models[0].slots, 8u);
}

TEST(DaemonConfigTest, ModelOverSeveralBoards) {
  DaemonConfig c;
  HostResult<DaemonConfig> parsed = ParseDaemonConfig(R"(
boards:
  - endpoint: inproc://b0
  - endpoint: inproc://b1
  - endpoint: inproc://b2
models:
  - path: /models/big
    boards: [2, 0]
)");
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  c = std::move(parsed).value();
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.models[0].boards, (std::vector<uint32_t>{2, 0}));
  EXPECT_EQ(c.models[0].board, 2u);
}

struct BadCase {
  const char* yaml;
  const char* expect;  // Substring of the detail.
};

TEST(DaemonConfigTest, ErrorsNameKeyAndLine) {
  const BadCase cases[] = {
      {"job_endpoint: tcp://a:1\nbogus: 1\n", "line 2: bogus: unknown key"},
      {"scheduler:\n  max_batch: lots\n", "line 2: scheduler.max_batch: must be a non-negative integer"},
      {"scheduler:\n  max_batch: 0\n", "line 2: scheduler.max_batch: must be between 1 and 4096"},
      {"scheduler:\n  queue_limit: -5\n", "scheduler.queue_limit: must be a non-negative integer"},
      {"scheduler:\n  typo_key: 3\n", "line 2: scheduler.typo_key: unknown key"},
      {"scheduler:\n  policy: random\n", "scheduler.policy: unknown policy"},
      {"boards:\n  - endpoint: http://x\n", "boards[0].endpoint: must start with"},
      {"boards: []\n", "boards: must be a non-empty list"},
      {"boards:\n  - endpoint: inproc://a\n    colour: red\n", "line 3: boards[0].colour: unknown key"},
      {"models:\n  - name: x\n", "models[0].path: is required"},
      {"boards:\n  - endpoint: inproc://a\n    pacing: warp\n", "line 3: boards[0].pacing: must be realtime or fast"},
      {"models:\n  - path: /m\n    board: 3\n", "board 3 is not configured"},
      {"models:\n  - path: /m\n    boards: [0, 3]\n", "board 3 is not configured"},
      {"models:\n  - path: /m\n    boards: [0, 0]\n", "line 3: models[0].boards: board 0 is listed twice"},
      {"models:\n  - path: /m\n    boards: []\n", "models[0].boards: must be a non-empty list"},
      {"models:\n  - path: /m\n    boards: [a]\n", "models[0].boards: entries must be integers"},
      {"models:\n  - path: /m\n    board: 0\n    boards: [0]\n", "give either board or boards"},
      {"job_endpoint: [1, 2]\n", "line 1: job_endpoint: must be a string"},
      {"placement: tight\n", "line 1: placement: must be pack or spread"},
      {"job_endpoint: tcp://a:1\nadmin_endpoint: tcp://a:1\n", "must differ"},
      {"scheduler: {max_batch: 3\n", "YAML syntax"},
  };
  for (const BadCase& bad : cases) {
    HostResult<DaemonConfig> parsed = ParseDaemonConfig(bad.yaml);
    EXPECT_EQ(parsed.code(), StatusCode::kInvalidArgument) << bad.yaml;
    const std::string detail = parsed.ok() ? std::string() : parsed.error().message;
    EXPECT_NE(detail.find(bad.expect), std::string::npos) << bad.yaml << " -> " << detail;
  }
}

TEST(DaemonConfigTest, MissingFileIsNotFound) {
  HostResult<DaemonConfig> loaded = LoadDaemonConfig("/nonexistent/waferd.yaml");
  EXPECT_EQ(loaded.code(), StatusCode::kNotFound);
  const std::string detail = loaded.ok() ? std::string() : loaded.error().message;
  EXPECT_NE(detail.find("/nonexistent/waferd.yaml"), std::string::npos);
}

}  // namespace
}  // namespace wafer::host

// The Grafana dashboards (grafana/dashboards/waferd.json and waferd-board-health.json) against
// the real thing: a real Prometheus scrapes a waferd (that has run jobs, for the fleet
// dashboard), every template variable's label_values() query finds its values, and every panel
// query, with the variables substituted, succeeds and returns data whose labels its legend
// names. Renaming a metric or a label in telemetry/ fails here.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/daemon_harness.h"
#include "tests/http_get.h"
#include "tests/prometheus_server.h"

namespace wafer::testing {
namespace {

using namespace wafer::host;
using nlohmann::json;

// What $__rate_interval becomes. Grafana makes it at least 4 scrape intervals (4 s here); 30 s
// covers the whole life of this test's Prometheus, so every rate() spans the jobs below.
constexpr char kRateInterval[] = "30s";

std::string DashboardPath(const std::string& name) {
  return WAFER_GRAFANA_DIR "/dashboards/" + name;
}

// A panel query: where it comes from and what it asks.
struct Target {
  std::string panel;
  std::string expr;
  std::string legend;
};

// Every target of every panel, rows' nested panels included. Each non-row panel must have at
// least one target with an `expr` and use the dashboard's datasource variable.
std::vector<Target> PanelTargets(const json& dashboard) {
  std::vector<Target> out;
  std::set<int> ids;
  std::function<void(const json&)> walk = [&](const json& panels) {
    for (const json& p : panels) {
      const std::string title = p.value("title", "?");
      EXPECT_TRUE(ids.insert(p.value("id", -1)).second) << "duplicate panel id: " << title;
      EXPECT_TRUE(p.contains("gridPos")) << title;
      for (const char* key : {"h", "w", "x", "y"}) {
        EXPECT_TRUE(p.value("gridPos", json::object()).value(key, json()).is_number_integer())
            << title << ": gridPos." << key;
      }
      if (p.value("type", "") == "row") {
        if (p.contains("panels")) walk(p["panels"]);
        continue;
      }
      EXPECT_EQ(p.value("datasource", json::object()).value("uid", ""), "${DS_PROMETHEUS}")
          << title;
      ASSERT_TRUE(p.contains("targets") && !p["targets"].empty()) << title;
      for (const json& t : p["targets"]) {
        ASSERT_TRUE(t.contains("expr")) << title;
        out.push_back({title, t["expr"].get<std::string>(), t.value("legendFormat", "")});
      }
    }
  };
  walk(dashboard.at("panels"));
  return out;
}

// Grafana's escaping of one value of a multi-value variable inside a PromQL regex matcher
// (`=~"$x"`): regex metacharacters get a backslash, written `\\` in a PromQL string.
std::string RegexEscape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (std::string_view("\\^$*+?.()|{}[]").find(c) != std::string_view::npos) out += "\\\\";
    out += c;
  }
  return out;
}

// Replaces $__rate_interval and $name / ${name} for every variable in `values`. Longer names
// first, so that `$board` never eats part of `$boards`.
std::string Substitute(std::string text, const std::map<std::string, std::string>& values) {
  std::vector<std::pair<std::string, std::string>> all(values.begin(), values.end());
  all.emplace_back("__rate_interval", kRateInterval);
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [name, value] : all) {
    for (const std::string& pattern : {"${" + name + "}", "$" + name}) {
      for (size_t at = text.find(pattern); at != std::string::npos;
           at = text.find(pattern, at + value.size())) {
        text.replace(at, pattern.size(), value);
      }
    }
  }
  return text;
}

class GrafanaDashboardTest : public ::testing::Test {
 protected:
  // GETs a Prometheus API path and parses the JSON; fails the test unless status is "success".
  json Api(const std::string& path) {
    int http_status = 0;
    const std::string body = prometheus_->Get(path, &http_status);
    json j = json::parse(body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << path << " -> HTTP " << http_status << ": " << body;
    if (j.is_discarded()) return json::object();
    EXPECT_EQ(j.value("status", ""), "success") << path << " -> " << body;
    return j;
  }
  // Runs an instant query; returns the result vector (empty on any failure).
  json Query(const std::string& expr) {
    json j = Api("/api/v1/query?query=" + UrlEncode(expr));
    if (!j.contains("data")) return json::array();
    EXPECT_EQ(j["data"].value("resultType", ""), "vector") << expr;
    return j["data"].value("result", json::array());
  }
  // The value of a one-sample query, or -1 (also while Prometheus is not listening yet).
  double Scalar(const std::string& expr) {
    json j = json::parse(prometheus_->Get("/api/v1/query?query=" + UrlEncode(expr)), nullptr,
                         false);
    if (j.is_discarded() || !j.contains("data")) return -1;
    const json& r = j["data"]["result"];
    return r.size() == 1 ? std::stod(r[0]["value"][1].get<std::string>()) : -1;
  }
  // Polls until `expr` reaches `at_least` (the first scrape lands after ~6 s); gives up after
  // 15 s.
  double WaitFor(const std::string& expr, double at_least) {
    double v = -1;
    for (int i = 0; i < 60 && v < at_least; ++i) {
      v = Scalar(expr);
      if (v < at_least) std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return v;
  }

  void CheckDashboard(const std::string& name,
                      const std::map<std::string, std::string>& expected);

  TempDir dir_;  // Declared first: outlives the Prometheus that writes its TSDB into it.
  std::unique_ptr<PrometheusServer> prometheus_;
};

// Makes waferd drop token messages: a client submits a long job and disconnects, so the job
// socket's sends to it fail (peer_gone). Returns whether /metrics shows a dropped-message
// series.
bool DropSomeMessages(DaemonHarness& h) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    {
      auto client = h.NewJobClient();
      SubmitJob j;
      j.model = "tiny";
      j.prompt_text = "gone";
      j.max_tokens = 900;  // ~50 ms of streaming on the embedded board.
      SubmitOutcome o;
      if (!client->Submit(j, &o, 30000).ok() || !o.accepted) return false;
    }  // The client closes here, mid-stream.
    for (int i = 0; i < 20; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (HttpGet(h.daemon().metrics_port(), "/metrics")
              .find("wafer_frontend_dropped_messages_total{") != std::string::npos) {
        return true;
      }
    }
  }
  return false;
}

// Checks the dashboard file `name` against the running Prometheus: its shape, each template
// variable offering `expected`'s value, and every panel query answering with finite data that
// has the labels its legend names.
void GrafanaDashboardTest::CheckDashboard(const std::string& name,
                                          const std::map<std::string, std::string>& expected) {
  SCOPED_TRACE(name);
  std::ifstream in(DashboardPath(name));
  ASSERT_TRUE(in.good()) << DashboardPath(name);
  const json dashboard = json::parse(in, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded()) << DashboardPath(name) << " is not JSON";
  EXPECT_GE(dashboard.value("schemaVersion", 0), 36);
  const std::vector<Target> targets = PanelTargets(dashboard);
  ASSERT_FALSE(::testing::Test::HasFailure());

  // Template variables, in order (later ones may use earlier ones): each label_values() query
  // must find the metric and offer the real value.
  std::map<std::string, std::string> one;  // Each variable set to its real value.
  std::map<std::string, std::string> all;  // Each variable set to "All".
  const std::regex label_values(R"(^\s*label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$)");
  for (const json& v : dashboard.at("templating").at("list")) {
    const std::string var = v.value("name", "");
    const std::string type = v.value("type", "");
    if (type == "datasource") {
      EXPECT_EQ(var, "DS_PROMETHEUS");
      EXPECT_EQ(v.value("query", ""), "prometheus");
      continue;
    }
    ASSERT_EQ(type, "query") << var;
    ASSERT_TRUE(expected.count(var)) << "no test value for variable $" << var;
    EXPECT_EQ(v.value("datasource", json::object()).value("uid", ""), "${DS_PROMETHEUS}") << var;
    // Grafana 9+ stores {"query": "label_values(...)", "refId": ...}; older ones a string.
    const json q = v.value("query", json());
    const std::string query = q.is_string() ? q.get<std::string>() : q.value("query", "");
    std::smatch m;
    ASSERT_TRUE(std::regex_match(query, m, label_values)) << var << ": " << query;
    const std::string selector = Substitute(m[1].str(), one);
    ASSERT_EQ(selector.find('$'), std::string::npos) << var << ": " << selector;
    json values =
        Api("/api/v1/label/" + m[2].str() + "/values?match[]=" + UrlEncode(selector))["data"];
    ASSERT_TRUE(values.is_array()) << var;
    EXPECT_NE(std::find(values.begin(), values.end(), expected.at(var)), values.end())
        << "$" << var << " from " << query << " offers " << values.dump();
    one[var] = RegexEscape(expected.at(var));
    all[var] = v.value("includeAll", false) ? v.value("allValue", ".*") : one[var];
  }

  // The metric names each query uses.
  const std::regex metric(R"(\bwafer_[a-z0-9_]+)");
  auto names_in = [&metric](const std::string& expr) {
    std::set<std::string> names;
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric), end; it != end; ++it) {
      names.insert(it->str());
    }
    return names;
  };

  // Every panel query, with each variable set to its real value, then to All.
  for (const auto* values : {&one, &all}) {
    for (const Target& t : targets) {
      const std::string expr = Substitute(t.expr, *values);
      SCOPED_TRACE(t.panel + ": " + expr);
      EXPECT_EQ(expr.find('$'), std::string::npos) << "unknown variable";
      const json result = Query(expr);  // Fails the test unless Prometheus accepts the query.
      EXPECT_FALSE(result.empty()) << "no data";
      if (result.empty()) continue;
      bool finite = false;
      for (const json& sample : result) {
        finite |= std::isfinite(std::stod(sample.at("value").at(1).get<std::string>()));
        // Every {{label}} of the legend must be a label of the answer.
        static const std::regex kLegendLabel(R"(\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\})");
        for (std::sregex_iterator it(t.legend.begin(), t.legend.end(), kLegendLabel), end;
             it != end; ++it) {
          EXPECT_TRUE(sample.at("metric").contains((*it)[1].str()))
              << "legend " << t.legend << " names a label the answer lacks: " << sample.dump();
        }
      }
      // histogram_quantile over buckets that did not move is NaN: the jobs must show.
      EXPECT_TRUE(finite) << result.dump();
    }
  }

  // Every metric the dashboard names exists in Prometheus (belt and braces for `or` and
  // comparisons that could hide an empty operand).
  std::set<std::string> names;
  for (const Target& t : targets) names.merge(names_in(t.expr));
  for (const std::string& n : names) {
    json series = Api("/api/v1/series?match[]=" + UrlEncode(n))["data"];
    EXPECT_TRUE(series.is_array() && !series.empty()) << n << " is not in Prometheus";
  }
}

TEST_F(GrafanaDashboardTest, EveryFleetPanelQueryAnswersFromARealPrometheusScrapingWaferd) {
  const TempDir& dir = dir_;
  ASSERT_TRUE(WriteModel(dir.path() + "/tiny", "tiny", 5));
  DaemonHarness h;
  ASSERT_EQ(h.Load(dir.path() + "/tiny", "tiny", 4), ErrorCode::kNone);
  const int metrics_port = h.daemon().metrics_port();
  ASSERT_GT(metrics_port, 0);

  // Series exist before the first scrape (a counter's rate needs two samples of it) ...
  RunJobsThenARejection(h, "tiny", 2, 16);
  ASSERT_TRUE(DropSomeMessages(h)) << "could not make waferd drop a message";

  ASSERT_TRUE(PrometheusInstalled())
      << "prometheus is not on PATH: run scripts/install-deps (make test does)";
  prometheus_ = std::make_unique<PrometheusServer>(dir.path(), metrics_port);
  ASSERT_GT(prometheus_->pid(), 0);
  const double finished_before = WaitFor("sum(wafer_jobs_finished_total)", 1);
  ASSERT_GE(finished_before, 1) << "no scrape landed; see " << dir.path() << "/prometheus.log";

  // ... and move after it, so that rates are positive and quantiles finite.
  RunJobsThenARejection(h, "tiny", 4, 16);
  ASSERT_GE(WaitFor("sum(wafer_jobs_finished_total)", finished_before + 4), finished_before + 4);

  // The real value each variable must offer; a variable not listed here fails the test, so a
  // new variable needs a line here.
  CheckDashboard("waferd.json",
                 {{"instance", "127.0.0.1:" + std::to_string(metrics_port)},
                  {"model", "tiny"},
                  {"board", "0"}});
}

TEST_F(GrafanaDashboardTest, EveryBoardHealthPanelQueryAnswersFromARealPrometheusScrapingWaferd) {
  // The board signals exist from startup (counters at 0, which rate() makes a finite 0): a
  // daemon with its board up is all this dashboard needs.
  DaemonHarness h;
  const int metrics_port = h.daemon().metrics_port();
  ASSERT_GT(metrics_port, 0);
  ASSERT_TRUE(PrometheusInstalled())
      << "prometheus is not on PATH: run scripts/install-deps (make test does)";
  prometheus_ = std::make_unique<PrometheusServer>(dir_.path(), metrics_port);
  ASSERT_GT(prometheus_->pid(), 0);
  // A rate needs two samples in its window, the firmware series a board that answered Identify.
  ASSERT_GE(WaitFor("count_over_time(wafer_board_firmware_info{board=\"0\"}[1m])", 3), 3)
      << "no scrapes landed; see " << dir_.path() << "/prometheus.log";
  CheckDashboard("waferd-board-health.json",
                 {{"instance", "127.0.0.1:" + std::to_string(metrics_port)}, {"board", "0"}});
}
}  // namespace
}  // namespace wafer::testing

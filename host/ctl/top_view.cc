#include "host/ctl/top_view.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <tuple>

#include "host/ctl/ctl_output.h"

namespace wafer::host {
namespace {

using json = nlohmann::json;


std::string Uptime(double s) {
  const uint64_t t = static_cast<uint64_t>(s);
  if (t < 3600) return Fmt("%llum%02llus", t / 60ULL, t % 60ULL);
  if (t < 86400) return Fmt("%lluh%02llum", t / 3600ULL, t / 60 % 60ULL);
  return Fmt("%llud%02lluh", t / 86400ULL, t / 3600 % 24ULL);
}

std::string Rate(const std::optional<double>& r) { return r ? Fmt("%.1f", *r) : "-"; }

// "[#####     ]  50%"
std::string Meter(const std::optional<double>& fraction) {
  if (!fraction) return "[          ]    -";
  const double f = std::clamp(*fraction, 0.0, 1.0);
  const int filled = static_cast<int>(f * 10 + 0.5);
  std::string bar = "[";
  for (int i = 0; i < 10; ++i) bar += i < filled ? '#' : ' ';
  return bar + Fmt("] %3.0f%%", 100 * f);
}

std::string Clip(std::string line, int width) {
  if (width > 0 && static_cast<int>(line.size()) > width) line.resize(static_cast<size_t>(width));
  return line;
}

}  // namespace

void TopView::Add(StatusReply reply) {
  unreachable_.clear();
  if (current_ && reply.uptime_s > current_->uptime_s) {
    previous_ = std::move(current_);
  } else {
    previous_.reset();  // The first reply, or a restarted daemon: no rates yet.
  }
  current_ = std::move(reply);
}

std::vector<TopView::BoardRow> TopView::Boards() const {
  std::vector<BoardRow> rows;
  if (!current_) return rows;
  const double dt = previous_ ? current_->uptime_s - previous_->uptime_s : 0;
  for (const BoardInfo& b : current_->boards) {
    BoardRow row;
    row.index = b.index;
    row.state = BoardStateName(b.state);
    row.max_temperature_c = b.max_temperature_c;
    row.power_w = b.power_w;
    row.sram_used_bytes = b.sram_used_bytes;
    row.sram_bytes = b.sram_bytes;
    row.drain = b.drain;
    for (uint32_t r = 0; r < b.region_temp_c.size(); ++r) {
      row.hottest.emplace_back(r, b.region_temp_c[r]);
    }
    std::stable_sort(row.hottest.begin(), row.hottest.end(),
                     [](const auto& a, const auto& c) { return a.second > c.second; });
    if (row.hottest.size() > 3) row.hottest.resize(3);
    if (dt > 0) {
      for (const BoardInfo& p : previous_->boards) {
        if (p.index != b.index) continue;
        row.utilization = std::clamp((b.busy_s - p.busy_s) / dt, 0.0, 1.0);
        row.tokens_per_s =
            b.tokens_generated >= p.tokens_generated
                ? static_cast<double>(b.tokens_generated - p.tokens_generated) / dt
                : 0.0;
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<TopView::ModelRow> TopView::Models() const {
  std::vector<ModelRow> rows;
  if (!current_) return rows;
  for (const ModelInfo& m : current_->models) {
    auto it = std::find_if(rows.begin(), rows.end(),
                           [&](const ModelRow& r) { return r.name == m.name; });
    if (it == rows.end()) {
      rows.push_back(ModelRow{m.name, ModelStateName(m.state), 0, 0, 0, {}});
      it = rows.end() - 1;
    } else if (m.state == ModelState::kReady) {
      it->state = ModelStateName(m.state);  // Ready when any replica is.
    }
    ++it->replicas;
    it->slots_used += m.slots_used;
    it->slots += m.slots;
  }
  for (ModelRow& row : rows) {
    for (const ModelQueue& q : current_->queues) {
      if (q.model == row.name) row.queue = q.classes;
    }
  }
  return rows;
}

std::vector<TopView::TenantRow> TopView::Tenants() const {
  std::vector<TenantRow> rows;
  if (!current_) return rows;
  const double dt = previous_ ? current_->uptime_s - previous_->uptime_s : 0;
  for (const TenantActivity& t : current_->tenants) {
    TenantRow row{t.tenant, t.running, t.queued, std::nullopt, t.tokens_generated};
    if (dt > 0) {
      uint64_t before = 0;
      for (const TenantActivity& p : previous_->tenants) {
        if (p.tenant == t.tenant) before = p.tokens_generated;
      }
      // A tenant new in this reply had generated `before` = 0 as far as this view knows: its
      // rate is not known yet.
      const bool known = std::any_of(previous_->tenants.begin(), previous_->tenants.end(),
                                     [&](const TenantActivity& p) { return p.tenant == t.tenant; });
      if (known) {
        row.tokens_per_s =
            t.tokens_generated >= before ? static_cast<double>(t.tokens_generated - before) / dt
                                         : 0.0;
      }
    }
    rows.push_back(std::move(row));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const TenantRow& a, const TenantRow& b) {
    return std::make_tuple(a.tokens_per_s.value_or(-1), a.running, a.queued) >
           std::make_tuple(b.tokens_per_s.value_or(-1), b.running, b.queued);
  });
  return rows;
}

std::vector<std::string> TopView::Render(const std::string& endpoint, int width,
                                         int height) const {
  std::vector<std::string> lines;
  auto add = [&](std::string line) { lines.push_back(Clip(std::move(line), width)); };
  if (!current_) {
    add("waferctl top - " + endpoint + "   (q quits)");
    add("");
    add(unreachable_.empty() ? "connecting to " + endpoint + " ..."
                             : "reconnecting: " + unreachable_);
    return lines;
  }
  const StatusReply& r = *current_;
  double total_rate = 0;
  bool have_rate = false;
  const std::vector<BoardRow> boards = Boards();
  for (const BoardRow& b : boards) {
    if (b.tokens_per_s) {
      total_rate += *b.tokens_per_s;
      have_rate = true;
    }
  }
  add(Fmt("waferctl top - waferd %s at %s   up %s%s   (q quits)", r.version.c_str(),
          endpoint.c_str(), Uptime(r.uptime_s).c_str(), r.draining ? "   DRAINING" : ""));
  add(Fmt("jobs: %u queued, %u running, %llu finished   %s tokens/s", r.jobs_queued,
          r.jobs_running, static_cast<unsigned long long>(r.jobs_finished),
          have_rate ? Fmt("%.1f", total_rate).c_str() : "-"));
  if (!unreachable_.empty()) {
    add("!! reconnecting: " + unreachable_ + " (figures below are from the last answer)");
  }
  add("");
  add(Fmt("%-5s %-9s %-17s %8s  %-26s %7s  %-17s %s", "BOARD", "STATE", "UTIL", "TOK/S",
          "HOTTEST REGIONS (C)", "POWER W", "SRAM USED/TOTAL MB", "DRAIN"));
  for (const BoardRow& b : boards) {
    std::string hot;
    for (const auto& [region, temp] : b.hottest) hot += Fmt("r%u %.1f  ", region, temp);
    if (hot.empty()) hot = Fmt("max %.1f", b.max_temperature_c);
    add(Fmt("%-5u %-9s %-17s %8s  %-26s %7.0f  %7.1f/%-9.1f %s", b.index, b.state.c_str(),
            Meter(b.utilization).c_str(), Rate(b.tokens_per_s).c_str(), hot.c_str(), b.power_w,
            b.sram_used_bytes / 1e6, b.sram_bytes / 1e6, b.drain.empty() ? "-" : b.drain.c_str()));
  }
  add("");
  add(Fmt("%-20s %-9s %8s %11s  %s", "MODEL", "STATE", "REPLICAS", "SLOTS USED", "QUEUED BY CLASS"));
  const std::vector<ModelRow> models = Models();
  if (models.empty()) add("(no model loaded)");
  for (const ModelRow& m : models) {
    std::string queue;
    for (const ClassQueue& c : m.queue) queue += Fmt("%s %u  ", c.name.c_str(), c.queued);
    add(Fmt("%-20s %-9s %8u %5u/%-5u  %s", m.name.c_str(), m.state.c_str(), m.replicas,
            m.slots_used, m.slots, queue.empty() ? "-" : queue.c_str()));
  }
  add("");
  add(Fmt("%-20s %8s %7s %9s %12s", "TENANT", "RUNNING", "QUEUED", "TOK/S", "TOKENS"));
  const std::vector<TenantRow> tenants = Tenants();
  if (tenants.empty()) add("(no tenant has had a job yet)");
  for (const TenantRow& t : tenants) {
    if (height > 0 && static_cast<int>(lines.size()) >= height) break;
    add(Fmt("%-20s %8u %7u %9s %12llu", t.tenant.c_str(), t.running, t.queued,
            Rate(t.tokens_per_s).c_str(), static_cast<unsigned long long>(t.tokens_generated)));
  }
  if (height > 0 && static_cast<int>(lines.size()) > height) {
    lines.resize(static_cast<size_t>(height));
  }
  return lines;
}

json TopView::Json() const {
  if (!current_) {
    return json{{"ok", false}, {"reconnecting", true}, {"detail", unreachable_}};
  }
  auto opt = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  json boards = json::array(), models = json::array(), tenants = json::array();
  for (const BoardRow& b : Boards()) {
    json hottest = json::array();
    for (const auto& [region, temp] : b.hottest) {
      hottest.push_back({{"region", region}, {"temperature_c", temp}});
    }
    boards.push_back({{"board", b.index},
                      {"state", b.state},
                      {"utilization", opt(b.utilization)},
                      {"tokens_per_s", opt(b.tokens_per_s)},
                      {"hottest_regions", hottest},
                      {"max_temperature_c", b.max_temperature_c},
                      {"power_w", b.power_w},
                      {"sram_used_bytes", b.sram_used_bytes},
                      {"sram_bytes", b.sram_bytes},
                      {"drain", b.drain}});
  }
  for (const ModelRow& m : Models()) {
    json queue = json::array();
    for (const ClassQueue& c : m.queue) queue.push_back({{"class", c.name}, {"queued", c.queued}});
    models.push_back({{"name", m.name},
                      {"state", m.state},
                      {"replicas", m.replicas},
                      {"slots_used", m.slots_used},
                      {"slots", m.slots},
                      {"queued_by_class", queue}});
  }
  for (const TenantRow& t : Tenants()) {
    tenants.push_back({{"tenant", t.tenant},
                       {"running", t.running},
                       {"queued", t.queued},
                       {"tokens_per_s", opt(t.tokens_per_s)},
                       {"tokens_generated", t.tokens_generated}});
  }
  return json{{"ok", unreachable_.empty()},
              {"reconnecting", !unreachable_.empty()},
              {"detail", unreachable_},
              {"version", current_->version},
              {"uptime_s", current_->uptime_s},
              {"jobs_queued", current_->jobs_queued},
              {"jobs_running", current_->jobs_running},
              {"boards", boards},
              {"models", models},
              {"tenants", tenants}};
}

}  // namespace wafer::host

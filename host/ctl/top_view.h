// What `waferctl top` shows, computed from two successive StatusReplies: per board its state,
// utilisation (the growth of its busy time over the growth of the daemon's uptime), tokens/s,
// hottest die regions, power and SRAM; per model its replicas, slots and queue by class; the
// busiest tenants by tokens/s. Pure: no socket, no terminal (top_command.h draws it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/wire/messages.h"

namespace wafer::host {

// Not thread-safe.
class TopView {
 public:
  // Takes a new reply. The figures that are rates (utilisation, tokens/s) come from the growth
  // since the previous reply; a reply whose uptime is not past the previous one's (a daemon
  // restarted in between) starts the rates afresh.
  void Add(StatusReply reply);
  // The daemon did not answer `detail`: the last figures stay on screen under a banner that
  // says so, until the next Add().
  void SetUnreachable(std::string detail) { unreachable_ = std::move(detail); }
  bool has_sample() const { return current_.has_value(); }

  // The screen as lines at most `width` columns wide (and at most `height` lines; the busiest
  // tenants are cut first). `endpoint` names the daemon in the title.
  std::vector<std::string> Render(const std::string& endpoint, int width, int height) const;

  // The same figures for scripts: {"ok":true,"uptime_s":...,"boards":[...],"models":[...],
  // "tenants":[...]}; rates are null until two replies are in.
  nlohmann::json Json() const;

  struct BoardRow {
    uint32_t index = 0;
    std::string state;
    std::optional<double> utilization;  // 0..1.
    std::optional<double> tokens_per_s;
    std::vector<std::pair<uint32_t, float>> hottest;  // (region, C), hottest first, at most 3.
    float max_temperature_c = 0;
    float power_w = 0;
    uint64_t sram_used_bytes = 0;
    uint64_t sram_bytes = 0;
    std::string drain;
  };
  struct ModelRow {
    std::string name;
    std::string state;
    uint32_t replicas = 0;
    uint32_t slots_used = 0;
    uint32_t slots = 0;
    std::vector<ClassQueue> queue;
  };
  struct TenantRow {
    std::string tenant;
    uint32_t running = 0;
    uint32_t queued = 0;
    std::optional<double> tokens_per_s;
    uint64_t tokens_generated = 0;
  };
  std::vector<BoardRow> Boards() const;
  std::vector<ModelRow> Models() const;
  // Busiest first: tokens/s, then running, then queued jobs.
  std::vector<TenantRow> Tenants() const;

 private:
  std::optional<StatusReply> previous_;
  std::optional<StatusReply> current_;
  std::string unreachable_;
};

}  // namespace wafer::host

#include "host/config/daemon_config.h"

#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "host/config/map_reader.h"
#include "host/config/scheduling_config.h"

namespace wafer::host {
namespace {

using config_internal::MapReader;

bool ValidEndpoint(const std::string& e) {
  return e.rfind("tcp://", 0) == 0 || e.rfind("ipc://", 0) == 0 || e.rfind("inproc://", 0) == 0;
}

HostStatus ParseBoards(MapReader& top, DaemonConfig* c) {
  YAML::Node boards = top.Child("boards");
  if (!boards) return HostOk();
  if (!boards.IsSequence() || boards.size() == 0) {
    return top.Fail(boards, "boards", "must be a non-empty list");
  }
  c->boards.clear();
  for (size_t i = 0; i < boards.size(); ++i) {
    BoardConfig b;
    MapReader r(boards[i], "boards[" + std::to_string(i) + "]");
    if (!r.IsMap() || !r.String("endpoint", &b.endpoint, false) ||
        !r.String("preset", &b.preset, false) || !r.String("pacing", &b.pacing, false) ||
        !r.Uint("seed", &b.seed, 0, std::numeric_limits<uint64_t>::max()) ||
        !r.Uint("timeout_ms", &b.timeout_ms, 10, 600000) ||
        !r.String("curve_public_key", &b.curve_public_key) || !r.NoUnknownKeys()) {
      return r.error();
    }
    if (b.pacing != "fast" && b.pacing != "realtime") {
      return r.Fail(boards[i]["pacing"], r.Name("pacing"), "must be realtime or fast");
    }
    if (!ValidEndpoint(b.endpoint)) {
      return r.Fail(boards[i]["endpoint"], r.Name("endpoint"),
                    "must start with inproc://, ipc:// or tcp://");
    }
    if (!b.curve_public_key.empty() && (b.curve_public_key.size() != 40 || b.embedded())) {
      return r.Fail(boards[i]["curve_public_key"], r.Name("curve_public_key"),
                    "must be a Z85 CURVE public key (40 characters) of an ipc:// or tcp:// board");
    }
    c->boards.push_back(b);
  }
  return HostOk();
}

HostStatus ParseHealth(MapReader& top, DaemonConfig* c) {
  YAML::Node node = top.Child("health");
  if (!node) return HostOk();
  MapReader r(node, "health");
  return config_internal::ParseHealthKeys(r, &c->health);
}

HostStatus ParseHeartbeat(MapReader& top, DaemonConfig* c) {
  YAML::Node node = top.Child("heartbeat");
  if (!node) return HostOk();
  MapReader r(node, "heartbeat");
  HeartbeatConfig& h = c->heartbeat;
  if (!r.IsMap() || !r.Uint("interval_ms", &h.interval_ms, 100, 600'000) ||
      !r.Uint("timeout_ms", &h.timeout_ms, 100, 3'600'000) ||
      !r.Uint("grace_ms", &h.grace_ms, 0, 86'400'000) || !r.NoUnknownKeys()) {
    return r.error();
  }
  if (h.timeout_ms <= h.interval_ms) {
    return r.Fail(node, "heartbeat.timeout_ms", "must be longer than heartbeat.interval_ms");
  }
  return HostOk();
}

HostStatus ParseStore(MapReader& top, DaemonConfig* c) {
  YAML::Node node = top.Child("store");
  if (!node) return HostOk();
  MapReader r(node, "store");
  std::string fsync = c->store.fsync ? "true" : "false";
  if (!r.IsMap() || !r.String("path", &c->store.path, false) ||
      !r.String("fsync", &fsync, false) ||
      !r.Uint("finished_retention_bytes", &c->store.finished_retention_bytes, 0,
              std::numeric_limits<uint64_t>::max()) ||
      !r.NoUnknownKeys()) {
    return r.error();
  }
  if (fsync != "true" && fsync != "false") {
    return r.Fail(node["fsync"], "store.fsync", "must be true or false");
  }
  c->store.fsync = fsync == "true";
  return HostOk();
}

HostStatus ParseSecurity(MapReader& top, DaemonConfig* c) {
  YAML::Node node = top.Child("security");
  if (!node) return HostOk();
  MapReader r(node, "security");
  std::string insecure = "false";
  if (!r.IsMap() || !r.String("server_secret_key_file", &c->security.server_secret_key_file) ||
      !r.String("insecure", &insecure, false) ||
      !r.String("audit_log_file", &c->security.audit_log_file) ||
      !r.String("metrics_auth_file", &c->security.metrics_auth_file)) {
    return r.error();
  }
  if (YAML::Node roots = r.Child("model_roots"); roots && !roots.IsNull()) {
    if (!roots.IsSequence()) return r.Fail(roots, "security.model_roots", "must be a list");
    for (size_t i = 0; i < roots.size(); ++i) {
      if (!roots[i].IsScalar() || roots[i].Scalar().empty() || roots[i].Scalar()[0] != '/') {
        return r.Fail(roots[i], "security.model_roots[" + std::to_string(i) + "]",
                      "must be an absolute directory");
      }
      c->security.model_roots.push_back(roots[i].Scalar());
    }
  }
  if (insecure != "true" && insecure != "false") {
    return r.Fail(node["insecure"], r.Name("insecure"), "must be true or false");
  }
  c->security.insecure = insecure == "true";
  YAML::Node clients = r.Child("clients");
  if (!r.NoUnknownKeys()) return r.error();
  if (!clients || clients.IsNull()) return HostOk();
  if (!clients.IsSequence()) return r.Fail(clients, "security.clients", "must be a list");
  for (size_t i = 0; i < clients.size(); ++i) {
    ClientKeyConfig k;
    MapReader cr(clients[i], "security.clients[" + std::to_string(i) + "]");
    if (!cr.IsMap() || !cr.String("name", &k.name, false) ||
        !cr.String("public_key", &k.public_key, false) || !cr.String("role", &k.role, false) ||
        !cr.String("tenant", &k.tenant) || !cr.NoUnknownKeys()) {
      return cr.error();
    }
    if (k.public_key.size() != 40) {
      return cr.Fail(clients[i]["public_key"], cr.Name("public_key"),
                     "must be a Z85 CURVE public key (40 characters)");
    }
    if (k.role != "submitter" && k.role != "viewer" && k.role != "admin") {
      return cr.Fail(clients[i]["role"], cr.Name("role"), "must be submitter, viewer or admin");
    }
    if (k.role == "submitter" && k.tenant.empty()) {
      return cr.Fail(clients[i], cr.Name("tenant"), "a submitter needs its tenant");
    }
    for (const ClientKeyConfig& other : c->security.clients) {
      if (other.name == k.name || other.public_key == k.public_key) {
        return cr.Fail(clients[i], "security.clients[" + std::to_string(i) + "]",
                       "name and public_key must be unique");
      }
    }
    c->security.clients.push_back(std::move(k));
  }
  return HostOk();
}

HostStatus ParseModels(MapReader& top, DaemonConfig* c) {
  YAML::Node models = top.Child("models");
  if (!models || models.IsNull()) return HostOk();
  if (!models.IsSequence()) return top.Fail(models, "models", "must be a list");
  for (size_t i = 0; i < models.size(); ++i) {
    ModelLoadConfig m;
    MapReader r(models[i], "models[" + std::to_string(i) + "]");
    if (!r.IsMap() || !r.String("name", &m.name) || !r.String("path", &m.path, false) ||
        !r.Uint("board", &m.board, 0, 1023) || !r.UintList("boards", &m.boards, 0, 1023) ||
        !r.Uint("slots", &m.slots, 0, 65536) ||
        !r.Uint("context_length", &m.context_length, 0, 1 << 24) || !r.NoUnknownKeys()) {
      return r.error();
    }
    if (!models[i]["path"]) return r.Fail(models[i], r.Name("path"), "is required");
    if (models[i]["board"] && models[i]["boards"]) {
      return r.Fail(models[i]["boards"], r.Name("boards"), "give either board or boards");
    }
    if (m.boards.empty()) m.boards.push_back(m.board);
    for (size_t a = 0; a < m.boards.size(); ++a) {
      for (size_t b = 0; b < a; ++b) {
        if (m.boards[a] == m.boards[b]) {
          return r.Fail(models[i]["boards"], r.Name("boards"),
                        "board " + std::to_string(m.boards[a]) + " is listed twice");
        }
      }
    }
    m.board = m.boards[0];
    c->models.push_back(m);
  }
  return HostOk();
}

}  // namespace

HostResult<DaemonConfig> ParseDaemonConfig(const std::string& yaml_text) {
  DaemonConfig c;
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (!root || root.IsNull()) return c;
    MapReader top(root, "");
    if (!top.IsMap()) return top.error();
    bool ok = top.String("job_endpoint", &c.job_endpoint, false) &&
              top.String("admin_endpoint", &c.admin_endpoint, false) &&
              top.String("metrics_address", &c.metrics_address) &&
              top.Uint("max_message_bytes", &c.max_message_bytes, 1024, 256u << 20) &&
              top.Uint("send_high_water_mark", &c.send_high_water_mark, 100, 10'000'000) &&
              top.Uint("drain_timeout_ms", &c.drain_timeout_ms, 0, 3'600'000) &&
              top.String("placement", &c.placement, false) &&
              top.String("pipeline_handoff", &c.pipeline_handoff, false);
    if (!ok) return top.error();
    if (c.placement != "pack" && c.placement != "spread") {
      return MapReader::Fail(root["placement"], "placement", "must be pack or spread");
    }
    if (c.pipeline_handoff != "direct" && c.pipeline_handoff != "host") {
      return MapReader::Fail(root["pipeline_handoff"], "pipeline_handoff",
                             "must be direct or host");
    }
    for (const std::string* e : {&c.job_endpoint, &c.admin_endpoint}) {
      if (!ValidEndpoint(*e)) {
        return Error{StatusCode::kInvalidArgument,
                     "endpoint '" + *e + "' must start with tcp://, ipc:// or inproc://"};
      }
    }
    if (c.job_endpoint == c.admin_endpoint) {
      return Error{StatusCode::kInvalidArgument, "job_endpoint and admin_endpoint must differ"};
    }
    if (YAML::Node s = top.Child("scheduler")) {
      MapReader r(s, "scheduler");
      ok = r.IsMap() && r.String("policy", &c.scheduler_policy, false) &&
           r.Uint("queue_limit", &c.queue_limit, 1, 10'000'000) &&
           r.Uint("max_tokens_limit", &c.max_tokens_limit, 1, 1 << 24) &&
           r.Uint("max_stop_tokens", &c.max_stop_tokens, 0, 1024) &&
           r.Uint("max_batch", &c.max_batch, 1, 4096) &&
           r.Uint("decode_tokens_per_step", &c.decode_tokens_per_step, 1, 256) &&
           r.Uint("steps_in_flight", &c.steps_in_flight, 1, 8) &&
           r.Uint("prefill_chunk_tokens", &c.prefill_chunk_tokens, 1, 1 << 20) &&
           r.Uint("default_slots", &c.default_slots, 1, 65536) &&
           r.Uint("finished_job_retention", &c.finished_job_retention, 0, 10'000'000);
      if (!ok) return r.error();
      WAFER_HOST_RETURN_IF_ERROR(config_internal::ParseSchedulingKeys(r, &c.scheduling));
      if (!r.NoUnknownKeys()) return r.error();
      if (c.scheduler_policy != "fair" && c.scheduler_policy != "fifo") {
        return MapReader::Fail(s["policy"], "scheduler.policy",
                               "unknown policy (known: fair, fifo)");
      }
    }
    WAFER_HOST_RETURN_IF_ERROR(ParseBoards(top, &c));
    WAFER_HOST_RETURN_IF_ERROR(ParseModels(top, &c));
    WAFER_HOST_RETURN_IF_ERROR(ParseHeartbeat(top, &c));
    WAFER_HOST_RETURN_IF_ERROR(ParseStore(top, &c));
    WAFER_HOST_RETURN_IF_ERROR(ParseSecurity(top, &c));
    WAFER_HOST_RETURN_IF_ERROR(ParseHealth(top, &c));
    if (!top.NoUnknownKeys()) return top.error();
    for (const ModelLoadConfig& m : c.models) {
      for (uint32_t board : m.boards) {
        if (board >= c.boards.size()) {
          return Error{StatusCode::kInvalidArgument,
                       "models: board " + std::to_string(board) + " is not configured (" +
                           std::to_string(c.boards.size()) + " boards)"};
        }
      }
    }
  } catch (const YAML::Exception& e) {
    return Error{StatusCode::kInvalidArgument,
                 "line " + std::to_string(e.mark.line + 1) + ": YAML syntax: " + e.msg};
  }
  return c;
}

HostResult<DaemonConfig> LoadDaemonConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{StatusCode::kNotFound, "cannot read config file " + path};
  std::stringstream text;
  text << in.rdbuf();
  HostResult<DaemonConfig> config = ParseDaemonConfig(text.str());
  if (!config.ok()) return std::move(config).error().WithContext(path);
  return config;
}

std::string ResolveStorePath(const JobStoreConfig& store) {
  if (!store.durable()) return "";
  if (store.path != "default") return store.path;
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') return std::string(state) + "/waferd/jobs.db";
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr && home[0] != '\0' ? home : ".") +
         "/.local/state/waferd/jobs.db";
}

std::string DefaultConfigYaml() {
  DaemonConfig d;
  const BoardConfig& b = d.boards[0];
  std::ostringstream o;
  o << "# waferd configuration. Every key is optional; these are the defaults.\n"
    << "job_endpoint: " << d.job_endpoint << "      # ROUTER for cluster schedulers\n"
    << "admin_endpoint: " << d.admin_endpoint << "    # ROUTER for waferctl\n"
    << "metrics_address: " << d.metrics_address << "       # Prometheus /metrics; \"\" disables\n"
    << "max_message_bytes: " << d.max_message_bytes << "        # larger messages are dropped\n"
    << "send_high_water_mark: " << d.send_high_water_mark << "\n"
    << "drain_timeout_ms: " << d.drain_timeout_ms << "          # SIGTERM waits this long for jobs\n"
    << "placement: " << d.placement << "                  # pack: fewest rows, models share boards;"
    << " spread: all free rows (faster compute)\n"
    << "pipeline_handoff: " << d.pipeline_handoff
    << "          # a model split over boards: direct: boards hand hidden states to each other,"
    << " several tokens per Step; host: waferd relays every stage (1 token per pass)\n"
    << "scheduler:\n"
    << "  policy: " << d.scheduler_policy
    << "                   # fair: classes, tenant shares, deadlines; fifo: arrival order\n"
    << "  queue_limit: " << d.queue_limit << "\n"
    << "  max_tokens_limit: " << d.max_tokens_limit << "\n"
    << "  max_stop_tokens: " << d.max_stop_tokens << "          # per job\n"
    << "  max_batch: " << d.max_batch << "                # sequences per Step\n"
    << "  decode_tokens_per_step: " << d.decode_tokens_per_step << "     # tokens per sequence per Step\n"
    << "  steps_in_flight: " << d.steps_in_flight << "           # per board, pipelined\n"
    << "  prefill_chunk_tokens: " << d.prefill_chunk_tokens << "\n"
    << "  default_slots: " << d.default_slots << "             # KV-cache sequences per model\n"
    << "  finished_job_retention: " << d.finished_job_retention << "\n"
    << config_internal::SchedulingDefaultYaml()
    << config_internal::HealthDefaultYaml()
    << "heartbeat:                       # for clients that send one (opt-in)\n"
    << "  interval_ms: " << d.heartbeat.interval_ms << "              # the daemon sends one this often\n"
    << "  timeout_ms: " << d.heartbeat.timeout_ms
    << "               # a client silent this long is gone...\n"
    << "  grace_ms: " << d.heartbeat.grace_ms
    << "                # ...and its jobs wait this long for a resume, then end abandoned\n"
    << "store:                           # accepted jobs, kept across restarts\n"
    << "  path: " << d.store.path << "                  # default: $XDG_STATE_HOME/waferd/jobs.db"
    << " (else ~/.local/state/waferd/jobs.db); memory: lost on restart\n"
    << "  fsync: " << (d.store.fsync ? "true" : "false")
    << "                    # false: survives a crash of waferd, not of the host\n"
    << "  finished_retention_bytes: " << d.store.finished_retention_bytes << "\n"
    << "security:                        # CURVE on the job and admin sockets\n"
    << "  server_secret_key_file: \"\"     # \"\": plaintext, loopback addresses only\n"
    << "  insecure: false                # true: allow plaintext on other addresses too\n"
    << "  clients: []                    # [{name, public_key, role: submitter|viewer|admin,"
    << " tenant}]\n"
    << "  audit_log_file: \"\"             # \"\": stderr\n"
    << "  metrics_auth_file: \"\"          # user:password for /metrics (mode 600); \"\": open\n"
    << "  model_roots: []                # admin loads only under these; []: anywhere\n"
    << "boards:                          # inproc:// = embedded simulated board\n"
    << "  - endpoint: " << b.endpoint << "\n"
    << "    preset: " << b.preset << "\n"
    << "    seed: " << b.seed << "\n"
    << "    pacing: " << b.pacing << "                 # realtime: steps take their modeled time\n"
    << "    timeout_ms: " << b.timeout_ms << "\n"
    << "models: []                       # [{name, path, board | boards, slots, context_length}]\n";
  return o.str();
}

}  // namespace wafer::host

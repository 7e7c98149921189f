#include "host/config/scheduling_config.h"

#include <sstream>

#include "host/config/map_reader.h"

namespace wafer::host {

uint32_t SchedulingConfig::ClassOf(uint32_t priority) const {
  for (uint32_t i = 0; i < classes.size(); ++i) {
    if (priority >= classes[i].min_priority) return i;
  }
  return classes.empty() ? 0 : static_cast<uint32_t>(classes.size() - 1);
}

uint32_t SchedulingConfig::ClassNamed(const std::string& name) const {
  for (uint32_t i = 0; i < classes.size(); ++i) {
    if (classes[i].name == name) return i;
  }
  return static_cast<uint32_t>(classes.size());
}

const TenantConfig& SchedulingConfig::TenantNamed(const std::string& name) const {
  for (const TenantConfig& t : tenants) {
    if (t.name == name) return t;
  }
  return default_tenant;
}

std::string SchedulingConfig::MetricLabel(const std::string& tenant) const {
  for (const TenantConfig& t : tenants) {
    if (t.name == tenant) return tenant;
  }
  return "other";
}

uint32_t SchedulingConfig::ClassFor(uint32_t priority, const TenantConfig& tenant,
                                    bool* above_max) const {
  const uint32_t wanted = ClassOf(priority);
  const uint32_t max_class = tenant.max_class.empty() ? 0 : ClassNamed(tenant.max_class);
  if (above_max != nullptr) *above_max = wanted < max_class;
  return wanted < max_class ? max_class : wanted;  // A lower index is a higher class.
}

namespace config_internal {
namespace {

HostStatus ParseTenant(const YAML::Node& node, const std::string& where, const SchedulingConfig& s,
                       bool named, TenantConfig* t) {
  MapReader r(node, where);
  if (!r.IsMap() || (named && !r.String("name", &t->name, false)) ||
      !r.Uint("weight", &t->weight, 1, 1000) || !r.String("max_class", &t->max_class) ||
      !r.Bool("reject_above_max_class", &t->reject_above_max_class) ||
      !r.Uint("max_queued", &t->max_queued, 0, 10'000'000) ||
      !r.Uint("tokens_per_minute", &t->tokens_per_minute, 0, 1ull << 40) ||
      !r.Uint("requests_per_minute", &t->requests_per_minute, 0, 100'000'000) ||
      !r.Bool("shed_on_ttft_miss", &t->shed_on_ttft_miss) || !r.NoUnknownKeys()) {
    return r.error();
  }
  if (named && !node["name"]) return r.Fail(node, r.Name("name"), "is required");
  if (!t->max_class.empty() && s.ClassNamed(t->max_class) == s.classes.size()) {
    return r.Fail(node["max_class"], r.Name("max_class"),
                  "names no class in scheduler.classes");
  }
  return HostOk();
}

HostStatus ParseClasses(MapReader& r, SchedulingConfig* s) {
  YAML::Node node = r.Child("classes");
  if (!node) return HostOk();
  if (!node.IsSequence() || node.size() == 0 || node.size() > 16) {
    return r.Fail(node, "scheduler.classes", "must be a list of 1 to 16 classes");
  }
  s->classes.clear();
  for (size_t i = 0; i < node.size(); ++i) {
    PriorityClassConfig c;
    MapReader cr(node[i], "scheduler.classes[" + std::to_string(i) + "]");
    if (!cr.IsMap() || !cr.String("name", &c.name, false) ||
        !cr.Uint("min_priority", &c.min_priority, 0, 255) || !cr.NoUnknownKeys()) {
      return cr.error();
    }
    if (!node[i]["min_priority"]) return cr.Fail(node[i], cr.Name("min_priority"), "is required");
    if (!s->classes.empty() && c.min_priority >= s->classes.back().min_priority) {
      return cr.Fail(node[i]["min_priority"], cr.Name("min_priority"),
                     "must be below the class before it (classes go highest first)");
    }
    if (s->ClassNamed(c.name) != s->classes.size()) {
      return cr.Fail(node[i]["name"], cr.Name("name"), "is used twice");
    }
    s->classes.push_back(c);
  }
  if (s->classes.back().min_priority != 0) {
    return r.Fail(node[node.size() - 1], "scheduler.classes",
                  "the last class must have min_priority 0, so that every priority has a class");
  }
  return HostOk();
}

}  // namespace

HostStatus ParseSchedulingKeys(MapReader& r, SchedulingConfig* s) {
  if (!r.Uint("model_queue_limit", &s->model_queue_limit, 1, 10'000'000) ||
      !r.Uint("prompt_token_cost", &s->prompt_token_cost, 0, 1000) ||
      !r.Uint("output_token_cost", &s->output_token_cost, 0, 1000)) {
    return r.error();
  }
  WAFER_HOST_RETURN_IF_ERROR(ParseClasses(r, s));
  if (s->prompt_token_cost + s->output_token_cost == 0) {
    return Error{StatusCode::kInvalidArgument,
                 "scheduler.prompt_token_cost and output_token_cost may not both be 0"};
  }
  if (YAML::Node p = r.Child("preemption")) {
    MapReader pr(p, "scheduler.preemption");
    if (!pr.IsMap() || !pr.Bool("enabled", &s->preemption.enabled) ||
        !pr.Uint("min_class_gap", &s->preemption.min_class_gap, 1, 16) ||
        !pr.Uint("min_run_ms", &s->preemption.min_run_ms, 0, 3'600'000) || !pr.NoUnknownKeys()) {
      return pr.error();
    }
  }
  if (YAML::Node d = r.Child("default_tenant")) {
    WAFER_HOST_RETURN_IF_ERROR(
        ParseTenant(d, "scheduler.default_tenant", *s, false, &s->default_tenant));
  }
  YAML::Node tenants = r.Child("tenants");
  if (!tenants || tenants.IsNull()) return HostOk();
  if (!tenants.IsSequence()) return r.Fail(tenants, "scheduler.tenants", "must be a list");
  for (size_t i = 0; i < tenants.size(); ++i) {
    TenantConfig t;
    const std::string where = "scheduler.tenants[" + std::to_string(i) + "]";
    WAFER_HOST_RETURN_IF_ERROR(ParseTenant(tenants[i], where, *s, true, &t));
    for (const TenantConfig& other : s->tenants) {
      if (other.name == t.name) return r.Fail(tenants[i], where + ".name", "is used twice");
    }
    s->tenants.push_back(std::move(t));
  }
  return HostOk();
}

std::string SchedulingDefaultYaml() {
  const SchedulingConfig d;
  const TenantConfig& t = d.default_tenant;
  std::ostringstream o;
  o << "  model_queue_limit: " << d.model_queue_limit
    << "      # per model; past it a newcomer sheds a lower class's newest job or is refused\n"
    << "  prompt_token_cost: " << d.prompt_token_cost
    << "          # fair share: what a prompt token and an output token cost\n"
    << "  output_token_cost: " << d.output_token_cost << "\n"
    << "  classes:                       # highest first: a job's priority picks the first class"
    << " whose min_priority it reaches\n";
  for (const PriorityClassConfig& c : d.classes) {
    o << "    - {name: " << c.name << ", min_priority: " << c.min_priority << "}\n";
  }
  o << "  default_tenant:                # every tenant not in tenants; each has its own share\n"
    << "    weight: " << t.weight << "                    # fair share within a class\n"
    << "    max_class: \"\"                # \"\": the top class\n"
    << "    reject_above_max_class: false  # false: a job asking above runs at max_class\n"
    << "    max_queued: 0                # quotas; 0: unlimited\n"
    << "    tokens_per_minute: 0         # prompt + max_tokens accepted per minute\n"
    << "    requests_per_minute: 0\n"
    << "    shed_on_ttft_miss: false     # true: a queued job past its TTFT target is shed\n"
    << "  tenants: []                    # [{name, and the keys of default_tenant}]\n"
    << "  preemption:\n"
    << "    enabled: " << (d.preemption.enabled ? "true" : "false") << "\n"
    << "    min_class_gap: " << d.preemption.min_class_gap
    << "               # a running job yields only to a job this many classes above it\n"
    << "    min_run_ms: " << d.preemption.min_run_ms
    << "                # and only after running this long since its slot was granted\n";
  return o.str();
}

}  // namespace config_internal
}  // namespace wafer::host

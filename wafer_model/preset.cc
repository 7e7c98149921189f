#include "wafer_model/preset.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#ifndef WAFER_PRESET_DIR
#define WAFER_PRESET_DIR "wafer_model/presets"
#endif

namespace wafer::wafer_model {
namespace {

struct Field {
  const char* section;  // "" for top level.
  const char* key;
  std::function<bool(const YAML::Node&, Preset&)> set;  // false on a wrong type.
};

template <typename T>
std::function<bool(const YAML::Node&, Preset&)> Into(T Preset::*member) {
  return [member](const YAML::Node& n, Preset& p) {
    if (!n.IsScalar()) return false;
    T v;
    if (!YAML::convert<T>::decode(n, v)) return false;
    p.*member = v;
    return true;
  };
}

const std::vector<Field>& Fields() {
  static const std::vector<Field> fields = {
      {"", "name", Into(&Preset::name)},
      {"wafer", "dies_x", Into(&Preset::dies_x)},
      {"wafer", "dies_y", Into(&Preset::dies_y)},
      {"wafer", "physical_rows", Into(&Preset::physical_rows)},
      {"wafer", "physical_cols", Into(&Preset::physical_cols)},
      {"wafer", "spare_cols_per_row", Into(&Preset::spare_cols_per_row)},
      {"wafer", "defect_rate", Into(&Preset::defect_rate)},
      {"wafer", "sram_per_pe_bytes", Into(&Preset::sram_per_pe_bytes)},
      {"wafer", "sram_bytes_per_cycle_per_pe", Into(&Preset::sram_bytes_per_cycle_per_pe)},
      {"wafer", "simd_width", Into(&Preset::simd_width)},
      {"wafer", "clock_hz", Into(&Preset::clock_hz)},
      {"fabric", "hop_latency_cycles", Into(&Preset::hop_latency_cycles)},
      {"fabric", "router_cycles", Into(&Preset::router_cycles)},
      {"host", "io_bytes_per_s", Into(&Preset::io_bytes_per_s)},
      {"host", "round_trip_us", Into(&Preset::round_trip_us)},
      {"host", "max_slots", Into(&Preset::max_slots)},
      {"power", "peak_w", Into(&Preset::peak_w)},
      {"power", "idle_w", Into(&Preset::idle_w)},
      {"thermal", "coolant_in_c", Into(&Preset::coolant_in_c)},
      {"thermal", "coolant_flow_kg_s", Into(&Preset::coolant_flow_kg_s)},
      {"thermal", "resistance_c_per_w", Into(&Preset::resistance_c_per_w)},
      {"thermal", "time_constant_s", Into(&Preset::time_constant_s)},
      {"thermal", "warn_c", Into(&Preset::warn_c)},
      {"thermal", "critical_c", Into(&Preset::critical_c)},
      {"interwafer", "hop_latency_us", Into(&Preset::interwafer_hop_latency_us)},
      {"interwafer", "bytes_per_s", Into(&Preset::interwafer_bytes_per_s)},
  };
  return fields;
}

std::string Where(const YAML::Node& n) {
  return n.Mark().line >= 0 ? " (line " + std::to_string(n.Mark().line + 1) + ")" : "";
}

std::string Path(const char* section, const std::string& key) {
  return std::string(section).empty() ? key : std::string(section) + "." + key;
}

// Returns an empty string when the preset is physically possible, else the offending key.
std::string CheckValues(const Preset& p) {
  if (p.name.empty()) return "name: empty";
  if (p.dies_x == 0 || p.dies_y == 0) return "wafer.dies_x/dies_y: must be > 0";
  if (p.dies_x * p.dies_y > 128) return "wafer.dies_x*dies_y: at most 128 regions";
  if (p.physical_rows == 0 || p.physical_rows > 2048) {
    return "wafer.physical_rows: must be in [1, 2048]";
  }
  if (p.physical_cols == 0) return "wafer.physical_cols: must be > 0";
  if (p.spare_cols_per_row >= p.physical_cols) {
    return "wafer.spare_cols_per_row: must be below physical_cols";
  }
  if (!(p.defect_rate >= 0) || !(p.defect_rate < 1)) return "wafer.defect_rate: must be in [0, 1)";
  if (p.sram_per_pe_bytes == 0) return "wafer.sram_per_pe_bytes: must be > 0";
  if (!(p.sram_bytes_per_cycle_per_pe > 0)) return "wafer.sram_bytes_per_cycle_per_pe: must be > 0";
  if (p.simd_width == 0) return "wafer.simd_width: must be > 0";
  if (!(p.clock_hz > 0)) return "wafer.clock_hz: must be > 0";
  if (!(p.hop_latency_cycles >= 0)) return "fabric.hop_latency_cycles: must be >= 0";
  if (!(p.router_cycles >= 0)) return "fabric.router_cycles: must be >= 0";
  if (!(p.io_bytes_per_s > 0)) return "host.io_bytes_per_s: must be > 0";
  if (!(p.round_trip_us >= 0)) return "host.round_trip_us: must be >= 0";
  if (p.max_slots == 0 || p.max_slots > 256) return "host.max_slots: must be in [1, 256]";
  if (!(p.peak_w > 0)) return "power.peak_w: must be > 0";
  if (!(p.idle_w >= 0) || p.idle_w > p.peak_w) return "power.idle_w: must be in [0, peak_w]";
  if (!(p.coolant_flow_kg_s > 0)) return "thermal.coolant_flow_kg_s: must be > 0";
  if (!(p.resistance_c_per_w > 0)) return "thermal.resistance_c_per_w: must be > 0";
  if (!(p.time_constant_s > 0)) return "thermal.time_constant_s: must be > 0";
  if (!(p.warn_c < p.critical_c)) return "thermal.warn_c: must be below critical_c";
  if (!(p.interwafer_hop_latency_us >= 0) || !std::isfinite(p.interwafer_hop_latency_us)) {
    return "interwafer.hop_latency_us: must be >= 0 and finite";
  }
  if (!(p.interwafer_bytes_per_s > 0) || !std::isfinite(p.interwafer_bytes_per_s)) {
    return "interwafer.bytes_per_s: must be > 0 and finite";
  }
  return "";
}

Error Invalid(std::string message) {
  return Error{StatusCode::kInvalidArgument, std::move(message)};
}

}  // namespace

HostResult<Preset> ParsePreset(const std::string& yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Invalid(std::string("preset is not valid YAML: ") + e.what());
  }
  if (!root.IsMap()) {
    return Invalid("preset: top level must be a map");
  }
  Preset preset;
  std::set<std::string> known_sections;
  for (const Field& f : Fields()) known_sections.insert(f.section);
  try {
    // Unknown keys first, so a typo is named rather than reported as a missing key.
    for (const auto& top : root) {
      const std::string key = top.first.as<std::string>();
      if (key == "name") continue;
      if (known_sections.count(key) == 0) {
        return Invalid("unknown key '" + key + "'" + Where(top.first));
      }
      if (!top.second.IsMap()) {
        return Invalid("'" + key + "' must be a map" + Where(top.second));
      }
      for (const auto& sub : top.second) {
        const std::string name = sub.first.as<std::string>();
        bool found = false;
        for (const Field& f : Fields()) found |= (key == f.section && name == f.key);
        if (!found) {
          return Invalid("unknown key '" + Path(key.c_str(), name) + "'" +
                         Where(sub.first));
        }
      }
    }
    for (const Field& f : Fields()) {
      const YAML::Node n = std::string(f.section).empty() ? root[f.key] : root[f.section][f.key];
      if (!n.IsDefined() || n.IsNull()) {
        return Invalid("missing key '" + Path(f.section, f.key) + "'");
      }
      if (!f.set(n, preset)) {
        return Invalid("wrong type for '" + Path(f.section, f.key) + "'" + Where(n));
      }
    }
  } catch (const YAML::Exception& e) {
    return Invalid(std::string("preset: ") + e.what());
  }
  preset.physical_pes = uint64_t{preset.physical_rows} * preset.physical_cols;
  preset.fabric_width = preset.physical_cols - preset.spare_cols_per_row;
  preset.fabric_height = preset.physical_rows;
  if (std::string bad = CheckValues(preset); !bad.empty()) {
    return Invalid("impossible value for " + bad);
  }
  return preset;
}

HostResult<Preset> LoadPresetFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error{StatusCode::kNotFound, "cannot read preset file " + path};
  std::stringstream text;
  text << in.rdbuf();
  HostResult<Preset> preset = ParsePreset(text.str());
  if (!preset.ok()) return preset.error().WithContext(path);
  return preset;
}

HostResult<Preset> LoadPreset(const std::string& name_or_path, const std::string& preset_dir) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 5 &&
                        name_or_path.compare(name_or_path.size() - 5, 5, ".yaml") == 0);
  if (is_path) return LoadPresetFile(name_or_path);
  const std::string dir = preset_dir.empty() ? WAFER_PRESET_DIR : preset_dir;
  return LoadPresetFile(dir + "/" + name_or_path + ".yaml");
}

}  // namespace wafer::wafer_model

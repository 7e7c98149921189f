// Hardware presets: the parameters of a simulated wafer, loaded from YAML data files
// (wafer_model/presets/*.yaml). See shared/design/HARDWARE.md for where the numbers come from.
#pragma once

#include <cstdint>
#include <string>

#include "common/error.h"

namespace wafer::wafer_model {

struct Preset {
  std::string name;
  // wafer:
  uint32_t dies_x = 0;
  uint32_t dies_y = 0;
  // Physical layout: rows x cols PEs; the last spare_cols_per_row of each row's healthy PEs are
  // spares. defect_rate is the probability that a PE is defective from manufacturing (the fuses
  // are drawn from it with the board's seed).
  uint32_t physical_rows = 0;
  uint32_t physical_cols = 0;
  uint32_t spare_cols_per_row = 0;
  double defect_rate = 0;
  // Derived when parsed: physical_rows * physical_cols, and the nominal usable rectangle
  // (physical_cols - spare_cols_per_row) x physical_rows, before any row is dropped.
  uint64_t physical_pes = 0;
  uint32_t fabric_width = 0;
  uint32_t fabric_height = 0;
  uint32_t sram_per_pe_bytes = 0;
  double sram_bytes_per_cycle_per_pe = 0;
  uint32_t simd_width = 0;
  double clock_hz = 0;
  // fabric:
  double hop_latency_cycles = 0;
  double router_cycles = 0;
  // host:
  double io_bytes_per_s = 0;
  double round_trip_us = 0;
  uint32_t max_slots = 0;
  // power:
  double peak_w = 0;
  double idle_w = 0;
  // thermal:
  double coolant_in_c = 0;
  double coolant_flow_kg_s = 0;
  double resistance_c_per_w = 0;
  double time_constant_s = 0;
  double warn_c = 0;
  double critical_c = 0;
  // interwafer: the link between consecutive wafers of a pipeline (a model split by layers over
  // several boards). One way, per hop: a fixed latency plus the activations' bytes at
  // interwafer_bytes_per_s. HARDWARE.md does not list these; see the presets for the assumption.
  double interwafer_hop_latency_us = 0;
  double interwafer_bytes_per_s = 0;

  // The nominal usable rectangle (a harvested board may have dropped rows: see SimWafer).
  uint64_t usable_pes() const { return uint64_t{fabric_width} * fabric_height; }
  uint64_t sram_total_bytes() const { return usable_pes() * sram_per_pe_bytes; }
  uint32_t regions() const { return dies_x * dies_y; }
};

// Parses a preset from YAML text. Every key is required.
//
// Returns:
//   INVALID_ARGUMENT - not YAML, an unknown key, a missing key, a wrong type or an impossible
//                      value (zero PEs, idle power above peak, ...); the message names the key
//                      and, where the YAML gives one, its line.
HostResult<Preset> ParsePreset(const std::string& yaml_text);

// Loads a preset file.
//
// Returns:
//   NOT_FOUND        - the file cannot be read; the message names it.
//   INVALID_ARGUMENT - as ParsePreset, the message prefixed with "<path>: ".
HostResult<Preset> LoadPresetFile(const std::string& path);

// Resolves `name_or_path`: a path when it contains '/' or ends in ".yaml", otherwise
// "<preset_dir>/<name>.yaml" (preset_dir defaults to the source tree's wafer_model/presets).
// Returns what LoadPresetFile does.
HostResult<Preset> LoadPreset(const std::string& name_or_path, const std::string& preset_dir = "");

}  // namespace wafer::wafer_model

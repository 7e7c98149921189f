// For tests: what a prometheus-cpp registry holds, as plain values.
#pragma once

#include <map>
#include <string>

#include <prometheus/registry.h>

namespace wafer::telemetry::testing {

// Every counter and gauge sample of `registry` as "name{label values in label-name order}" ->
// value ("wafer_replica_slots{0,m}" for board="0", model="m"); "name{}" without labels.
inline std::map<std::string, double> Samples(prometheus::Registry& registry) {
  std::map<std::string, double> out;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    for (const prometheus::ClientMetric& m : family.metric) {
      std::string key = family.name + "{";
      for (const prometheus::ClientMetric::Label& l : m.label) key += l.value + ",";
      if (key.back() == ',') key.pop_back();
      key += '}';
      out[key] = family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return out;
}

}  // namespace wafer::telemetry::testing

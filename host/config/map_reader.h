// MapReader: walks one YAML map of waferd.yaml, reading known keys and refusing unknown ones,
// every failure an INVALID_ARGUMENT Error naming the key and its line. Private to host/config.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/error.h"

namespace wafer::host::config_internal {

// yaml-cpp throws on bad conversions; this class catches them and turns them into an Error.
// Each read returns false on failure (so that reads chain with &&) and keeps the failure for
// error(); the parse functions return that Error. Not thread-safe; lives for one parse.
class MapReader {
 public:
  MapReader(const YAML::Node& node, std::string prefix) : node_(node), prefix_(std::move(prefix)) {}

  bool IsMap() {
    if (node_.IsMap()) return true;
    return Reject(node_, prefix_.empty() ? "(top level)" : prefix_, "must be a mapping");
  }

  bool String(const char* key, std::string* out, bool allow_empty = true) {
    known_.insert(key);
    YAML::Node v = node_[key];
    if (!v) return true;
    if (!v.IsScalar()) return Reject(v, Name(key), "must be a string");
    *out = v.Scalar();
    if (!allow_empty && out->empty()) return Reject(v, Name(key), "must not be empty");
    return true;
  }

  // true or false.
  bool Bool(const char* key, bool* out) {
    known_.insert(key);
    YAML::Node v = node_[key];
    if (!v) return true;
    if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false")) {
      return Reject(v, Name(key), "must be true or false");
    }
    *out = v.Scalar() == "true";
    return true;
  }

  template <typename T>
  bool Uint(const char* key, T* out, uint64_t min, uint64_t max) {
    known_.insert(key);
    YAML::Node v = node_[key];
    if (!v) return true;
    uint64_t value = 0;
    const std::string& s = v.IsScalar() ? v.Scalar() : std::string();
    if (!v.IsScalar() || s.empty() || s.find_first_not_of("0123456789") != std::string::npos) {
      return Reject(v, Name(key), "must be a non-negative integer");
    }
    try {
      value = std::stoull(s);
    } catch (const std::exception&) {
      return Reject(v, Name(key), "integer out of range");
    }
    if (value < min || value > max) {
      return Reject(v, Name(key),
                    "must be between " + std::to_string(min) + " and " + std::to_string(max));
    }
    *out = static_cast<T>(value);
    return true;
  }

  // A list of integers, each in [min, max]. Absent: `out` is left alone.
  bool UintList(const char* key, std::vector<uint32_t>* out, uint64_t min, uint64_t max) {
    known_.insert(key);
    YAML::Node v = node_[key];
    if (!v) return true;
    if (!v.IsSequence() || v.size() == 0) return Reject(v, Name(key), "must be a non-empty list");
    out->clear();
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string& s = v[i].IsScalar() ? v[i].Scalar() : std::string();
      if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos ||
          std::stoull(s) < min || std::stoull(s) > max) {
        return Reject(v[i], Name(key),
                      "entries must be integers between " + std::to_string(min) + " and " +
                          std::to_string(max));
      }
      out->push_back(static_cast<uint32_t>(std::stoull(s)));
    }
    return true;
  }

  YAML::Node Child(const char* key) {
    known_.insert(key);
    return node_[key];
  }

  // Call after reading every key.
  bool NoUnknownKeys() {
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      std::string key = it->first.IsScalar() ? it->first.Scalar() : "?";
      if (known_.count(key) == 0) return Reject(it->first, Name(key.c_str()), "unknown key");
    }
    return true;
  }

  // The failure of the read that last returned false: INVALID_ARGUMENT, "line N: key: why".
  const Error& error() const { return error_; }

  // INVALID_ARGUMENT "line N: `name`: `why`", N being the line of `at`; for checks the caller
  // makes after reading.
  static Error Fail(const YAML::Node& at, const std::string& name, const std::string& why) {
    return Error{StatusCode::kInvalidArgument,
                 "line " + std::to_string(at.Mark().line + 1) + ": " + name + ": " + why};
  }

  std::string Name(const char* key) const { return prefix_.empty() ? key : prefix_ + "." + key; }

 private:
  bool Reject(const YAML::Node& at, const std::string& name, const std::string& why) {
    error_ = Fail(at, name, why);
    return false;
  }

  YAML::Node node_;
  std::string prefix_;
  Error error_{StatusCode::kInvalidArgument, {}};
  std::set<std::string> known_;
};

}  // namespace wafer::host::config_internal

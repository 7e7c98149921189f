// Who may do what on the daemon's sockets when CURVE is on: the ZAP handler admits a client key
// to the socket its role belongs to (submitters to the job socket, viewers and admins to the
// admin socket) and names it; the front ends then bind a submitter's jobs to its tenant and keep
// a viewer read-only. With CURVE off every client is anonymous and may do everything
// (loopback only, or `security.insecure`).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "common/result.h"
#include "host/config/daemon_config.h"

namespace wafer::host {

inline constexpr const char* kJobZapDomain = "waferd-job";
inline constexpr const char* kAdminZapDomain = "waferd-admin";

// Immutable after construction; thread-safe to read (the ZAP handler's thread asks it too).
class AccessPolicy {
 public:
  explicit AccessPolicy(const SecurityConfig& security);

  bool curve() const { return curve_; }
  // The name a client key gets on a socket of `domain`, or nullopt when the key may not use it.
  std::optional<std::string> Admit(const std::string& domain, const std::string& public_key) const;
  // The key named `user_id` (the ZAP user id of a message), or nullptr (plaintext: anonymous).
  const ClientKeyConfig* Find(const std::string& user_id) const;

 private:
  bool curve_ = false;
  std::map<std::string, ClientKeyConfig> by_name_;
  std::map<std::string, std::string> name_by_key_;
};

// Reads the daemon's CURVE secret key from `path`. INVALID_ARGUMENT (`detail` names the file)
// when the file is readable by group or others, or does not hold a 40-character Z85 key;
// NOT_FOUND when it cannot be read.
Result<std::string> ReadSecretKeyFile(const std::string& path, std::string* detail);

// True for endpoints only this host can reach: inproc://, ipc://, and tcp:// on 127.0.0.0/8,
// [::1] or localhost.
bool LoopbackEndpoint(const std::string& endpoint);

}  // namespace wafer::host

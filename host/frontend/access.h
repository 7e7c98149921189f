// Who may do what on the daemon's sockets when CURVE is on: the ZAP handler admits a client key
// to the socket its role belongs to (submitters to the job socket, viewers and admins to the
// admin socket) and names it; the front ends then bind a submitter's jobs to its tenant and keep
// a viewer read-only. With CURVE off every client is anonymous and may do everything
// (loopback only, or `security.insecure`).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/result.h"
#include "host/config/daemon_config.h"

namespace wafer::host {

inline constexpr const char* kJobZapDomain = "waferd-job";
inline constexpr const char* kAdminZapDomain = "waferd-admin";

// Thread-safe: the ZAP handler's thread admits keys while the step loop reads them, and a
// reload replaces the allowlist under both.
class AccessPolicy {
 public:
  explicit AccessPolicy(const SecurityConfig& security);

  bool curve() const { return curve_; }
  // The name a client key gets on a socket of `domain`, or nullopt when the key may not use it.
  std::optional<std::string> Admit(const std::string& domain, const std::string& public_key) const;
  // The key named `user_id` (the ZAP user id of a message) as the allowlist holds it now, or
  // nullopt: on a plaintext socket (empty id) the client is anonymous; on a CURVE socket the key
  // was removed since it connected, and may do nothing.
  std::optional<ClientKeyConfig> Find(const std::string& user_id) const;
  // Who sent a message with ZAP user id `user` on the socket of `domain`, as the allowlist and
  // roles stand now: nullopt with `*refused` false on a plaintext socket (anonymous); the key;
  // or nullopt with `*refused` true when CURVE is on and the key was removed, or its role no
  // longer belongs on this socket, since its handshake (a reload).
  std::optional<ClientKeyConfig> Caller(const std::string& domain, const std::string& user,
                                        bool* refused) const;
  // Replaces the allowlist (a reload): connections of removed keys stay open but are refused
  // from their next message on; new connections are admitted by the new list.
  void ReplaceClients(const std::vector<ClientKeyConfig>& clients);

 private:
  struct Lists {
    std::map<std::string, ClientKeyConfig> by_name;
    std::map<std::string, std::string> name_by_key;
  };
  static std::shared_ptr<const Lists> Build(const std::vector<ClientKeyConfig>& clients);
  static bool RoleBelongs(const std::string& domain, const std::string& role);
  std::shared_ptr<const Lists> lists() const;

  const bool curve_;
  mutable std::mutex mu_;
  std::shared_ptr<const Lists> lists_;  // Guarded by mu_; replaced whole.
};

// Reads a one-line secret (trailing whitespace dropped) from `path`. Every message names the
// file.
//
// Returns:
//   OK               - the secret.
//   INVALID_ARGUMENT - the file is readable by group or others.
//   NOT_FOUND        - the file cannot be read.
HostResult<std::string> ReadPrivateFile(const std::string& path);

// Reads the daemon's CURVE secret key from `path`. Every message names the file.
//
// Returns:
//   OK               - the key (40 characters of Z85).
//   INVALID_ARGUMENT - the file is readable by group or others, or does not hold a
//                      40-character Z85 key.
//   NOT_FOUND        - the file cannot be read.
HostResult<std::string> ReadSecretKeyFile(const std::string& path);

// The transport rules of `config`: without a server key, no job or admin endpoint and no board
// link may be reachable from other hosts unless security.insecure; a board key needs the
// daemon's own key pair. Returns OK, or INVALID_ARGUMENT (the message names the endpoint and
// the fix).
HostStatus CheckTransportSecurity(const DaemonConfig& config);

struct BasicAuth {
  std::string user;
  std::string password;
};
// Reads "user:password" from the first line of `path`. Returns ReadPrivateFile's errors, or
// INVALID_ARGUMENT when either part is empty or the colon is missing.
HostResult<BasicAuth> ReadBasicAuthFile(const std::string& path);

// True for endpoints only this host can reach: inproc://, ipc://, and tcp:// on 127.0.0.0/8,
// [::1] or localhost.
bool LoopbackEndpoint(const std::string& endpoint);

}  // namespace wafer::host

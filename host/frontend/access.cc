#include "host/frontend/access.h"

#include <sys/stat.h>

#include <fstream>

namespace wafer::host {

AccessPolicy::AccessPolicy(const SecurityConfig& security)
    : curve_(security.curve()), lists_(Build(security.clients)) {}

std::shared_ptr<const AccessPolicy::Lists> AccessPolicy::Build(
    const std::vector<ClientKeyConfig>& clients) {
  auto lists = std::make_shared<Lists>();
  for (const ClientKeyConfig& key : clients) {
    lists->by_name.emplace(key.name, key);
    lists->name_by_key.emplace(key.public_key, key.name);
  }
  return lists;
}

std::shared_ptr<const AccessPolicy::Lists> AccessPolicy::lists() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lists_;
}

void AccessPolicy::ReplaceClients(const std::vector<ClientKeyConfig>& clients) {
  std::shared_ptr<const Lists> fresh = Build(clients);
  std::lock_guard<std::mutex> lock(mu_);
  lists_ = std::move(fresh);
}

std::optional<std::string> AccessPolicy::Admit(const std::string& domain,
                                               const std::string& public_key) const {
  const std::shared_ptr<const Lists> l = lists();
  auto it = l->name_by_key.find(public_key);
  if (it == l->name_by_key.end()) return std::nullopt;
  if (!RoleBelongs(domain, l->by_name.at(it->second).role)) return std::nullopt;
  return it->second;
}

bool AccessPolicy::RoleBelongs(const std::string& domain, const std::string& role) {
  if (domain == kJobZapDomain) return role == "submitter";
  if (domain == kAdminZapDomain) return role == "viewer" || role == "admin";
  return false;
}

std::optional<ClientKeyConfig> AccessPolicy::Caller(const std::string& domain,
                                                    const std::string& user,
                                                    bool* refused) const {
  *refused = false;
  if (!curve_) return std::nullopt;
  std::optional<ClientKeyConfig> key = Find(user);
  if (!key || !RoleBelongs(domain, key->role)) {
    *refused = true;
    return std::nullopt;
  }
  return key;
}

std::optional<ClientKeyConfig> AccessPolicy::Find(const std::string& user_id) const {
  const std::shared_ptr<const Lists> l = lists();
  auto it = l->by_name.find(user_id);
  if (it == l->by_name.end()) return std::nullopt;
  return it->second;
}

Result<std::string> ReadPrivateFile(const std::string& path, std::string* detail) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    *detail = "cannot read " + path;
    return NotFound();
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    *detail = path + " is readable by group or others: chmod 600 it (waferd refuses to use it)";
    return InvalidArgument();
  }
  std::ifstream in(path);
  if (!in) {
    *detail = "cannot read " + path;
    return NotFound();
  }
  std::string text;
  std::getline(in, text);
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

Result<std::string> ReadSecretKeyFile(const std::string& path, std::string* detail) {
  WAFER_ASSIGN_OR_RETURN(std::string key, ReadPrivateFile(path, detail));
  if (key.size() != 40) {
    *detail = "the secret key file " + path + " does not hold a 40-character Z85 CURVE key";
    return InvalidArgument();
  }
  return key;
}

Status CheckTransportSecurity(const DaemonConfig& config, std::string* detail) {
  const SecurityConfig& security = config.security;
  if (!security.curve() && !security.insecure) {
    for (const std::string* e : {&config.job_endpoint, &config.admin_endpoint}) {
      if (!LoopbackEndpoint(*e)) {
        *detail = *e + " is reachable from other hosts: set security.server_secret_key_file " +
                  "(CURVE), or security.insecure: true to serve it in plaintext";
        return InvalidArgument();
      }
    }
  }
  for (const BoardConfig& board : config.boards) {
    if (!board.curve_public_key.empty() && !security.curve()) {
      *detail = "board " + board.endpoint + " has a curve_public_key but the daemon has no key "
                "pair of its own: set security.server_secret_key_file";
      return InvalidArgument();
    }
    if (board.curve_public_key.empty() && !LoopbackEndpoint(board.endpoint) &&
        !security.insecure) {
      *detail = "board " + board.endpoint + " is reached over the network in plaintext: give it "
                "a curve_public_key, or set security.insecure: true";
      return InvalidArgument();
    }
  }
  return OkStatus();
}

Result<BasicAuth> ReadBasicAuthFile(const std::string& path, std::string* detail) {
  WAFER_ASSIGN_OR_RETURN(std::string line, ReadPrivateFile(path, detail));
  const size_t colon = line.find(':');
  if (colon == 0 || colon == std::string::npos || colon + 1 == line.size()) {
    *detail = path + " must hold user:password on its first line";
    return InvalidArgument();
  }
  return BasicAuth{line.substr(0, colon), line.substr(colon + 1)};
}

bool LoopbackEndpoint(const std::string& endpoint) {
  if (endpoint.rfind("inproc://", 0) == 0 || endpoint.rfind("ipc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  const std::string host = endpoint.substr(6, endpoint.rfind(':') - 6);
  return host.rfind("127.", 0) == 0 || host == "[::1]" || host == "localhost";
}

}  // namespace wafer::host

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

HostResult<std::string> ReadPrivateFile(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return Error{StatusCode::kNotFound, "cannot read " + path};
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return Error{StatusCode::kInvalidArgument,
                 path + " is readable by group or others: chmod 600 it (waferd refuses to use it)"};
  }
  std::ifstream in(path);
  if (!in) {
    return Error{StatusCode::kNotFound, "cannot read " + path};
  }
  std::string text;
  std::getline(in, text);
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

HostResult<std::string> ReadSecretKeyFile(const std::string& path) {
  WAFER_HOST_ASSIGN_OR_RETURN(std::string key, ReadPrivateFile(path));
  if (key.size() != 40) {
    return Error{StatusCode::kInvalidArgument,
                 "the secret key file " + path + " does not hold a 40-character Z85 CURVE key"};
  }
  return key;
}

HostStatus CheckTransportSecurity(const DaemonConfig& config) {
  const SecurityConfig& security = config.security;
  if (!security.curve() && !security.insecure) {
    for (const std::string* e : {&config.job_endpoint, &config.admin_endpoint}) {
      if (!LoopbackEndpoint(*e)) {
        return Error{StatusCode::kInvalidArgument,
                     *e + " is reachable from other hosts: set security.server_secret_key_file " +
                         "(CURVE), or security.insecure: true to serve it in plaintext"};
      }
    }
  }
  for (const BoardConfig& board : config.boards) {
    if (!board.curve_public_key.empty() && !security.curve()) {
      return Error{StatusCode::kInvalidArgument,
                   "board " + board.endpoint +
                       " has a curve_public_key but the daemon has no key "
                       "pair of its own: set security.server_secret_key_file"};
    }
    if (board.curve_public_key.empty() && !LoopbackEndpoint(board.endpoint) &&
        !security.insecure) {
      return Error{StatusCode::kInvalidArgument,
                   "board " + board.endpoint +
                       " is reached over the network in plaintext: give it "
                       "a curve_public_key, or set security.insecure: true"};
    }
  }
  return HostOk();
}

HostResult<BasicAuth> ReadBasicAuthFile(const std::string& path) {
  WAFER_HOST_ASSIGN_OR_RETURN(std::string line, ReadPrivateFile(path));
  const size_t colon = line.find(':');
  if (colon == 0 || colon == std::string::npos || colon + 1 == line.size()) {
    return Error{StatusCode::kInvalidArgument, path + " must hold user:password on its first line"};
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

// waferd's configuration: one YAML file, a default for every key. An unknown key, a wrong type or
// an impossible value is an error naming the key and its line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "host/config/health_config.h"
#include "host/config/scheduling_config.h"

namespace wafer::host {

struct BoardConfig {
  // inproc://NAME starts an embedded simulated board on that endpoint; ipc:// and tcp:// connect
  // to a board (a wafer-sim process) that is already listening there.
  std::string endpoint = "inproc://board0";
  std::string preset = "mini";  // Embedded boards only.
  uint64_t seed = 1;            // Embedded boards only.
  // Embedded boards only. "realtime": a Step takes its modeled device time, so tokens stream at
  // the modeled rate; "fast": as fast as the host can simulate.
  std::string pacing = "fast";
  uint32_t timeout_ms = 10000;  // Bound on every board-link call.
  // A wafer-sim process's CURVE public key (Z85): the link is then encrypted and authenticated,
  // with the daemon's own key pair (security.server_secret_key_file) as the client's.
  std::string curve_public_key;

  bool embedded() const { return endpoint.rfind("inproc://", 0) == 0; }
};

struct ModelLoadConfig {
  std::string name;  // Empty: the directory's base name.
  std::string path;
  uint32_t board = 0;
  // A model split over several boards as a layer pipeline, first to last (`boards: [0, 1]`).
  // After parsing never empty: `board` alone becomes {board}, and `board` is boards[0].
  std::vector<uint32_t> boards;
  uint32_t slots = 0;           // 0: scheduler.default_slots.
  uint32_t context_length = 0;  // 0: the model's max_position_embeddings.
};

// A client key the daemon admits (CURVE). Roles: "submitter" (the job socket, jobs run as
// `tenant`), "viewer" (the admin socket, read-only), "admin" (the admin socket, everything).
struct ClientKeyConfig {
  std::string name;        // Shown in logs; the ZAP user id.
  std::string public_key;  // Z85, 40 characters.
  std::string role;
  std::string tenant;  // Submitters: the tenant their jobs run under (required).
};

struct SecurityConfig {
  // The daemon's CURVE secret key (Z85 text; the file must not be readable by group or others).
  // Empty: the job and admin sockets are plaintext, which waferd allows only on loopback
  // addresses unless `insecure` is true.
  std::string server_secret_key_file;
  std::vector<ClientKeyConfig> clients;
  bool insecure = false;
  // HTTP basic authentication on /metrics: a file holding "user:password" on one line (mode
  // 600). Empty: /metrics is open to whoever reaches metrics_address.
  std::string metrics_auth_file;
  // The audit log (admin actions, refusals, refused keys). Empty: stderr, "waferd audit:" lines.
  std::string audit_log_file;
  // Directories an admin-socket load may read a model from (the path, resolved, must lie under
  // one). Empty: anywhere the daemon can read.
  std::vector<std::string> model_roots;

  bool curve() const { return !server_secret_key_file.empty(); }
};

// A client opts into heartbeats with its first Heartbeat on the job socket; one that never
// sends one is never judged by them.
struct HeartbeatConfig {
  uint32_t interval_ms = 1000;  // The daemon sends an opted-in client one this often.
  // An opted-in client that sends nothing (heartbeat or otherwise) this long is gone...
  uint32_t timeout_ms = 5000;
  // ...and its unfinished jobs wait this long for a ResumeStream (from any connection), then
  // end with FinishReason kAbandoned.
  uint32_t grace_ms = 60000;
};

// Where accepted jobs are kept (see host/jobs/sqlite_job_store.h).
struct JobStoreConfig {
  // An SQLite file; "default": $XDG_STATE_HOME/waferd/jobs.db (else
  // ~/.local/state/waferd/jobs.db), its folder created on first start; "memory": jobs live in
  // memory only and a crash or restart loses them.
  std::string path = "default";
  // true: a job is acknowledged only once it is on disk (fsync), surviving a power cut; false:
  // once the operating system has it, surviving a crash of waferd but not of the host.
  bool fsync = true;
  // Finished jobs are kept for resumes and idempotent retries while they hold at most this.
  uint64_t finished_retention_bytes = 256ull << 20;

  bool durable() const { return path != "memory"; }
};

struct DaemonConfig {
  std::string job_endpoint = "tcp://127.0.0.1:7421";
  std::string admin_endpoint = "tcp://127.0.0.1:7422";
  std::string metrics_address = "127.0.0.1:9464";  // host:port; port 0 picks a free one.
  uint32_t max_message_bytes = 1 << 20;            // ZMQ_MAXMSGSIZE on both sockets.
  uint32_t send_high_water_mark = 100000;          // Messages queued per peer before EAGAIN.
  uint32_t drain_timeout_ms = 30000;
  // How a load uses the rows free on its boards. "pack": each band of the model takes the fewest
  // rows that hold it, so several models share a board. "spread": the model takes every row of
  // the free gap it lands in (more PEs per layer: faster compute and prefill, as `waferctl model
  // plan` reports by default), leaving that gap to no other model.
  std::string placement = "pack";
  // A model split over boards. "direct": each board hands its hidden states to the next over the
  // inter-wafer link and the first board runs a Step's every token through the pipeline
  // (board.fbs NextStage); used when the boards can reach each other (all embedded, or all
  // wafer-sim processes without CURVE), else "host". "host": the step loop relays every stage's
  // hidden states and a Step yields one token per sequence.
  std::string pipeline_handoff = "direct";

  std::string scheduler_policy = "fair";  // fair (host/scheduler/fair_policy.h) or fifo.
  uint32_t queue_limit = 10000;          // Jobs queued for all models together.
  uint32_t max_tokens_limit = 16384;   // Largest max_tokens a job may ask for.
  // Most stop tokens a job may give. Every Step carries each of its sequences' stop tokens, so
  // this bounds what one job adds to a Step's frame.
  uint32_t max_stop_tokens = 64;
  uint32_t max_batch = 256;            // Sequences per Step.
  uint32_t decode_tokens_per_step = 8;
  uint32_t steps_in_flight = 2;  // Per board: the board computes one group while the next waits.
  uint32_t prefill_chunk_tokens = 512;
  uint32_t default_slots = 64;
  // Finished jobs kept, with their tokens, for ResumeStream and JobStatus (~4 bytes a token).
  uint32_t finished_job_retention = 1000;
  // Classes, tenants, per-model queues, preemption (the rest of `scheduler:`).
  SchedulingConfig scheduling;
  HealthConfig health;

  // Heartbeats on the job socket, for clients that opt in by sending one.
  HeartbeatConfig heartbeat;
  JobStoreConfig store;
  SecurityConfig security;
  std::vector<BoardConfig> boards = {BoardConfig{}};
  std::vector<ModelLoadConfig> models;
};

// Parses YAML text over the defaults (empty text: DaemonConfig{}).
//
// Returns:
//   OK               - the configuration.
//   INVALID_ARGUMENT - a YAML syntax error, an unknown key, a wrong type or an impossible value;
//                      the message names the key and line ("line 4: scheduler.max_batch: must be
//                      between 1 and 4096").
HostResult<DaemonConfig> ParseDaemonConfig(const std::string& yaml_text);

// Reads and parses a file.
//
// Returns:
//   OK               - the configuration.
//   NOT_FOUND        - the file cannot be read ("cannot read config file PATH").
//   INVALID_ARGUMENT - as ParseDaemonConfig, the message prefixed with "PATH: ".
HostResult<DaemonConfig> LoadDaemonConfig(const std::string& path);

// The file `store.path` names: "default" resolved against the environment; "" for "memory".
std::string ResolveStorePath(const JobStoreConfig& store);

// The defaults as commented YAML; parsing it yields DaemonConfig{}.
std::string DefaultConfigYaml();

}  // namespace wafer::host

// What one waferctl invocation asks for, as the command-line parser (ctl_cli.h) fills it and
// the commands (ctl_commands.h) read it. Plain data: no parsing and no I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "host/ctl/jobs_command.h"
#include "host/ctl/model_plan_options.h"

namespace wafer::host {

// Every command waferctl runs; kNone until the parser chose one.
enum class CtlCommand {
  kNone,
  kStatus,
  kSubmit,
  kLoad,
  kUnload,
  kDrain,
  kUndrain,
  kReset,
  kLogs,
  kBoardShow,
  kFault,
  kCapacity,
  kJobs,  // JobsCommand says which (list, show, cancel); kJobsTail is its own.
  kJobsTail,
  kModelPlan,
  kHealth,
  kHealthClear,
  kDiag,
  kKeysGenerate,
  kTop,
  kFirmwareInfo,
  kFirmwareUpdate,
  kFirmwareRollback,
  kCompletion,
};

// `waferctl submit`'s options.
struct SubmitOptions {
  std::string model;
  std::string prompt;
  std::vector<uint32_t> tokens;
  uint32_t max_tokens = 64;
  float temperature = 0;
  uint32_t top_k = 0;
  float top_p = 1;
  uint64_t seed = 0;
  std::string tenant = "default";
  std::string idempotency_key;
  uint32_t retry_ms = 60000;
};

// `waferctl fault`'s options.
struct FaultOptions {
  std::string kind;
  uint32_t region = 0;
  uint32_t row = 0;
  uint32_t pe = 0;
  double value = 0;
};

struct CtlOptions {
  // ---- global: valid before or after the command ----
  std::string job_endpoint;    // --endpoint (the job socket: submit, capacity).
  std::string admin_endpoint;  // --admin-endpoint (every other daemon command).
  uint32_t timeout_ms = 5000;  // --timeout-ms: how long one request waits for its answer.
  std::string server_key_file;  // --server-key (CURVE).
  std::string key_file;         // --key (CURVE).
  bool json = false;            // --json.

  CtlCommand command = CtlCommand::kNone;

  // ---- per command; each reads only its own ----
  std::optional<uint32_t> board;  // BOARD or --board, when one board is meant.
  std::vector<uint32_t> boards;   // load --board B[,B...] (default 0).
  std::string path;               // load PATH, keys generate PATH, firmware update IMAGE.
  std::string name;               // load --name, unload NAME.
  std::string signature_file;     // firmware update --signature (default IMAGE.sig).
  uint32_t slots = 0;             // load --slots (0: the daemon's default).
  uint32_t context = 0;           // load --context (0: the model's).
  bool evacuate = false;          // drain --board B --evacuate.
  uint64_t from = 0;              // logs --from SEQ; jobs tail --from CHUNK.
  uint32_t level = 0;             // diag -r.
  uint64_t job_id = 0;            // jobs tail ID.
  uint32_t interval_ms = 1000;    // top --interval-ms.
  uint32_t count = 0;             // top --count (0: until q).
  std::string shell;              // completion SHELL.
  SubmitOptions submit;
  ModelPlanOptions plan;
  FaultOptions fault;
  JobsCommand jobs;
};

}  // namespace wafer::host

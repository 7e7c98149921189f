#include "host/ctl/ctl_commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include <nlohmann/json.hpp>

#include "common/net/curve.h"
#include "host/client/wafer_client.h"
#include "host/ctl/board_view.h"
#include "host/ctl/ctl_cli.h"
#include "host/ctl/ctl_output.h"
#include "host/ctl/diag_command.h"
#include "host/ctl/exit_codes.h"
#include "host/ctl/firmware_command.h"
#include "host/ctl/health_command.h"
#include "host/ctl/jobs_command.h"
#include "host/ctl/jobs_tail.h"
#include "host/ctl/model_plan.h"
#include "host/ctl/top_command.h"

namespace wafer::host {
namespace {

using json = nlohmann::json;

// A client that could not be made: a malformed endpoint is the command line's fault.
int ConnectFailed(const Error& error, const std::string& endpoint, const CtlOptions& o,
                  const CtlIo& io) {
  if (error.code == StatusCode::kInvalidArgument) {
    io.err << "waferctl: bad endpoint '" << endpoint << "': " << error.message << "\n";
    return kExitUsage;
  }
  return RequestFailed(error.WithContext("cannot connect to " + endpoint), o.json, io.out,
                       io.err);
}

// ---- keys ----

// Reads a one-line Z85 key file (40 characters). False, with a message, when it is not one.
bool ReadKeyFile(const std::string& path, std::string* key, std::ostream& err) {
  std::ifstream in(path);
  std::getline(in, *key);
  while (!key->empty() && (key->back() == '\r' || key->back() == ' ')) key->pop_back();
  if (!in && !in.eof()) key->clear();
  if (key->size() == 40) return true;
  err << "waferctl: " << path << " does not hold a 40-character Z85 CURVE key\n";
  return false;
}

// The CURVE keys of --server-key and --key; both or neither. False (usage) otherwise.
bool KeysFromFiles(const CtlOptions& o, ClientKeys* keys, std::ostream& err) {
  if (o.server_key_file.empty() && o.key_file.empty()) return true;
  if (o.server_key_file.empty() || o.key_file.empty()) {
    err << "waferctl: CURVE needs both --server-key and --key\n";
    return false;
  }
  if (!ReadKeyFile(o.server_key_file, &keys->server_public_key, err) ||
      !ReadKeyFile(o.key_file, &keys->secret_key, err)) {
    return false;
  }
  Result<std::string> pub = net::CurvePublicKeyOf(keys->secret_key);
  if (!pub.ok()) {
    err << "waferctl: " << o.key_file << " is not a CURVE secret key\n";
    return false;
  }
  keys->public_key = *pub;
  return true;
}

int CmdKeysGenerate(const CtlOptions& o, const CtlIo& io) {
  Result<net::CurveKeyPair> pair = net::GenerateCurveKeyPair();
  if (!pair.ok()) {
    io.err << "waferctl: this libzmq cannot make CURVE keys\n";
    return kExitFailed;
  }
  const std::string secret_path = o.path + ".key", public_path = o.path + ".pub";
  // Created private: the secret never sits in a file others can read.
  const int fd = open(secret_path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    io.err << "waferctl: cannot create " << secret_path << " (" << std::strerror(errno) << ")\n";
    return kExitFailed;
  }
  const std::string line = pair->secret_key + "\n";
  const bool wrote = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  std::ofstream(public_path) << pair->public_key << "\n";
  if (!wrote) {
    io.err << "waferctl: cannot write " << secret_path << "\n";
    return kExitFailed;
  }
  if (o.json) {
    io.out << DumpJson(json{{"ok", true}, {"public_key", pair->public_key},
                            {"secret_key_file", secret_path}, {"public_key_file", public_path}})
           << "\n";
  } else {
    io.out << pair->public_key << "\n";
  }
  return kExitOk;
}

// ---- status ----

int CmdStatus(const CtlOptions& o, AdminClient& admin, const CtlIo& io) {
  StatusReply r;
  if (HostStatus s = admin.QueryStatus(&r, static_cast<int>(o.timeout_ms)); !s.ok()) {
    return RequestFailed(s.error(), o.json, io.out, io.err);
  }
  std::ostream& out = io.out;
  if (o.json) {
    json boards = json::array(), models = json::array();
    for (const BoardInfo& b : r.boards) {
      boards.push_back({{"index", b.index}, {"endpoint", b.endpoint}, {"state", BoardStateName(b.state)},
                        {"board_id", b.board_id}, {"preset", b.preset},
                        {"firmware_version", b.firmware_version}, {"usable_pes", b.usable_pes},
                        {"sram_bytes", b.sram_bytes}, {"sram_used_bytes", b.sram_used_bytes},
                        {"max_temperature_c", b.max_temperature_c}, {"power_w", b.power_w},
                        {"steps", b.steps}, {"drain", b.drain}});
    }
    for (const ModelInfo& m : r.models) {
      models.push_back({{"name", m.name}, {"path", m.path}, {"state", ModelStateName(m.state)},
                        {"board", m.board}, {"boards", m.boards}, {"parameters", m.parameters},
                        {"weight_bytes", m.weight_bytes}, {"context_length", m.context_length},
                        {"slots", m.slots}, {"slots_used", m.slots_used}});
    }
    out << DumpJson(json{{"ok", true}, {"version", r.version}, {"uptime_s", r.uptime_s},
                         {"boards", boards}, {"models", models}, {"jobs_queued", r.jobs_queued},
                         {"jobs_running", r.jobs_running}, {"jobs_finished", r.jobs_finished},
                         {"tokens_generated", r.tokens_generated}, {"draining", r.draining},
                         {"job_endpoint", r.job_endpoint}, {"metrics_url", r.metrics_url}})
        << "\n";
    return kExitOk;
  }
  out << Fmt("waferd %s  up %.0f s%s\n", r.version.c_str(), r.uptime_s,
             r.draining ? "  DRAINING" : "");
  out << Fmt("jobs: %u queued, %u running, %llu finished; %llu tokens generated\n", r.jobs_queued,
             r.jobs_running, static_cast<unsigned long long>(r.jobs_finished),
             static_cast<unsigned long long>(r.tokens_generated));
  out << Fmt("job socket %s   metrics %s\n\n", r.job_endpoint.c_str(), r.metrics_url.c_str());
  out << Fmt("%-5s %-10s %-8s %-12s %10s %14s %8s %8s\n", "BOARD", "STATE", "PRESET", "ID", "PEs",
             "SRAM used/MB", "temp C", "power W");
  for (const BoardInfo& b : r.boards) {
    out << Fmt("%-5u %-10s %-8s %-12s %10llu %7.1f/%-6.0f %8.1f %8.0f\n", b.index,
               BoardStateName(b.state), b.preset.c_str(), b.board_id.c_str(),
               static_cast<unsigned long long>(b.usable_pes), b.sram_used_bytes / 1e6,
               b.sram_bytes / 1e6, b.max_temperature_c, b.power_w);
    if (!b.drain.empty()) out << "      drained: " << b.drain << "\n";
  }
  out << Fmt("\n%-16s %-10s %-7s %12s %8s %11s\n", "MODEL", "STATE", "BOARDS", "PARAMS",
             "CONTEXT", "SLOTS used");
  for (const ModelInfo& m : r.models) {
    std::string boards;
    for (uint32_t b : m.boards) {
      if (!boards.empty()) boards += ',';
      boards += std::to_string(b);
    }
    if (boards.empty()) boards = std::to_string(m.board);
    out << Fmt("%-16s %-10s %-7s %12llu %8u %5u/%-5u\n", m.name.c_str(), ModelStateName(m.state),
               boards.c_str(), static_cast<unsigned long long>(m.parameters), m.context_length,
               m.slots_used, m.slots);
  }
  return kExitOk;
}

// ---- the job socket: submit, capacity ----

int CmdSubmit(const CtlOptions& o, const ClientKeys& keys, const CtlIo& io) {
  const SubmitOptions& opt = o.submit;
  SubmitJob job;
  job.model = opt.model;
  job.prompt_text = opt.prompt;
  job.prompt_tokens = opt.tokens;
  job.tenant = opt.tenant;
  job.idempotency_key = opt.idempotency_key;
  job.max_tokens = opt.max_tokens;
  job.sampling.temperature = opt.temperature;
  job.sampling.top_p = opt.top_p;
  job.sampling.top_k = opt.top_k;
  job.sampling.seed = opt.seed;
  RetryOptions retry;
  retry.attempt_timeout_ms = static_cast<int>(o.timeout_ms);
  retry.total_budget_ms = static_cast<int>(std::min<uint32_t>(opt.retry_ms, INT32_MAX));
  // Retries are news, not results: they go to stderr, also with --json.
  std::ostream& err = io.err;
  retry.on_retry = [&err](const RetryEvent& e) {
    if (e.kind == RetryEvent::Kind::kResubmit) {
      err << "waferctl: " << e.reason << "; submitting again in " << e.delay_ms << " ms\n";
    } else if (e.reconnect) {
      err << "waferctl: job " << e.job_id << ": " << e.reason
          << "; reconnecting, resuming from chunk " << e.from_seq << " in " << e.delay_ms
          << " ms\n";
    } else {
      err << "waferctl: job " << e.job_id << ": " << e.reason << "; resuming from chunk "
          << e.from_seq << "\n";
    }
  };
  auto client = JobClient::Connect(o.job_endpoint, keys, std::move(retry));
  if (!client.ok()) return ConnectFailed(client.error(), o.job_endpoint, o, io);
  SubmitOutcome outcome;
  JobFinished finished;
  bool printed_text = false;
  std::ostream& out = io.out;
  HostStatus s = (*client)->RunWithRetry(
      job,
      [&](const TokenChunk& c) {
        if (o.json) {
          out << DumpJson(json{{"event", "chunk"}, {"job_id", c.job_id}, {"seq", c.seq},
                               {"tokens", c.tokens}, {"text", c.text}})
              << std::endl;
        } else if (!c.text.empty()) {
          out << c.text << std::flush;
          printed_text = true;
        } else {
          for (uint32_t t : c.tokens) out << t << ' ';
          out << std::flush;
        }
      },
      &outcome, &finished);
  if (s.code() == StatusCode::kNotFound) {
    // Accepted, then lost by the daemon: a failure of the job, not of the connection.
    RequestFailed(s.error(), o.json, io.out, io.err);
    return kExitFailed;
  }
  if (!s.ok()) return RequestFailed(s.error(), o.json, io.out, io.err);
  if (!outcome.accepted) {
    const JobRejected& r = outcome.rejection;
    if (o.json) {
      out << DumpJson(json{{"event", "rejected"}, {"code", ErrorCodeName(r.code)},
                           {"detail", r.detail}, {"retry_after_ms", r.retry_after_ms},
                           {"attempts", outcome.attempts},
                           {"idempotency_key", outcome.idempotency_key}})
          << "\n";
    } else {
      err << "waferctl: rejected: " << ErrorCodeName(r.code) << ": " << r.detail << "\n";
    }
    return kExitFailed;
  }
  const bool ok =
      finished.reason != FinishReason::kError && finished.reason != FinishReason::kCancelled;
  if (o.json) {
    out << DumpJson(json{{"event", "finished"}, {"job_id", finished.job_id},
                         {"reason", FinishReasonName(finished.reason)},
                         {"prompt_tokens", finished.prompt_tokens},
                         {"completion_tokens", finished.completion_tokens},
                         {"ttft_ms", finished.timings.ttft_ns / 1e6},
                         {"total_ms", finished.timings.total_ns / 1e6},
                         {"device_ms", finished.timings.device_ns / 1e6},
                         {"error", ErrorCodeName(finished.error_code)},
                         {"detail", finished.detail},
                         {"idempotency_key", outcome.idempotency_key}})
        << "\n";
  } else {
    if (printed_text || finished.completion_tokens > 0) out << "\n";
    err << Fmt("[job %llu: %s, %u tokens, ttft %.2f ms, total %.2f ms%s%s]\n",
               static_cast<unsigned long long>(finished.job_id),
               FinishReasonName(finished.reason), finished.completion_tokens,
               finished.timings.ttft_ns / 1e6, finished.timings.total_ns / 1e6,
               finished.detail.empty() ? "" : ": ", finished.detail.c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

int CmdCapacity(const CtlOptions& o, const ClientKeys& keys, const CtlIo& io) {
  auto client = JobClient::Connect(o.job_endpoint, keys);
  if (!client.ok()) return ConnectFailed(client.error(), o.job_endpoint, o, io);
  CapacityReply r;
  if (HostStatus s = (*client)->QueryCapacity(&r, static_cast<int>(o.timeout_ms)); !s.ok()) {
    return RequestFailed(s.error(), o.json, io.out, io.err);
  }
  json models = json::array();
  for (const ModelCapacity& m : r.models) {
    json classes = json::array();
    for (const ClassCapacity& c : m.classes) {
      classes.push_back({{"name", c.name}, {"queued", c.queued},
                         {"expected_wait_ms", c.expected_wait_ms}, {"measured", c.measured}});
    }
    json replicas = json::array();
    for (const ReplicaCapacity& rc : m.replicas) {
      replicas.push_back({{"boards", rc.boards}, {"free_slots", rc.free_slots},
                          {"total_slots", rc.total_slots}, {"running", rc.running},
                          {"serving", rc.serving}});
    }
    models.push_back({{"name", m.name}, {"free_slots", m.free_slots},
                      {"total_slots", m.total_slots}, {"context_length", m.context_length},
                      {"ready", m.ready}, {"classes", classes}, {"replicas", replicas}});
  }
  json boards = json::array();
  for (const BoardCapacity& b : r.boards) {
    static const char* kLevels[] = {"PASS", "WARN", "FAIL"};
    boards.push_back({{"board", b.board}, {"health", kLevels[std::min<uint8_t>(b.health, 2)]},
                      {"drained", b.drained}, {"drain", b.drain},
                      {"incident_code", b.incident_code}, {"incident", b.incident}});
  }
  json out{{"ok", true},          {"models", models},   {"queue_depth", r.queue_depth},
           {"queue_limit", r.queue_limit}, {"healthy", r.healthy}, {"draining", r.draining},
           {"boards", boards}};
  io.out << (o.json ? DumpJson(out) : out.dump(2, ' ', false, json::error_handler_t::replace))
         << "\n";
  return kExitOk;
}

// ---- admin operations ----

int CmdLoad(const CtlOptions& o, AdminClient& admin, const CtlIo& io) {
  LoadModel load;
  load.path = o.path;
  if (!load.path.empty() && load.path[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) load.path = std::string(cwd) + "/" + load.path;
  }
  load.name = o.name;
  load.boards = o.boards;  // --board 2, or --board 0,1,2 (pipeline order).
  load.board = load.boards.at(0);
  load.slots = o.slots;
  load.context_length = o.context;
  OperationResult r;
  HostStatus s = admin.Operate(
      load,
      [&](const LoadProgress& p) {
        if (o.json) {
          io.out << DumpJson(json{{"event", "progress"}, {"phase", p.phase},
                                  {"bytes_done", p.bytes_done}, {"bytes_total", p.bytes_total},
                                  {"bytes_per_second", p.bytes_per_second}, {"eta_s", p.eta_s}})
                 << std::endl;
          return;
        }
        double pct = p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0;
        io.err << Fmt("%sloading %5.1f%%  %8.2f / %.2f MB  %7.1f MB/s  eta %.1f s%s",
                      io.err_tty ? "\r" : "", pct, p.bytes_done / 1e6, p.bytes_total / 1e6,
                      p.bytes_per_second / 1e6, p.eta_s, io.err_tty ? "" : "\n")
               << std::flush;
      },
      &r, static_cast<int>(o.timeout_ms));
  if (io.err_tty && !o.json) io.err << "\n";
  return ReportOperation(s, r, o.json, io.out, io.err);
}

int CmdLogs(const CtlOptions& o, AdminClient& admin, const CtlIo& io) {
  BoardLogReply r;
  if (HostStatus s = admin.ReadBoardLog(*o.board, o.from, &r, static_cast<int>(o.timeout_ms));
      !s.ok()) {
    return RequestFailed(s.error(), o.json, io.out, io.err);
  }
  if (o.json) {
    json records = json::array();
    for (const BoardLogEntry& e : r.records) {
      records.push_back({{"sequence", e.sequence}, {"timestamp_ns", e.timestamp_ns},
                         {"severity", e.severity}, {"code", e.code}, {"args", e.args}});
    }
    io.out << DumpJson(json{{"ok", true}, {"board", r.board}, {"records", records},
                            {"next_sequence", r.next_sequence}, {"dropped", r.dropped}})
           << "\n";
    return kExitOk;
  }
  if (r.dropped > 0) {
    io.out << "(" << r.dropped << " records were overwritten before they were read)\n";
  }
  for (const BoardLogEntry& e : r.records) {
    io.out << Fmt("%6llu %12.6f s  %-7s %-24s", static_cast<unsigned long long>(e.sequence),
                  e.timestamp_ns / 1e9, e.severity.c_str(), e.code.c_str());
    for (uint64_t a : e.args) io.out << " " << a;
    io.out << "\n";
  }
  return kExitOk;
}

int CmdBoardShow(const CtlOptions& o, AdminClient& admin, const CtlIo& io) {
  BoardDetail detail;
  if (HostStatus s = admin.ShowBoard(*o.board, &detail, static_cast<int>(o.timeout_ms)); !s.ok()) {
    return RequestFailed(s.error(), o.json, io.out, io.err);
  }
  RenderBoard(detail, o.json, io.out_tty, io.out);
  return kExitOk;
}

int Operate(const CtlOptions& o, AdminClient& admin, const AdminMessage& request,
            const CtlIo& io) {
  OperationResult r;
  HostStatus s = admin.Operate(request, nullptr, &r, static_cast<int>(o.timeout_ms));
  return ReportOperation(s, r, o.json, io.out, io.err);
}

int RunAdminCommand(const CtlOptions& o, AdminClient& admin, const CtlIo& io) {
  const int timeout = static_cast<int>(o.timeout_ms);
  switch (o.command) {
    case CtlCommand::kStatus:
      return CmdStatus(o, admin, io);
    case CtlCommand::kLoad:
      return CmdLoad(o, admin, io);
    case CtlCommand::kUnload:
      return Operate(o, admin,
                     UnloadModel{0, o.name, o.board ? static_cast<int32_t>(*o.board) : -1}, io);
    case CtlCommand::kDrain:
      if (o.board) return Operate(o, admin, DrainBoard{0, *o.board, o.evacuate, false}, io);
      return Operate(o, admin, Drain{0}, io);
    case CtlCommand::kUndrain:
      return Operate(o, admin, DrainBoard{0, *o.board, false, true}, io);
    case CtlCommand::kReset:
      return Operate(o, admin, ResetBoard{0, *o.board}, io);
    case CtlCommand::kLogs:
      return CmdLogs(o, admin, io);
    case CtlCommand::kBoardShow:
      return CmdBoardShow(o, admin, io);
    case CtlCommand::kFault:
      return Operate(o, admin,
                     InjectFault{0, *o.board, o.fault.kind, o.fault.region, o.fault.row,
                                 o.fault.pe, o.fault.value},
                     io);
    case CtlCommand::kJobs:
      return RunJobsCommand(o.jobs, o.json, admin, timeout, io.out, io.err);
    case CtlCommand::kJobsTail:
      return RunJobsTail(o.job_id, o.from, o.json, admin, timeout, io.out, io.err);
    case CtlCommand::kHealth:
      return RunHealthCommand(o.board ? static_cast<int32_t>(*o.board) : -1, o.json, admin,
                              timeout, io.out, io.err);
    case CtlCommand::kHealthClear:
      return Operate(o, admin, ClearHealthIncident{0, *o.board}, io);
    case CtlCommand::kDiag:
      return RunDiagCommand(o.board ? static_cast<int32_t>(*o.board) : -1, o.level, o.json,
                            !o.json && io.err_tty, admin, timeout, io.out, io.err);
    case CtlCommand::kFirmwareInfo:
      return RunFirmwareInfo(*o.board, o.json, admin, timeout, io.out, io.err);
    case CtlCommand::kFirmwareUpdate:
      return RunFirmwareUpdate(*o.board, o.path, o.signature_file, o.json, io.err_tty, admin,
                               timeout, io.out, io.err);
    case CtlCommand::kFirmwareRollback:
      return RunFirmwareRollback(*o.board, o.json, admin, timeout, io.out, io.err);
    default:
      break;
  }
  io.err << "waferctl: internal error: command not handled\n";
  return kExitUsage;
}

}  // namespace

int RunCommand(const CtlOptions& o, const CtlIo& io) {
  switch (o.command) {
    case CtlCommand::kModelPlan:  // Needs no daemon.
      return RunModelPlan(o.plan, io.out, io.err);
    case CtlCommand::kKeysGenerate:
      return CmdKeysGenerate(o, io);
    case CtlCommand::kCompletion:
      io.out << BashCompletionScript();
      return kExitOk;
    default:
      break;
  }
  ClientKeys keys;
  if (!KeysFromFiles(o, &keys, io.err)) return kExitUsage;
  if (o.command == CtlCommand::kSubmit) return CmdSubmit(o, keys, io);
  if (o.command == CtlCommand::kCapacity) return CmdCapacity(o, keys, io);
  if (o.command == CtlCommand::kTop) {
    TopOptions top;
    top.admin_endpoint = o.admin_endpoint;
    top.keys = keys;
    top.timeout_ms = static_cast<int>(o.timeout_ms);
    top.interval_ms = static_cast<int>(o.interval_ms);
    top.count = o.count;
    top.json = o.json;
    top.interactive = io.stdin_tty && io.out_tty && !o.json;
    return RunTop(top, io.out, io.err);
  }
  auto admin = AdminClient::Connect(o.admin_endpoint, keys);
  if (!admin.ok()) return ConnectFailed(admin.error(), o.admin_endpoint, o, io);
  return RunAdminCommand(o, **admin, io);
}

int RunWaferctl(const std::vector<std::string>& args, const CtlIo& io) {
  CtlOptions options;
  if (std::optional<int> done = ParseCommandLine(args, &options, io.out, io.err)) return *done;
  return RunCommand(options, io);
}

}  // namespace wafer::host

// waferctl: the operator's CLI for waferd. Every command takes --json for scripts.
//
// Exit codes (stable, for scripts):
//   0  success
//   1  the daemon refused or the operation failed (rejection, load error, unknown model or job)
//   2  usage error
//   3  the daemon did not answer (not running, wrong endpoint, timeout)
//   4  protocol error (an undecodable reply)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/net/curve.h"
#include "host/client/wafer_client.h"
#include "host/ctl/board_view.h"
#include "host/ctl/exit_codes.h"
#include "host/ctl/diag_command.h"
#include "host/ctl/health_command.h"
#include "host/ctl/jobs_command.h"
#include "host/ctl/model_plan.h"

namespace wafer::host {
namespace {

using json = nlohmann::json;

struct Args {
  std::string command;
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;  // --name value, or "" for switches.
  bool json = false;

  std::string Get(const std::string& key, const std::string& fallback = "") const {
    auto it = flags.find(key);
    return it == flags.end() ? fallback : it->second;
  }
};

const char* kUsage =
    "usage: waferctl [--endpoint E] [--admin-endpoint E] [--timeout-ms N]\n"
    "                [--server-key FILE --key FILE] COMMAND [--json]\n"
    "  --server-key FILE, --key FILE   CURVE: the daemon's public key and this client's secret\n"
    "                                  key (Z85 files, as keys generate writes them)\n"
    "  keys generate PATH              write a CURVE key pair: PATH.key (secret, mode 600) and\n"
    "                                  PATH.pub; prints the public key for waferd.yaml\n"
    "  status                          boards, models, jobs\n"
    "  submit --model M (--prompt TEXT | --tokens 1,2,3) [--max-tokens N]\n"
    "         [--temperature T] [--top-k K] [--top-p P] [--seed S] [--tenant T]\n"
    "         [--idempotency-key K] [--retry-ms N]\n"
    "                                  streams the tokens to stdout, riding out a daemon\n"
    "                                  restart: retries with one idempotency key (random unless\n"
    "                                  given) and resumes the stream where it stopped, for up to\n"
    "                                  --retry-ms without a sign of the job (default 60000; 0:\n"
    "                                  give up at the first silence or refusal); --timeout-ms\n"
    "                                  is the wait per attempt\n"
    "  load PATH [--name N] [--board B[,B...]] [--slots S] [--context C]\n"
    "                                  a NAME already loaded gets another replica on B\n"
    "  unload NAME [--board B]         every replica of NAME, or the one whose first board is\n"
    "                                  B (its running jobs finish there; queued jobs wait for\n"
    "                                  the replicas that stay)\n"
    "  drain                           refuse new jobs, finish accepted ones\n"
    "  drain --board B [--evacuate]    B takes no new work; --evacuate: its running jobs go\n"
    "                                  back to the queue too (another replica resumes them,\n"
    "                                  else they resume after undrain)\n"
    "  undrain --board B               lift the operator's drain of B (a health drain stays)\n"
    "  reset BOARD\n"
    "  logs BOARD [--from SEQ]          the board firmware's error log\n"
    "  board show BOARD                draw the wafer: dies, temperatures, failed/spare PEs\n"
    "  fault BOARD KIND [--region N] [--row N] [--pe N] [--value X]\n"
    "                                  inject a fault on a simulated board (drills): pe_stop,\n"
    "                                  ecc_correctable, ecc_uncorrectable, link_crc,\n"
    "                                  thermal_runaway, power_cap, firmware_hang, process_crash;\n"
    "                                  latent (only diag finds them): sram_stuck_bit (--value:\n"
    "                                  word address), fabric_link (--value 0 east, 1 south)\n"
    "  capacity                        what the job socket can take: per model free slots,\n"
    "                                  per priority class jobs queued and the expected wait of\n"
    "                                  a new job (measured: false while a guess), and per\n"
    "                                  replica its boards, slots, running jobs and whether it\n"
    "                                  takes new jobs (serving); per board its health, drain\n"
    "                                  and open incident\n"
    "  jobs [list] [--tenant T] [--state queued|running|finished|unfinished|all] [--limit N]\n"
    "                                  the daemon's jobs: queued ones by queue position, then\n"
    "                                  running, then finished (newest first); default state\n"
    "                                  unfinished (queued and running), limit 100 (1 to 10000)\n"
    "  jobs show ID                    one job: timings, TTFT, deadline, how it ended\n"
    "  jobs cancel ID                  end a queued or running job as its client's cancel would\n"
    "                                  (needs the admin role); unknown or finished job: exit 1\n"
    "  model plan --config CONFIG.json --preset wse3|wse2|mini|PRESET.yaml [--boards N]\n"
    "         [--slots S] [--context C] [--prompt-tokens P] [--fabric WxH] [--pack]\n"
    "         [--tokens-per-step T]\n"
    "                                  placement and modeled speed; needs no daemon; --pack:\n"
    "                                  fewest rows per layer, as when boards are shared;\n"
    "                                  T: waferd's decode_tokens_per_step (default 8)\n"
    "  health [BOARD]                  each board's health rules (PASS, WARN, FAIL with a code\n"
    "                                  and message), its open incident (drained, recovering,\n"
    "                                  quarantined) with the action taken and the one to take,\n"
    "                                  and its latest closed incidents; exit 0 all pass, 5 the\n"
    "                                  worst warns, 6 the worst fails\n"
    "  health --clear BOARD            end BOARD's open incident (a quarantine too) and lift\n"
    "                                  its health drain; an operator's drain stays (admin)\n"
    "  diag -r 1|2|3 [--board B]       board diagnostics (admin), on B or on every board one\n"
    "                                  at a time: 1 (seconds, keeps serving) link, firmware,\n"
    "                                  sensors, heartbeat; 2 drains the board (evacuate), adds\n"
    "                                  the SRAM pattern test of unused PEs and a known-answer\n"
    "                                  kernel per die region, then undrains; 3 sweeps every\n"
    "                                  PE's SRAM and fabric link instead of the unused PEs,\n"
    "                                  retiring failing PEs onto spares (progress bar on a\n"
    "                                  terminal), then runs the known-answer kernel;\n"
    "                                  exit 0 all pass, 5 a test warns, 6 a test fails\n"
    "exit codes: 0 ok, 1 refused/failed, 2 usage, 3 daemon unreachable, 4 protocol error,\n"
    "            5 warn, 6 fail (health and diag only)\n";

// Flags that take no value.
bool IsSwitch(const std::string& flag) {
  return flag == "json" || flag == "help" || flag == "evacuate";
}

bool Parse(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-r") a = "--level";  // diag's run level, as DCGM's `dcgmi diag -r`.
    if (a.rfind("--", 0) == 0) {
      std::string key = a.substr(2);
      if (IsSwitch(key)) {
        args->flags[key] = "";
      } else {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "waferctl: --%s needs a value\n", key.c_str());
          return false;
        }
        args->flags[key] = argv[++i];
      }
    } else if (args->command.empty()) {
      args->command = a;
    } else {
      args->positional.push_back(a);
    }
  }
  args->json = args->flags.count("json") > 0;
  return !args->command.empty();
}

bool ParseUint(const std::string& s, uint64_t* out) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 19) {
    return false;
  }
  *out = std::stoull(s);
  return true;
}

int FromStatus(Status s, const std::string& detail, bool as_json) {
  int code = s.code() == StatusCode::kDataLoss ? kExitProtocol : kExitUnreachable;
  if (as_json) {
    std::cout << json{{"ok", false}, {"error", s.name()}, {"detail", detail}}.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::fprintf(stderr, "waferctl: %s: %s\n", s.name(), detail.c_str());
  }
  return code;
}

int CmdStatus(const Args& args, AdminClient& admin, int timeout) {
  StatusReply r;
  if (Status s = admin.QueryStatus(&r, timeout); !s.ok()) return FromStatus(s, admin.last_error(), args.json);
  if (args.json) {
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
    std::cout << json{{"ok", true}, {"version", r.version}, {"uptime_s", r.uptime_s},
                      {"boards", boards}, {"models", models}, {"jobs_queued", r.jobs_queued},
                      {"jobs_running", r.jobs_running}, {"jobs_finished", r.jobs_finished},
                      {"tokens_generated", r.tokens_generated}, {"draining", r.draining},
                      {"job_endpoint", r.job_endpoint}, {"metrics_url", r.metrics_url}}
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << "\n";
    return kExitOk;
  }
  std::printf("waferd %s  up %.0f s%s\n", r.version.c_str(), r.uptime_s, r.draining ? "  DRAINING" : "");
  std::printf("jobs: %u queued, %u running, %llu finished; %llu tokens generated\n", r.jobs_queued,
              r.jobs_running, static_cast<unsigned long long>(r.jobs_finished),
              static_cast<unsigned long long>(r.tokens_generated));
  std::printf("job socket %s   metrics %s\n\n", r.job_endpoint.c_str(), r.metrics_url.c_str());
  std::printf("%-5s %-10s %-8s %-12s %10s %14s %8s %8s\n", "BOARD", "STATE", "PRESET", "ID", "PEs",
              "SRAM used/MB", "temp C", "power W");
  for (const BoardInfo& b : r.boards) {
    std::printf("%-5u %-10s %-8s %-12s %10llu %7.1f/%-6.0f %8.1f %8.0f\n", b.index,
                BoardStateName(b.state), b.preset.c_str(), b.board_id.c_str(),
                static_cast<unsigned long long>(b.usable_pes), b.sram_used_bytes / 1e6,
                b.sram_bytes / 1e6, b.max_temperature_c, b.power_w);
    if (!b.drain.empty()) std::printf("      drained: %s\n", b.drain.c_str());
  }
  std::printf("\n%-16s %-10s %-7s %12s %8s %11s\n", "MODEL", "STATE", "BOARDS", "PARAMS",
              "CONTEXT", "SLOTS used");
  for (const ModelInfo& m : r.models) {
    std::string boards;
    for (uint32_t b : m.boards) {
      if (!boards.empty()) boards += ',';
      boards += std::to_string(b);
    }
    if (boards.empty()) boards = std::to_string(m.board);
    std::printf("%-16s %-10s %-7s %12llu %8u %5u/%-5u\n", m.name.c_str(), ModelStateName(m.state),
                boards.c_str(), static_cast<unsigned long long>(m.parameters), m.context_length,
                m.slots_used, m.slots);
  }
  return kExitOk;
}

bool ParseTokenList(const std::string& s, std::vector<uint32_t>* out) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t comma = s.find(',', pos);
    std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    uint64_t v;
    if (!ParseUint(item, &v) || v > UINT32_MAX) return false;
    out->push_back(static_cast<uint32_t>(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return !out->empty();
}

int CmdSubmit(const Args& args, const std::string& endpoint, const ClientKeys& keys,
              int timeout) {
  SubmitJob job;
  job.model = args.Get("model");
  job.prompt_text = args.Get("prompt");
  job.tenant = args.Get("tenant", "default");
  job.idempotency_key = args.Get("idempotency-key");
  uint64_t v = 0;
  if (!ParseUint(args.Get("retry-ms", "60000"), &v)) {
    std::fprintf(stderr, "waferctl: --retry-ms must be a non-negative integer\n");
    return kExitUsage;
  }
  RetryOptions retry;
  retry.attempt_timeout_ms = timeout;
  retry.total_budget_ms = static_cast<int>(std::min<uint64_t>(v, INT32_MAX));
  // Retries are news, not results: they go to stderr, also with --json.
  retry.on_retry = [](const RetryEvent& e) {
    if (e.kind == RetryEvent::Kind::kResubmit) {
      std::fprintf(stderr, "waferctl: %s; submitting again in %d ms\n", e.reason.c_str(),
                   e.delay_ms);
    } else if (e.reconnect) {
      std::fprintf(stderr,
                   "waferctl: job %llu: %s; reconnecting, resuming from chunk %u in %d ms\n",
                   static_cast<unsigned long long>(e.job_id), e.reason.c_str(), e.from_seq,
                   e.delay_ms);
    } else {
      std::fprintf(stderr, "waferctl: job %llu: %s; resuming from chunk %u\n",
                   static_cast<unsigned long long>(e.job_id), e.reason.c_str(), e.from_seq);
    }
  };
  if (!ParseUint(args.Get("max-tokens", "64"), &v) || v > UINT32_MAX) {
    std::fprintf(stderr, "waferctl: --max-tokens must be an integer\n");
    return kExitUsage;
  }
  job.max_tokens = static_cast<uint32_t>(v);
  if (args.flags.count("tokens") && !ParseTokenList(args.Get("tokens"), &job.prompt_tokens)) {
    std::fprintf(stderr, "waferctl: --tokens must be a comma-separated list of ids\n");
    return kExitUsage;
  }
  try {
    job.sampling.temperature = std::stof(args.Get("temperature", "0"));
    job.sampling.top_p = std::stof(args.Get("top-p", "1"));
  } catch (const std::exception&) {
    std::fprintf(stderr, "waferctl: --temperature and --top-p must be numbers\n");
    return kExitUsage;
  }
  if (!ParseUint(args.Get("top-k", "0"), &v)) return kExitUsage;
  job.sampling.top_k = static_cast<uint32_t>(v);
  if (!ParseUint(args.Get("seed", "0"), &v)) return kExitUsage;
  job.sampling.seed = v;
  if (job.model.empty()) {
    std::fprintf(stderr, "waferctl: submit needs --model\n");
    return kExitUsage;
  }
  auto client = JobClient::Connect(endpoint, keys, std::move(retry));
  if (!client.ok()) return FromStatus(client.status(), "bad endpoint " + endpoint, args.json);
  SubmitOutcome outcome;
  JobFinished finished;
  bool printed_text = false;
  Status s = (*client)->RunWithRetry(
      job,
      [&](const TokenChunk& c) {
        if (args.json) {
          std::cout << json{{"event", "chunk"}, {"job_id", c.job_id}, {"seq", c.seq},
                            {"tokens", c.tokens}, {"text", c.text}}
                           .dump(-1, ' ', false, json::error_handler_t::replace)
                    << std::endl;
        } else if (!c.text.empty()) {
          std::cout << c.text << std::flush;
          printed_text = true;
        } else {
          for (uint32_t t : c.tokens) std::cout << t << ' ';
          std::cout << std::flush;
        }
      },
      &outcome, &finished);
  if (s.code() == StatusCode::kNotFound) {
    // Accepted, then lost by the daemon: a failure of the job, not of the connection.
    FromStatus(s, (*client)->last_error(), args.json);
    return kExitFailed;
  }
  if (!s.ok()) return FromStatus(s, (*client)->last_error(), args.json);
  if (!outcome.accepted) {
    const JobRejected& r = outcome.rejection;
    if (args.json) {
      std::cout << json{{"event", "rejected"}, {"code", ErrorCodeName(r.code)}, {"detail", r.detail},
                        {"retry_after_ms", r.retry_after_ms}, {"attempts", outcome.attempts},
                        {"idempotency_key", outcome.idempotency_key}}
                       .dump(-1, ' ', false, json::error_handler_t::replace)
                << "\n";
    } else {
      std::fprintf(stderr, "waferctl: rejected: %s: %s\n", ErrorCodeName(r.code), r.detail.c_str());
    }
    return kExitFailed;
  }
  const bool ok = finished.reason != FinishReason::kError && finished.reason != FinishReason::kCancelled;
  if (args.json) {
    std::cout << json{{"event", "finished"}, {"job_id", finished.job_id},
                      {"reason", FinishReasonName(finished.reason)},
                      {"prompt_tokens", finished.prompt_tokens},
                      {"completion_tokens", finished.completion_tokens},
                      {"ttft_ms", finished.timings.ttft_ns / 1e6},
                      {"total_ms", finished.timings.total_ns / 1e6},
                      {"device_ms", finished.timings.device_ns / 1e6},
                      {"error", ErrorCodeName(finished.error_code)}, {"detail", finished.detail},
                      {"idempotency_key", outcome.idempotency_key}}
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << "\n";
  } else {
    if (printed_text || finished.completion_tokens > 0) std::cout << "\n";
    std::fprintf(stderr, "[job %llu: %s, %u tokens, ttft %.2f ms, total %.2f ms%s%s]\n",
                 static_cast<unsigned long long>(finished.job_id), FinishReasonName(finished.reason),
                 finished.completion_tokens, finished.timings.ttft_ns / 1e6,
                 finished.timings.total_ns / 1e6, finished.detail.empty() ? "" : ": ",
                 finished.detail.c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

int ReportOperation(const Args& args, Status s, const OperationResult& r, const std::string& error) {
  if (!s.ok()) return FromStatus(s, error, args.json);
  const bool ok = r.code == ErrorCode::kNone;
  if (args.json) {
    std::cout << json{{"ok", ok}, {"code", ErrorCodeName(r.code)}, {"detail", r.detail},
                      {"elapsed_s", r.elapsed_s}}
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << "\n";
  } else if (ok) {
    std::printf("%s (%.2f s)\n", r.detail.c_str(), r.elapsed_s);
  } else {
    std::fprintf(stderr, "waferctl: %s: %s\n", ErrorCodeName(r.code), r.detail.c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

int CmdLoad(const Args& args, AdminClient& admin, int timeout) {
  if (args.positional.size() != 1) {
    std::fprintf(stderr, "waferctl: load needs one model directory\n");
    return kExitUsage;
  }
  LoadModel load;
  load.path = args.positional[0];
  if (load.path[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) load.path = std::string(cwd) + "/" + load.path;
  }
  load.name = args.Get("name");
  uint64_t v;
  // --board 2, or --board 0,1,2 for a model split over boards (pipeline order).
  if (!ParseTokenList(args.Get("board", "0"), &load.boards)) {
    std::fprintf(stderr, "waferctl: --board takes a board index or a list like 0,1\n");
    return kExitUsage;
  }
  load.board = load.boards[0];
  if (!ParseUint(args.Get("slots", "0"), &v)) return kExitUsage;
  load.slots = static_cast<uint32_t>(v);
  if (!ParseUint(args.Get("context", "0"), &v)) return kExitUsage;
  load.context_length = static_cast<uint32_t>(v);
  const bool tty = isatty(STDERR_FILENO);
  OperationResult r;
  Status s = admin.Operate(
      load,
      [&](const LoadProgress& p) {
        if (args.json) {
          std::cout << json{{"event", "progress"}, {"phase", p.phase}, {"bytes_done", p.bytes_done},
                            {"bytes_total", p.bytes_total}, {"bytes_per_second", p.bytes_per_second},
                            {"eta_s", p.eta_s}}
                           .dump(-1, ' ', false, json::error_handler_t::replace)
                    << std::endl;
          return;
        }
        double pct = p.bytes_total ? 100.0 * p.bytes_done / p.bytes_total : 100.0;
        std::fprintf(stderr, "%sloading %5.1f%%  %8.2f / %.2f MB  %7.1f MB/s  eta %.1f s%s",
                     tty ? "\r" : "", pct, p.bytes_done / 1e6, p.bytes_total / 1e6,
                     p.bytes_per_second / 1e6, p.eta_s, tty ? "" : "\n");
      },
      &r, timeout);
  if (tty && !args.json) std::fprintf(stderr, "\n");
  return ReportOperation(args, s, r, admin.last_error());
}

int CmdLogs(const Args& args, AdminClient& admin, uint32_t board, int timeout) {
  uint64_t from = 0;
  if (!ParseUint(args.Get("from", "0"), &from)) {
    std::fprintf(stderr, "waferctl: --from must be a sequence number\n");
    return kExitUsage;
  }
  BoardLogReply r;
  if (Status s = admin.ReadBoardLog(board, from, &r, timeout); !s.ok()) {
    if (s.code() != StatusCode::kFailedPrecondition) return FromStatus(s, admin.last_error(), args.json);
    if (args.json) {
      std::cout << json{{"ok", false}, {"detail", admin.last_error()}}.dump() << "\n";
    } else {
      std::fprintf(stderr, "waferctl: %s\n", admin.last_error().c_str());
    }
    return kExitFailed;
  }
  if (args.json) {
    json records = json::array();
    for (const BoardLogEntry& e : r.records) {
      records.push_back({{"sequence", e.sequence}, {"timestamp_ns", e.timestamp_ns},
                         {"severity", e.severity}, {"code", e.code}, {"args", e.args}});
    }
    std::cout << json{{"ok", true}, {"board", r.board}, {"records", records},
                      {"next_sequence", r.next_sequence}, {"dropped", r.dropped}}
                     .dump(-1, ' ', false, json::error_handler_t::replace)
              << "\n";
    return kExitOk;
  }
  if (r.dropped > 0) std::printf("(%llu records were overwritten before they were read)\n",
                                 static_cast<unsigned long long>(r.dropped));
  for (const BoardLogEntry& e : r.records) {
    std::printf("%6llu %12.6f s  %-7s %-24s", static_cast<unsigned long long>(e.sequence),
                e.timestamp_ns / 1e9, e.severity.c_str(), e.code.c_str());
    for (uint64_t a : e.args) std::printf(" %llu", static_cast<unsigned long long>(a));
    std::printf("\n");
  }
  return kExitOk;
}

// Reads a one-line Z85 key file (40 characters). False, with a message, when it is not one.
bool ReadKeyFile(const std::string& path, std::string* key) {
  std::ifstream in(path);
  std::getline(in, *key);
  while (!key->empty() && (key->back() == '\r' || key->back() == ' ')) key->pop_back();
  if (!in && !in.eof()) key->clear();
  if (key->size() == 40) return true;
  std::fprintf(stderr, "waferctl: %s does not hold a 40-character Z85 CURVE key\n", path.c_str());
  return false;
}

// The CURVE keys of --server-key and --key; both or neither. False (usage) otherwise.
bool KeysFromFlags(const Args& args, ClientKeys* keys) {
  const std::string server = args.Get("server-key"), own = args.Get("key");
  if (server.empty() && own.empty()) return true;
  if (server.empty() || own.empty()) {
    std::fprintf(stderr, "waferctl: CURVE needs both --server-key and --key\n");
    return false;
  }
  if (!ReadKeyFile(server, &keys->server_public_key) || !ReadKeyFile(own, &keys->secret_key)) {
    return false;
  }
  Result<std::string> pub = net::CurvePublicKeyOf(keys->secret_key);
  if (!pub.ok()) {
    std::fprintf(stderr, "waferctl: %s is not a CURVE secret key\n", own.c_str());
    return false;
  }
  keys->public_key = *pub;
  return true;
}

int CmdKeysGenerate(const std::string& path) {
  Result<net::CurveKeyPair> pair = net::GenerateCurveKeyPair();
  if (!pair.ok()) {
    std::fprintf(stderr, "waferctl: this libzmq cannot make CURVE keys\n");
    return kExitFailed;
  }
  const std::string secret_path = path + ".key", public_path = path + ".pub";
  // Created private: the secret never sits in a file others can read.
  const int fd = open(secret_path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    std::fprintf(stderr, "waferctl: cannot create %s (%s)\n", secret_path.c_str(),
                 std::strerror(errno));
    return kExitFailed;
  }
  const std::string line = pair->secret_key + "\n";
  const bool wrote = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  std::ofstream(public_path) << pair->public_key << "\n";
  if (!wrote) {
    std::fprintf(stderr, "waferctl: cannot write %s\n", secret_path.c_str());
    return kExitFailed;
  }
  std::printf("%s\n", pair->public_key.c_str());
  return kExitOk;
}

int Main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "model") {  // Works without a daemon.
    return RunModelPlanCommand(std::vector<std::string>(argv + 2, argv + argc), std::cout,
                               std::cerr);
  }
  Args args;
  if (!Parse(argc, argv, &args) || args.flags.count("help")) {
    std::fputs(kUsage, args.flags.count("help") ? stdout : stderr);
    return args.flags.count("help") ? kExitOk : kExitUsage;
  }
  if (args.command == "keys") {
    if (args.positional.size() != 2 || args.positional[0] != "generate") {
      std::fputs(kUsage, stderr);
      return kExitUsage;
    }
    return CmdKeysGenerate(args.positional[1]);
  }
  ClientKeys keys;
  if (!KeysFromFlags(args, &keys)) return kExitUsage;
  const std::string job_ep = args.Get("endpoint", kDefaultJobEndpoint);
  const std::string admin_ep = args.Get("admin-endpoint", kDefaultAdminEndpoint);
  uint64_t timeout = 0;
  if (!ParseUint(args.Get("timeout-ms", "5000"), &timeout) || timeout == 0) {
    std::fprintf(stderr, "waferctl: --timeout-ms must be a positive integer\n");
    return kExitUsage;
  }
  const int t = static_cast<int>(std::min<uint64_t>(timeout, 3'600'000));
  if (args.command == "submit") return CmdSubmit(args, job_ep, keys, t);
  if (args.command == "capacity") {
    auto client = JobClient::Connect(job_ep, keys);
    if (!client.ok()) return FromStatus(client.status(), "bad endpoint", args.json);
    CapacityReply r;
    if (Status s = (*client)->QueryCapacity(&r, t); !s.ok()) {
      return FromStatus(s, (*client)->last_error(), args.json);
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
      models.push_back({{"name", m.name}, {"free_slots", m.free_slots}, {"total_slots", m.total_slots},
                        {"context_length", m.context_length}, {"ready", m.ready},
                        {"classes", classes}, {"replicas", replicas}});
    }
    json boards = json::array();
    for (const BoardCapacity& b : r.boards) {
      static const char* kLevels[] = {"PASS", "WARN", "FAIL"};
      boards.push_back({{"board", b.board}, {"health", kLevels[std::min<uint8_t>(b.health, 2)]},
                        {"drained", b.drained}, {"drain", b.drain},
                        {"incident_code", b.incident_code}, {"incident", b.incident}});
    }
    json out{{"ok", true}, {"models", models}, {"queue_depth", r.queue_depth},
             {"queue_limit", r.queue_limit}, {"healthy", r.healthy}, {"draining", r.draining},
             {"boards", boards}};
    std::cout << (args.json ? out.dump(-1, ' ', false, json::error_handler_t::replace) : out.dump(2)) << "\n";
    return kExitOk;
  }
  auto admin = AdminClient::Connect(admin_ep, keys);
  if (!admin.ok()) return FromStatus(admin.status(), "bad endpoint " + admin_ep, args.json);
  AdminClient& a = **admin;
  if (args.command == "status") return CmdStatus(args, a, t);
  if (args.command == "load") return CmdLoad(args, a, t);
  if (args.command == "health" && args.flags.count("clear") == 0 && args.positional.size() <= 1) {
    uint64_t board = 0;
    if (!args.positional.empty() && (!ParseUint(args.positional[0], &board) || board > INT32_MAX)) {
      std::fprintf(stderr, "waferctl: health takes a board index\n");
      return kExitUsage;
    }
    return RunHealthCommand(args.positional.empty() ? -1 : static_cast<int32_t>(board), args.json,
                            a, t, std::cout, std::cerr);
  }
  if (args.command == "diag" && args.positional.empty()) {
    uint64_t level = 0;
    uint64_t board = 0;
    if (!ParseUint(args.Get("level"), &level) || level < 1 || level > 3) {
      std::fprintf(stderr, "waferctl: diag needs -r 1, 2 or 3\n");
      return kExitUsage;
    }
    if (args.flags.count("board") > 0 && (!ParseUint(args.Get("board"), &board) || board > INT32_MAX)) {
      std::fprintf(stderr, "waferctl: --board takes a board index\n");
      return kExitUsage;
    }
    return RunDiagCommand(args.flags.count("board") > 0 ? static_cast<int32_t>(board) : -1,
                          static_cast<uint32_t>(level), args.json, !args.json && isatty(2) != 0,
                          a, t, std::cout, std::cerr);
  }
  if (args.command == "jobs") {
    JobsCommand jobs;
    std::string error;
    if (!ParseJobsCommand(args.positional, args.flags, &jobs, &error)) {
      std::fprintf(stderr, "waferctl: %s\n", error.c_str());
      return kExitUsage;
    }
    return RunJobsCommand(jobs, args.json, a, t, std::cout, std::cerr);
  }
  OperationResult r;
  uint64_t board;
  if (args.command == "health" && args.flags.count("clear") > 0 && args.positional.empty()) {
    if (!ParseUint(args.Get("clear"), &board) || board > UINT32_MAX) {
      std::fprintf(stderr, "waferctl: --clear takes a board index\n");
      return kExitUsage;
    }
    Status s = a.Operate(ClearHealthIncident{0, static_cast<uint32_t>(board)}, nullptr, &r, t);
    return ReportOperation(args, s, r, a.last_error());
  }
  if (args.command == "unload" && args.positional.size() == 1) {
    UnloadModel unload{0, args.positional[0], -1};
    if (args.flags.count("board") > 0) {
      if (!ParseUint(args.Get("board"), &board) || board > INT32_MAX) {
        std::fprintf(stderr, "waferctl: --board takes a board index\n");
        return kExitUsage;
      }
      unload.board = static_cast<int32_t>(board);
    }
    Status s = a.Operate(unload, nullptr, &r, t);
    return ReportOperation(args, s, r, a.last_error());
  }
  if ((args.command == "drain" || args.command == "undrain") && args.flags.count("board") > 0) {
    if (!ParseUint(args.Get("board"), &board) || board > UINT32_MAX) {
      std::fprintf(stderr, "waferctl: --board takes a board index\n");
      return kExitUsage;
    }
    DrainBoard drain{0, static_cast<uint32_t>(board), args.flags.count("evacuate") > 0,
                     args.command == "undrain"};
    Status s = a.Operate(drain, nullptr, &r, t);
    return ReportOperation(args, s, r, a.last_error());
  }
  if (args.command == "drain" && args.flags.count("evacuate") == 0) {
    Status s = a.Operate(Drain{0}, nullptr, &r, t);
    return ReportOperation(args, s, r, a.last_error());
  }
  if (args.command == "logs" && args.positional.size() == 1 && ParseUint(args.positional[0], &board)) {
    return CmdLogs(args, a, static_cast<uint32_t>(board), t);
  }
  if (args.command == "board" && args.positional.size() == 2 && args.positional[0] == "show" &&
      ParseUint(args.positional[1], &board)) {
    BoardDetail detail;
    if (Status s = a.ShowBoard(static_cast<uint32_t>(board), &detail, t); !s.ok()) {
      if (s.code() != StatusCode::kFailedPrecondition) return FromStatus(s, a.last_error(), args.json);
      std::fprintf(stderr, "waferctl: %s\n", a.last_error().c_str());
      return kExitFailed;
    }
    RenderBoard(detail, args.json, isatty(STDOUT_FILENO), std::cout);
    return kExitOk;
  }
  if (args.command == "fault" && args.positional.size() == 2 &&
      ParseUint(args.positional[0], &board)) {
    InjectFault fault{0, static_cast<uint32_t>(board), args.positional[1], 0, 0, 0, 0};
    uint64_t v = 0;
    if (!ParseUint(args.Get("region", "0"), &v)) return kExitUsage;
    fault.region = static_cast<uint32_t>(v);
    if (!ParseUint(args.Get("row", "0"), &v)) return kExitUsage;
    fault.row = static_cast<uint32_t>(v);
    if (!ParseUint(args.Get("pe", "0"), &v)) return kExitUsage;
    fault.pe = static_cast<uint32_t>(v);
    try {
      fault.value = std::stod(args.Get("value", "0"));
    } catch (const std::exception&) {
      return kExitUsage;
    }
    Status s = a.Operate(fault, nullptr, &r, t);
    return ReportOperation(args, s, r, a.last_error());
  }
  if (args.command == "reset" && args.positional.size() == 1 && ParseUint(args.positional[0], &board)) {
    Status s = a.Operate(ResetBoard{0, static_cast<uint32_t>(board)}, nullptr, &r, t);
    return ReportOperation(args, s, r, a.last_error());
  }
  std::fputs(kUsage, stderr);
  return kExitUsage;
}

}  // namespace
}  // namespace wafer::host

int main(int argc, char** argv) { return wafer::host::Main(argc, argv); }

#include "host/ctl/ctl_cli.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>

#include "host/client/wafer_client.h"
#include "host/ctl/exit_codes.h"

namespace wafer::host {
namespace {

constexpr const char* kExitCodesText =
    "Exit codes (stable, for scripts):\n"
    "  0  success\n"
    "  1  the daemon refused or the operation failed (rejection, load error, unknown model,\n"
    "     job or board, a firmware image the board did not accept)\n"
    "  2  usage error (unknown command, bad option value, missing argument)\n"
    "  3  the daemon did not answer (not running, wrong endpoint, CURVE keys not listed)\n"
    "  4  protocol error (an undecodable reply)\n"
    "  5  health and diag: the worst board or test warns\n"
    "  6  health and diag: a board or test fails\n";

constexpr const char* kGlobalsFooter =
    "Global options (--endpoint, --admin-endpoint, --timeout-ms, --server-key, --key, --json)\n"
    "may come before or after the command; see waferctl --help.\n";

const std::vector<std::string> kFaultKinds = {
    "pe_stop",      "ecc_correctable", "ecc_uncorrectable", "link_crc",       "thermal_runaway",
    "power_cap",    "firmware_hang",   "process_crash",     "sram_stuck_bit", "fabric_link"};
const std::vector<std::string> kJobStates = {"unfinished", "queued", "running", "finished", "all"};

// Whether `option` takes a value (a flag takes none).
bool TakesValue(const CLI::Option* option) {
  return option->get_expected_max() > 0 && option->get_type_size_max() > 0;
}

// What bash completion offers for an option's or a positional's value.
struct ValueHint {
  std::vector<std::string> choices;  // One of these.
  bool file = false;                 // A path.
};

// A job id: a whole number from 1 to 2^64-1 (CLI11's own conversion would wrap a larger one).
bool ParseJobId(const std::string& text, uint64_t* id) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE || v == 0) return false;
  *id = v;
  return true;
}

std::string JobIdCheck(const std::string& text) {
  uint64_t id = 0;
  errno = 0;
  return ParseJobId(text, &id) ? std::string()
                               : "a job id is a whole number from 1 to 18446744073709551615";
}

// Builds the whole command tree over a CtlOptions. Not thread-safe; one per parse.
class CtlParser {
 public:
  explicit CtlParser(CtlOptions& o);

  CLI::App& app() { return app_; }
  // Sets o.command (and the fields CLI11 cannot fill directly) from what was parsed. Returns a
  // usage error's text, or "" when the command line holds together.
  std::string Finish();
  const ValueHint* HintFor(const CLI::Option* option) const {
    auto it = hints_.find(option);
    return it == hints_.end() ? nullptr : &it->second;
  }

 private:
  CLI::App* Command(CLI::App& parent, const std::string& name, const std::string& about,
                    CtlCommand command);
  void Json(CLI::App& sub) { sub.add_flag("--json", o_.json, "one line of JSON on stdout"); }
  // A board index as the positional BOARD, or as --board; Finish() sets o_.board from either.
  CLI::Option* Board(CLI::App& sub, const std::string& about);
  CLI::Option* BoardOption(CLI::App& sub, const std::string& about);
  CLI::Option* Track(CLI::Option* board);
  CLI::Option* Hint(CLI::Option* option, ValueHint hint) {
    hints_[option] = std::move(hint);
    return option;
  }
  void AddJobsListOptions(CLI::App& sub);
  void AddDaemonCommands();
  void AddJobsCommands();
  void AddModelCommands();
  void AddFirmwareCommands();

  CtlOptions& o_;
  CLI::App app_;
  std::map<const CLI::App*, CtlCommand> commands_;
  std::map<const CLI::Option*, ValueHint> hints_;
  // Values parsed as text first, turned into o_'s fields by Finish().
  uint32_t board_value_ = 0;
  std::vector<CLI::Option*> board_options_;
  std::string state_ = "unfinished";
  std::string job_id_text_;  // jobs show|cancel|tail ID: checked by JobIdCheck.
  std::string fabric_;
  CLI::Option* clear_ = nullptr;
  uint32_t clear_board_ = 0;
  std::vector<CLI::Option*> list_filters_;  // --tenant, --state, --limit of `jobs` itself.
  CLI::App* jobs_ = nullptr;
  CLI::App* jobs_list_ = nullptr;
};

CtlParser::CtlParser(CtlOptions& o)
    : o_(o), app_("waferctl: the operator's CLI for waferd (admin and job sockets).", "waferctl") {
  o_.job_endpoint = kDefaultJobEndpoint;
  o_.admin_endpoint = kDefaultAdminEndpoint;
  o_.boards = {0};
  app_.fallthrough();  // Global options may follow the command; subcommands inherit this.
  app_.require_subcommand(1);
  app_.footer(kExitCodesText);
  app_.add_option("--endpoint", o_.job_endpoint, "waferd's job socket (submit, capacity)")
      ->capture_default_str();
  app_.add_option("--admin-endpoint", o_.admin_endpoint, "waferd's admin socket (the rest)")
      ->capture_default_str();
  app_.add_option("--timeout-ms", o_.timeout_ms,
                  "how long a request waits for the daemon's answer (for load and diag: the "
                  "longest silence between two progress messages)")
      ->check(CLI::Range(1u, 3'600'000u))
      ->capture_default_str();
  Hint(app_.add_option("--server-key", o_.server_key_file,
                       "CURVE: the daemon's public key file (Z85, as keys generate writes it)"),
       {{}, true});
  Hint(app_.add_option("--key", o_.key_file, "CURVE: this client's secret key file"), {{}, true});
  app_.add_flag("--json", o_.json, "one line of JSON on stdout, for scripts");
  AddDaemonCommands();
  AddJobsCommands();
  AddModelCommands();
  AddFirmwareCommands();
}

CLI::App* CtlParser::Command(CLI::App& parent, const std::string& name, const std::string& about,
                             CtlCommand command) {
  // The first line is the summary the command lists show; the rest goes under its own help.
  const size_t cut = about.find('\n');
  CLI::App* sub = parent.add_subcommand(name, about.substr(0, cut));
  sub->footer((cut == std::string::npos ? "" : about.substr(cut + 1) + "\n\n") +
              kGlobalsFooter);
  if (command != CtlCommand::kNone) commands_[sub] = command;
  return sub;
}

CLI::Option* CtlParser::Board(CLI::App& sub, const std::string& about) {
  return Track(sub.add_option("BOARD", board_value_, about));
}

CLI::Option* CtlParser::BoardOption(CLI::App& sub, const std::string& about) {
  return Track(sub.add_option("--board", board_value_, about));
}

CLI::Option* CtlParser::Track(CLI::Option* board) {
  board->check(CLI::Range(0u, static_cast<uint32_t>(INT32_MAX)));
  board_options_.push_back(board);
  return board;
}

void CtlParser::AddDaemonCommands() {
  CLI::App* status = Command(app_, "status", "the daemon, its boards and models at a glance",
                             CtlCommand::kStatus);
  Json(*status);

  CLI::App* submit = Command(
      app_, "submit",
      "submit a job over the job socket and stream its tokens to stdout\n"
      "Rides out a daemon restart: every retry carries one idempotency key, and the stream\n"
      "resumes where it stopped.",
      CtlCommand::kSubmit);
  SubmitOptions& s = o_.submit;
  submit->add_option("--model", s.model, "the model to run")->required();
  CLI::Option* prompt = submit->add_option("--prompt", s.prompt, "the prompt as text");
  submit->add_option("--tokens", s.tokens, "the prompt as token ids: 1,2,3")
      ->delimiter(',')
      ->excludes(prompt);
  submit->add_option("--max-tokens", s.max_tokens, "most tokens to generate")
      ->check(CLI::Range(1u, std::numeric_limits<uint32_t>::max()))
      ->capture_default_str();
  submit->add_option("--temperature", s.temperature, "sampling temperature; 0: greedy")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  submit->add_option("--top-k", s.top_k, "sample from the k likeliest; 0: all")
      ->capture_default_str();
  submit->add_option("--top-p", s.top_p, "nucleus sampling mass, in (0, 1]")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  submit->add_option("--seed", s.seed, "sampling seed")->capture_default_str();
  submit->add_option("--tenant", s.tenant, "the tenant the job runs for")->capture_default_str();
  submit->add_option("--idempotency-key", s.idempotency_key,
                     "the key every retry carries (random unless given)");
  submit->add_option("--retry-ms", s.retry_ms,
                     "how long to keep retrying without a sign of the job; 0: give up at the "
                     "first silence or refusal (--timeout-ms is the wait per attempt)")
      ->capture_default_str();
  Json(*submit);

  CLI::App* load = Command(app_, "load",
                           "load a model directory onto boards, with a progress bar\n"
                           "The directory has the Hugging Face layout; a NAME already loaded "
                           "gets another replica.",
                           CtlCommand::kLoad);
  Hint(load->add_option("PATH", o_.path, "the model directory")->required(), {{}, true});
  load->add_option("--name", o_.name, "the name jobs use (default: the directory's name)");
  load->add_option("--board", o_.boards,
                   "board index, or boards in pipeline order for a model split by layers: 0,1,2")
      ->delimiter(',')
      ->capture_default_str();
  load->add_option("--slots", o_.slots, "sequence slots (KV cache); 0: the daemon's default")
      ->capture_default_str();
  load->add_option("--context", o_.context, "context tokens per slot; 0: the model's")
      ->capture_default_str();
  Json(*load);

  CLI::App* unload = Command(app_, "unload",
                             "unload a model: every replica, or the one on --board\n"
                             "With --board, the replica whose first board it is; its running "
                             "jobs finish there.",
                             CtlCommand::kUnload);
  unload->add_option("NAME", o_.name, "the model")->required();
  BoardOption(*unload, "the replica on this board only");
  Json(*unload);

  CLI::App* drain = Command(app_, "drain",
                            "refuse new jobs and finish accepted ones, or drain one board\n"
                            "With --board, that board takes no new work.",
                            CtlCommand::kDrain);
  CLI::Option* drain_board = BoardOption(*drain, "drain this board only");
  drain->add_flag("--evacuate", o_.evacuate,
                  "move the board's running jobs back to the queue too (another replica resumes "
                  "them, else they resume after undrain)")
      ->needs(drain_board);
  Json(*drain);

  CLI::App* undrain = Command(app_, "undrain",
                              "lift the operator's drain of a board (a health drain stays)",
                              CtlCommand::kUndrain);
  BoardOption(*undrain, "the board")->required();
  Json(*undrain);

  CLI::App* reset = Command(app_, "reset", "reset a board (its models are reloaded)",
                            CtlCommand::kReset);
  Board(*reset, "the board")->required();
  Json(*reset);

  CLI::App* logs = Command(app_, "logs", "a board firmware's error log", CtlCommand::kLogs);
  Board(*logs, "the board")->required();
  logs->add_option("--from", o_.from, "first record sequence number (0: the oldest held)")
      ->capture_default_str();
  Json(*logs);

  CLI::App* board = Command(app_, "board", "one board in detail", CtlCommand::kNone);
  board->require_subcommand(1);
  CLI::App* show = Command(*board, "show",
                           "draw the wafer: dies, temperatures, failed and spare PEs",
                           CtlCommand::kBoardShow);
  Board(*show, "the board")->required();
  Json(*show);

  CLI::App* fault = Command(app_, "fault",
                            "inject a fault on a simulated board (drills)\n"
                            "sram_stuck_bit and fabric_link are latent: only diag finds them.",
                            CtlCommand::kFault);
  Board(*fault, "the board")->required();
  Hint(fault->add_option("KIND", o_.fault.kind, "the fault")
           ->required()
           ->check(CLI::IsMember(kFaultKinds)),
       {kFaultKinds, false});
  fault->add_option("--region", o_.fault.region, "die region (thermal_runaway)");
  fault->add_option("--row", o_.fault.row, "usable row (pe_stop, ecc_*, sram_stuck_bit, ...)");
  fault->add_option("--pe", o_.fault.pe, "usable column");
  fault->add_option("--value", o_.fault.value,
                    "kind-specific: a count, a factor, watts, a word address, 0 east / 1 south");
  Json(*fault);

  CLI::App* capacity = Command(app_, "capacity",
                               "what the job socket can take, per model and board\n"
                               "Per model free slots, queued jobs and expected wait per priority "
                               "class, replicas; per board health and drain.",
                               CtlCommand::kCapacity);
  Json(*capacity);

  CLI::App* health = Command(app_, "health",
                             "each board's health rules and incidents\n"
                             "Exit 0 when every board passes, 5 when the worst warns, 6 when "
                             "it fails.",
                             CtlCommand::kHealth);
  CLI::Option* health_board = Board(*health, "the board (default: every board)");
  clear_ = health
               ->add_option("--clear", clear_board_,
                            "end BOARD's open incident (a quarantine too) and lift its health "
                            "drain; an operator's drain stays (admin)")
               ->check(CLI::Range(0u, static_cast<uint32_t>(INT32_MAX)))
               ->excludes(health_board);
  Json(*health);

  CLI::App* diag = Command(app_, "diag",
                           "board diagnostics, levels 1-3 (admin)\n"
                           "On --board, or on every board one at a time. Exit 0 when every test "
                           "passes, 5 when one warns, 6 when one fails.",
                           CtlCommand::kDiag);
  diag->add_option("-r,--level", o_.level,
                   "1: link, firmware, sensors, heartbeat (keeps serving); 2: drains the board, "
                   "adds the SRAM test of unused PEs and a known-answer kernel; 3: sweeps every "
                   "PE's SRAM and fabric link, retiring failing PEs onto spares")
      ->required()
      ->check(CLI::Range(1u, 3u));
  BoardOption(*diag, "the board (default: every board)");
  Json(*diag);

  CLI::App* keys = Command(app_, "keys", "CURVE keys", CtlCommand::kNone);
  keys->require_subcommand(1);
  CLI::App* generate = Command(*keys, "generate",
                               "write a CURVE key pair: PATH.key (secret) and PATH.pub\n"
                               "PATH.key is created with mode 600; the public key is printed "
                               "for waferd.yaml.",
                               CtlCommand::kKeysGenerate);
  Hint(generate->add_option("PATH", o_.path, "where to write the pair (without suffix)")
           ->required(),
       {{}, true});
  Json(*generate);

  CLI::App* top = Command(app_, "top",
                          "live view of boards, models and tenants; q quits\n"
                          "Refreshed every second: per board state, utilisation, tokens/s, the "
                          "hottest die regions, power and SRAM; per model replicas, slots used "
                          "and jobs queued by class; the busiest tenants. When the daemon stops "
                          "answering, the last figures stay under a \"reconnecting\" banner "
                          "until it is back.",
                          CtlCommand::kTop);
  top->add_option("--interval-ms", o_.interval_ms, "time between refreshes")
      ->check(CLI::Range(100u, 60'000u))
      ->capture_default_str();
  top->add_option("--count", o_.count, "stop after this many refreshes; 0: until q")
      ->capture_default_str();
  top->add_flag("--json", o_.json, "one line of JSON per refresh instead of the screen");

  CLI::App* completion = Command(app_, "completion",
                                 "print the shell completion script\n"
                                 "Generated from this parser: source it, or install it as "
                                 "/usr/share/bash-completion/completions/waferctl (the build "
                                 "writes it beside the binary as waferctl.bash).",
                                 CtlCommand::kCompletion);
  Hint(completion->add_option("SHELL", o_.shell, "the shell")
           ->required()
           ->check(CLI::IsMember({"bash"})),
       {{"bash"}, false});
}

void CtlParser::AddJobsListOptions(CLI::App& sub) {
  // Only `jobs`'s own filters can be given with show, cancel or tail (they fall through).
  std::vector<CLI::Option*> ignored;
  std::vector<CLI::Option*>& filters = &sub == jobs_ ? list_filters_ : ignored;
  filters.push_back(sub.add_option("--tenant", o_.jobs.list.tenant,
                                         "only this tenant's jobs")
                              ->check([](const std::string& t) {
                                return t.size() <= kMaxJobTenantFilterBytes
                                           ? std::string()
                                           : "longer than " +
                                                 std::to_string(kMaxJobTenantFilterBytes) +
                                                 " bytes";
                              }));
  filters.push_back(Hint(sub.add_option("--state", state_, "which jobs")
                                   ->check(CLI::IsMember(kJobStates))
                                   ->capture_default_str(),
                               {kJobStates, false}));
  o_.jobs.list.limit = 100;
  filters.push_back(sub.add_option("--limit", o_.jobs.list.limit, "most jobs listed")
                              ->check(CLI::Range(1u, 10'000u))
                              ->capture_default_str());
  Json(sub);
}

void CtlParser::AddJobsCommands() {
  jobs_ = Command(app_, "jobs",
                  "the daemon's jobs: list, show, cancel, tail\n"
                  "With no subcommand, list.",
                  CtlCommand::kJobs);
  jobs_->require_subcommand(0, 1);
  AddJobsListOptions(*jobs_);
  jobs_list_ = Command(*jobs_, "list",
                       "list jobs: queued, running, finished\n"
                       "Queued jobs by queue position, then running ones, then finished ones, "
                       "newest first.",
                       CtlCommand::kJobs);
  AddJobsListOptions(*jobs_list_);
  CLI::App* show = Command(*jobs_, "show", "one job: timings, TTFT, deadline, how it ended",
                           CtlCommand::kJobs);
  show->add_option("ID", job_id_text_, "the job id")->required()->check(JobIdCheck)->type_name("UINT");
  Json(*show);
  CLI::App* cancel = Command(*jobs_, "cancel",
                             "end a queued or running job (admin)\n"
                             "As the job's own client's cancel would.",
                             CtlCommand::kJobs);
  cancel->add_option("ID", job_id_text_, "the job id")->required()->check(JobIdCheck)->type_name("UINT");
  Json(*cancel);
  CLI::App* tail = Command(*jobs_, "tail",
                           "follow a job's tokens until it ends\n"
                           "From its first chunk, or --from; the job's own client keeps its "
                           "stream.",
                           CtlCommand::kJobsTail);
  tail->add_option("ID", job_id_text_, "the job id")->required()->check(JobIdCheck)->type_name("UINT");
  tail->add_option("--from", o_.from, "first chunk (sequence number) to show")
      ->capture_default_str();
  Json(*tail);
}

void CtlParser::AddModelCommands() {
  CLI::App* model = Command(app_, "model", "model tools that need no daemon", CtlCommand::kNone);
  model->require_subcommand(1);
  CLI::App* plan = Command(*model, "plan",
                           "placement and modeled speed of a model (no daemon)\n"
                           "On simulated boards of a preset; --pack: fewest rows per layer, as "
                           "when boards are shared.",
                           CtlCommand::kModelPlan);
  ModelPlanOptions& p = o_.plan;
  Hint(plan->add_option("--config", p.config, "the model's config.json")->required(),
       {{}, true});
  const std::vector<std::string> presets = {"wse3", "wse2", "mini"};
  Hint(plan->add_option("--preset", p.preset, "wse3, wse2, mini, or a preset .yaml file")
           ->required(),
       {presets, true});
  plan->add_option("--boards", p.boards, "boards to split the model over")
      ->check(CLI::Range(1u, std::numeric_limits<uint32_t>::max()))
      ->capture_default_str();
  plan->add_option("--slots", p.slots, "sequence slots")
      ->check(CLI::Range(1u, std::numeric_limits<uint32_t>::max()))
      ->capture_default_str();
  plan->add_option("--context", p.context, "context tokens per slot (default min(8192, max))")
      ->check(CLI::Range(1u, std::numeric_limits<uint32_t>::max()));
  plan->add_option("--prompt-tokens", p.prompt_tokens,
                   "prompt length timed (default min(1024, context))")
      ->check(CLI::Range(1u, std::numeric_limits<uint32_t>::max()));
  plan->add_option("--fabric", fabric_, "confine the model to a WxH rectangle, e.g. 400x600")
      ->check([](const std::string& s) {
        const size_t x = s.find_first_of("xX");
        const bool ok = x != std::string::npos && x > 0 && x + 1 < s.size() &&
                        s.find_first_not_of("0123456789xX") == std::string::npos &&
                        s.find_first_of("xX", x + 1) == std::string::npos && s.size() <= 21;
        return ok ? std::string() : std::string("must be WxH, e.g. 400x600");
      });
  plan->add_option("--tokens-per-step", p.tokens_per_step,
                   "tokens a Step produces per sequence: waferd's decode_tokens_per_step "
                   "(default 8)")
      ->check(CLI::Range(1u, 256u));
  plan->add_flag("--pack", p.pack, "fewest rows per layer, as when the model shares boards");
  plan->add_flag("--json", p.json, "JSON on stdout");
}

void CtlParser::AddFirmwareCommands() {
  CLI::App* firmware = Command(app_, "firmware", "a board's firmware slots", CtlCommand::kNone);
  firmware->require_subcommand(1);
  CLI::App* info = Command(*firmware, "info",
                           "both firmware slots, which runs and which boots next\n"
                           "Per slot: image version, size, CRC-32C and signature.",
                           CtlCommand::kFirmwareInfo);
  Board(*info, "the board")->required();
  Json(*info);
  CLI::App* update = Command(*firmware, "update",
                             "write a signed image into the slot that is not running (admin)\n"
                             "With a progress bar. It boots, on trial, at the board's next "
                             "reset: if that boot fails, the current image comes back.",
                             CtlCommand::kFirmwareUpdate);
  Board(*update, "the board")->required();
  Hint(update->add_option("IMAGE", o_.path, "the firmware image file")->required(),
       {{}, true});
  Hint(update->add_option("--signature", o_.signature_file,
                          "its Ed25519 signature: 64 raw bytes or 128 hex digits (default "
                          "IMAGE.sig); unsigned images are refused"),
       {{}, true});
  Json(*update);
  CLI::App* rollback = Command(*firmware, "rollback",
                               "boot the other slot's image at the next reset (admin)\n"
                               "On trial: if that boot fails, the current image comes back.",
                               CtlCommand::kFirmwareRollback);
  Board(*rollback, "the board")->required();
  Json(*rollback);
}

std::string CtlParser::Finish() {
  // The deepest command given.
  const CLI::App* at = &app_;
  while (true) {
    std::vector<CLI::App*> subs = at->get_subcommands();
    if (subs.empty()) break;
    at = subs.front();
  }
  auto it = commands_.find(at);
  if (it == commands_.end()) return "a command is required";
  o_.command = it->second;
  for (CLI::Option* option : board_options_) {
    if (option->count() > 0) o_.board = board_value_;
  }
  if (o_.command == CtlCommand::kHealth && clear_->count() > 0) {
    o_.command = CtlCommand::kHealthClear;
    o_.board = clear_board_;
  }
  if (!job_id_text_.empty()) {
    errno = 0;
    uint64_t id = 0;
    ParseJobId(job_id_text_, &id);  // Checked by JobIdCheck already.
    o_.jobs.job_id = id;
    o_.job_id = id;
  }
  if (o_.command == CtlCommand::kJobs) {
    const std::string word = at == jobs_ || at == jobs_list_ ? "" : at->get_name();
    if (!word.empty()) {
      for (CLI::Option* filter : list_filters_) {
        if (filter->count() > 0) {
          return filter->get_name() + " filters the list; jobs " + word + " takes none";
        }
      }
      o_.jobs.kind = word == "show" ? JobsCommand::Kind::kShow : JobsCommand::Kind::kCancel;
    } else {
      static const std::pair<const char*, JobStateFilter> kStates[] = {
          {"unfinished", JobStateFilter::kUnfinished}, {"queued", JobStateFilter::kQueued},
          {"running", JobStateFilter::kRunning},       {"finished", JobStateFilter::kFinished},
          {"all", JobStateFilter::kAll}};
      for (const auto& [name, filter] : kStates) {
        if (state_ == name) o_.jobs.list.state = filter;
      }
    }
  }
  if (o_.command == CtlCommand::kModelPlan) {
    o_.plan.json = o_.plan.json || o_.json;
    if (!fabric_.empty()) {
      const size_t x = fabric_.find_first_of("xX");
      const unsigned long long w = std::stoull(fabric_.substr(0, x));
      const unsigned long long h = std::stoull(fabric_.substr(x + 1));
      if (w == 0 || h == 0 || w > UINT32_MAX || h > UINT32_MAX) {
        return "--fabric must be WxH with both sides positive, e.g. 400x600";
      }
      o_.plan.fabric_width = static_cast<uint32_t>(w);
      o_.plan.fabric_height = static_cast<uint32_t>(h);
    }
  }
  return "";
}

// Finds `word` (an option as typed: --name, --name=value, -r) among the options of `app` and
// its parents (global options fall through).
const CLI::Option* FindOption(const CLI::App* app, const std::string& word) {
  std::string name = word.substr(0, word.find('='));
  const bool long_name = name.rfind("--", 0) == 0;
  name = name.substr(long_name ? 2 : 1);
  for (; app != nullptr; app = app->get_parent()) {
    for (const CLI::Option* option : app->get_options()) {
      const std::vector<std::string>& names =
          long_name ? option->get_lnames() : option->get_snames();
      if (std::find(names.begin(), names.end(), name) != names.end()) return option;
    }
  }
  return nullptr;
}

std::vector<std::string> SubcommandNames(const CLI::App* app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
  }
  return names;
}

bool HasPositionals(const CLI::App* app) {
  return !app->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
}

std::string PathOf(const CLI::App* app) {
  std::string path;
  for (; app != nullptr && app->get_parent() != nullptr; app = app->get_parent()) {
    path = " " + app->get_name() + path;
  }
  return path;
}

// Walks `args` through the command tree the way CLI11 will, and reports the first word that
// is neither a command of the group it is in nor an argument: CLI11 itself would only say that
// the argument "was not expected". "" when every command word is known.
std::string UnknownCommand(const CLI::App& root, const std::vector<std::string>& args) {
  const CLI::App* at = &root;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "--") break;
    if (word.size() > 1 && word[0] == '-') {
      const CLI::Option* option = FindOption(at, word);
      if (option != nullptr && TakesValue(option) &&
          word.find('=') == std::string::npos && !(word.size() > 2 && word[1] != '-')) {
        ++i;  // Its value.
      }
      continue;
    }
    const std::vector<std::string> names = SubcommandNames(at);
    if (names.empty()) return "";  // Arguments of a command from here on.
    if (std::find(names.begin(), names.end(), word) != names.end()) {
      at = at->get_subcommand(word);
      continue;
    }
    if (HasPositionals(at)) return "";
    const std::string group = PathOf(at);
    std::string message = "unknown" + (group.empty() ? "" : group) + " command '" + word + "'";
    std::vector<std::string> near = SuggestCommands(word, names);
    if (!near.empty()) {
      message += "; did you mean ";
      for (size_t n = 0; n < near.size(); ++n) {
        message += (n == 0 ? "'" : n + 1 == near.size() ? " or '" : ", '") + near[n] + "'";
      }
      message += "?";
    }
    message += "\nrun 'waferctl" + group + " --help' for the commands";
    return message;
  }
  return "";
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
size_t OsaDistance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string Quote(const std::string& word) { return "'" + word + "'"; }

// The bash words of `hint`: a compgen call for a value.
std::string CompgenFor(const ValueHint& hint) {
  if (!hint.choices.empty()) {
    std::string words;
    for (const std::string& c : hint.choices) words += (words.empty() ? "" : " ") + c;
    return "COMPREPLY=($(compgen -W " + Quote(words) + (hint.file ? " -f" : "") +
           " -- \"$cur\"))";
  }
  return "COMPREPLY=($(compgen -f -- \"$cur\"))";
}

void CompletionCases(const CtlParser& parser, const CLI::App* app, std::ostream& out,
                     std::ostream& values, std::ostream& positionals) {
  const std::string path = PathOf(app);
  std::string words;
  for (const std::string& sub : SubcommandNames(app)) words += sub + " ";
  for (const CLI::App* at = app; at != nullptr; at = at->get_parent()) {
    for (const CLI::Option* option : at->get_options()) {
      if (option->get_positional()) continue;
      for (const std::string& n : option->get_lnames()) words += "--" + n + " ";
      for (const std::string& n : option->get_snames()) words += "-" + n + " ";
      if (TakesValue(option)) {
        const ValueHint* hint = parser.HintFor(option);
        for (const std::string& n : option->get_lnames()) {
          values << "    \"" << path << "|--" << n << "\") "
                 << (hint != nullptr ? CompgenFor(*hint) : "COMPREPLY=()") << "; return;;\n";
        }
        for (const std::string& n : option->get_snames()) {
          values << "    \"" << path << "|-" << n << "\") "
                 << (hint != nullptr ? CompgenFor(*hint) : "COMPREPLY=()") << "; return;;\n";
        }
      }
    }
  }
  if (!words.empty()) words.pop_back();
  out << "    \"" << path << "\") words=" << Quote(words) << ";;\n";
  for (const CLI::Option* option : app->get_options()) {
    if (!option->get_positional()) continue;
    const ValueHint* hint = parser.HintFor(option);
    if (hint == nullptr) continue;
    // The first positional with a hint decides (fault's KIND, load's PATH).
    positionals << "    \"" << path << "\") " << CompgenFor(*hint) << ";;\n";
    break;
  }
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    CompletionCases(parser, sub, out, values, positionals);
  }
}

// The help of the deepest command given, its usage line naming the whole command
// ("Usage: waferctl jobs tail [OPTIONS] ID").
std::string HelpOfDeepest(const CLI::App& app) {
  const CLI::App* at = &app;
  while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
  if (at == &app) return app.help();
  return at->help("waferctl" + PathOf(at->get_parent()));
}

}  // namespace

std::vector<std::string> SuggestCommands(const std::string& word,
                                         const std::vector<std::string>& candidates) {
  std::vector<std::pair<size_t, std::string>> scored;
  const size_t limit = word.size() <= 3 ? 1 : 2;
  for (const std::string& c : candidates) {
    const size_t d = OsaDistance(word, c);
    if (d <= limit) {
      scored.emplace_back(d, c);
    } else if (!word.empty() && c.rfind(word, 0) == 0) {
      scored.emplace_back(limit + 1, c);
    }
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> out;
  for (size_t i = 0; i < scored.size() && i < 3; ++i) out.push_back(scored[i].second);
  return out;
}

std::optional<int> ParseCommandLine(const std::vector<std::string>& args, CtlOptions* options,
                                    std::ostream& out, std::ostream& err) {
  *options = CtlOptions{};
  CtlParser parser(*options);
  CLI::App& app = parser.app();
  if (args.empty()) {
    err << app.help() << "waferctl: a command is required\n";
    return kExitUsage;
  }
  const bool wants_help =
      std::find_if(args.begin(), args.end(), [](const std::string& a) {
        return a == "--help" || a == "-h";
      }) != args.end();
  if (std::string unknown = UnknownCommand(app, args); !unknown.empty() && !wants_help) {
    err << "waferctl: " << unknown << "\n";
    return kExitUsage;
  }
  // CLI11 wants the words last to first.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << HelpOfDeepest(app);
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    if (wants_help) {  // --help wins over a mistake elsewhere on the line.
      out << HelpOfDeepest(app);
      return kExitOk;
    }
    const CLI::App* at = &app;
    while (!at->get_subcommands().empty()) at = at->get_subcommands().front();
    std::string what = e.what();
    if (what == "A subcommand is required" || what.rfind("A subcommand is required", 0) == 0) {
      std::vector<std::string> names = SubcommandNames(at);
      std::string list;
      for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
      what = "waferctl" + PathOf(at) + " needs a command: " + list;
    }
    err << "waferctl: " << what << "\nrun 'waferctl" << PathOf(at) << " --help' for usage\n";
    return kExitUsage;
  }
  if (std::string problem = parser.Finish(); !problem.empty()) {
    err << "waferctl: " << problem << "\n";
    return kExitUsage;
  }
  return std::nullopt;
}

std::string BashCompletionScript() {
  CtlOptions options;
  CtlParser parser(options);
  std::ostringstream cases, values, positionals;
  CompletionCases(parser, &parser.app(), cases, values, positionals);
  std::string value_options;
  std::map<std::string, bool> seen;
  std::function<void(const CLI::App*)> collect = [&](const CLI::App* app) {
    for (const CLI::Option* option : app->get_options()) {
      if (option->get_positional() || !TakesValue(option)) continue;
      for (const std::string& n : option->get_lnames()) seen["--" + n] = true;
      for (const std::string& n : option->get_snames()) seen["-" + n] = true;
    }
    for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
      collect(sub);
    }
  };
  collect(&parser.app());
  for (const auto& [name, _] : seen) value_options += name + "|";
  value_options.pop_back();

  std::ostringstream s;
  s << "# bash completion for waferctl. Generated by `waferctl completion bash` from the\n"
       "# command-line parser itself: do not edit; regenerate.\n"
       "_waferctl() {\n"
       "  local cur prev path=\"\" words i w skip=0\n"
       "  cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
       "  prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
       "  # The command path so far: the words that name commands, skipping option values.\n"
       "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
       "    w=\"${COMP_WORDS[i]}\"\n"
       "    if ((skip)); then skip=0; continue; fi\n"
       "    case \"$w\" in\n"
       "      "
    << value_options
    << ") skip=1; continue;;\n"
       "      -*) continue;;\n"
       "    esac\n"
       "    case \"$(_waferctl_words \"$path\")\" in\n"
       "      \"$w \"*|*\" $w \"*|*\" $w\"|\"$w\") path=\"$path $w\";;\n"
       "    esac\n"
       "  done\n"
       "  case \"$path|$prev\" in\n"
    << values.str()
    << "  esac\n"
       "  if [[ \"$cur\" != -* ]]; then\n"
       "    case \"$path\" in\n"
    << positionals.str()
    << "    esac\n"
       "    [[ -n \"${COMPREPLY[*]}\" ]] && return\n"
       "  fi\n"
       "  COMPREPLY=($(compgen -W \"$(_waferctl_words \"$path\")\" -- \"$cur\"))\n"
       "}\n"
       "# The commands and options valid after the command path $1.\n"
       "_waferctl_words() {\n"
       "  local words=\"\"\n"
       "  case \"$1\" in\n"
    << cases.str()
    << "  esac\n"
       "  echo \"$words\"\n"
       "}\n"
       "complete -F _waferctl waferctl\n";
  return s.str();
}

}  // namespace wafer::host

#include "host/daemon/daemon.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "common/log/log.h"
#include "host/daemon/daemon_parts.h"
#include "host/jobs/in_memory_job_store.h"
#include "host/jobs/sqlite_job_store.h"
#include "common/net/owned_channel.h"
#include "host/scheduler/policy_factory.h"

namespace wafer::host {
namespace {

// Messages handled per socket per loop turn, so one busy socket cannot starve the others.
constexpr int kBurst = 256;

// The store `config.store` names: SQLite (the default location's folder created on first
// start), or memory. Codes as SqliteJobStore::Open (UNAVAILABLE also when the default folder
// cannot be created); the message names the file or folder.
HostResult<std::unique_ptr<JobStore>> OpenJobStore(const DaemonConfig& config, const Clock& clock) {
  if (!config.store.durable()) {
    log::Warn("store", "store.path is memory: accepted jobs do not survive a restart");
    return std::unique_ptr<JobStore>(std::make_unique<InMemoryJobStore>());
  }
  const std::string path = ResolveStorePath(config.store);
  if (config.store.path == "default") {
    std::error_code error;
    const std::filesystem::path folder = std::filesystem::path(path).parent_path();
    std::filesystem::create_directories(folder, error);
    if (error) {
      return Error{StatusCode::kUnavailable, "cannot create the job store's folder " +
                                                 folder.string() + ": " + error.message()};
    }
  }
  WAFER_HOST_ASSIGN_OR_RETURN(
      std::unique_ptr<SqliteJobStore> store,
      SqliteJobStore::Open(SqliteStoreOptions{path, config.store.fsync, 0}, clock));
  return std::unique_ptr<JobStore>(std::move(store));
}

}  // namespace

DaemonParts::DaemonParts(zmq::context_t& context, const DaemonConfig& config, const Clock& clock,
                         std::unique_ptr<JobStore> job_store,
                         std::unique_ptr<SchedulingPolicy> policy, BoardLinkFactory link_factory)
    : access(config.security),
      audit(clock, metrics),
      store(std::move(job_store)),
      jobs(*store, config.finished_job_retention, config.store.finished_retention_bytes),
      scheduler(std::move(policy), config.max_batch, clock),
      waits(config.scheduling, scheduler),
      admission(config, scheduler, waits, clock, RandomNonZeroId()),
      boards(context, clock, config.boards, std::move(link_factory), metrics),
      steps(config, clock, jobs, scheduler, waits, boards, models, job_frontend, metrics),
      models(config, clock, *store, boards, scheduler, steps, admin_frontend, loader_channel,
             metrics),
      job_frontend(context, config, clock, access, *store, jobs, scheduler, admission, waits,
                   models, steps, boards, health, metrics),
      admin_frontend(context, config, clock, access, audit, job_frontend, *store, jobs, scheduler,
                     steps, models, boards, health, metrics),
      health_actions(boards, models, *store, health),
      health(config.health, clock, config.boards.size(), health_actions, metrics.health()) {
  metrics.SetBuildInfo(kWaferdVersion);
  // Every configured board's series exist from the start, before its first report, so a
  // dashboard or an alert over a board that never came up has a series to show.
  for (uint32_t i = 0; i < boards.size(); ++i) metrics.Board(i, 0);
}

DaemonParts::~DaemonParts() {
  if (loader) loader->Stop();
  if (loader_channel) {
    while (net::ReceiveOwned<PrepareDone>(*loader_channel)) {
    }
  }
}

Daemon::Daemon(zmq::context_t& context, const DaemonConfig& config, const Clock& clock)
    : context_(context), config_(config), clock_(clock) {}

Daemon::~Daemon() {
  parts_.reset();
  if (stop_fd_ >= 0) close(stop_fd_);
  if (reload_fd_ >= 0) close(reload_fd_);
}

const std::string& Daemon::job_endpoint() const { return parts_->job_frontend.endpoint(); }
const std::string& Daemon::admin_endpoint() const { return parts_->admin_frontend.endpoint(); }
int Daemon::metrics_port() const { return parts_->metrics.port(); }

HostResult<std::unique_ptr<Daemon>> Daemon::Create(zmq::context_t& context,
                                                   const DaemonConfig& config, const Clock& clock,
                                                   BoardLinkFactory link_factory) {
  std::unique_ptr<Daemon> d(new Daemon(context, config, clock));
  WAFER_HOST_ASSIGN_OR_RETURN(std::unique_ptr<SchedulingPolicy> policy,
                              MakeSchedulingPolicy(config.scheduler_policy, config.scheduling));
  d->stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  d->reload_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (d->stop_fd_ < 0 || d->reload_fd_ < 0) return Error{StatusCode::kInternal, "eventfd failed"};
  const SecurityConfig& security = config.security;
  WAFER_HOST_RETURN_IF_ERROR(CheckTransportSecurity(config));
  std::string secret_key;
  if (security.curve()) {
    WAFER_HOST_ASSIGN_OR_RETURN(secret_key, ReadSecretKeyFile(security.server_secret_key_file));
  }
  WAFER_HOST_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, OpenJobStore(d->config_, clock));
  d->parts_ = std::make_unique<DaemonParts>(context, d->config_, clock, std::move(store),
                                            std::move(policy), std::move(link_factory));
  DaemonParts& p = *d->parts_;
  WAFER_HOST_RETURN_IF_ERROR(p.audit.Open(security.audit_log_file));
  if (security.curve()) {
    // Before any CURVE socket binds: libzmq's CURVE server accepts every client while no ZAP
    // handler runs.
    const AccessPolicy* access = &p.access;
    AuditLog* audit = &p.audit;
    auto zap = net::ZapHandler::Start(
        context, [access, audit](const std::string& domain, const std::string& key) {
          std::optional<std::string> name = access->Admit(domain, key);
          if (!name) audit->RecordRepeatable("auth_refused", "key " + key, domain, "refused");
          return name;
        });
    if (!zap.ok()) return std::move(zap).error();
    p.zap = std::move(zap).value();
  } else if (security.insecure) {
    log::Warn("daemon", "security.insecure: the job and admin sockets are plaintext");
  }
  d->server_secret_key_ = secret_key;
  WAFER_HOST_RETURN_IF_ERROR(p.job_frontend.Bind(secret_key));
  WAFER_HOST_RETURN_IF_ERROR(p.admin_frontend.Bind(secret_key));
  if (!config.metrics_address.empty()) {
    BasicAuth auth;  // Empty: /metrics is open.
    if (!security.metrics_auth_file.empty()) {
      WAFER_HOST_ASSIGN_OR_RETURN(auth, ReadBasicAuthFile(security.metrics_auth_file));
    }
    WAFER_HOST_RETURN_IF_ERROR(p.metrics.Serve(config.metrics_address, auth.user, auth.password));
    const std::string& a = config.metrics_address;
    p.admin_frontend.set_metrics_url("http://" + a.substr(0, a.rfind(':')) + ":" +
                                     std::to_string(p.metrics.port()) + "/metrics");
  }
  HostResult<net::OwnedChannel> channel = net::OpenOwnedChannel(context, Loader::ChannelEndpoint());
  if (!channel.ok()) return std::move(channel).error();
  p.loader_channel = std::move(channel->bound);
  p.loader = std::make_unique<Loader>(std::move(channel->connected));
  p.loader->Start();
  WAFER_HOST_RETURN_IF_ERROR(p.boards.Start());
  p.boards.set_drain_listener([&p](Board& board) { p.steps.OnDrainChanged(board); });
  // An operator's drain, like a health incident, outlives a restart.
  p.boards.set_drain_recorder([&p](const Board& board) {
    p.store->BoardStateChanged(StoredStateOf(board, p.health)).IgnoreError();
  });
  for (const ModelLoadConfig& m : config.models) {
    LoadRequest request;
    request.name = m.name;
    request.path = m.path;
    request.boards = m.boards.empty() ? std::vector<uint32_t>{m.board} : m.boards;
    request.slots = m.slots == 0 ? config.default_slots : m.slots;
    request.context_length = m.context_length;
    p.models.StartLoad(std::move(request));
  }
  d->Recover();
  return d;
}

void Daemon::Recover() {
  DaemonParts& p = *parts_;
  // Drains and open health incidents first: no new work reaches those boards meanwhile.
  for (const StoredBoardState& stored : p.store->BoardStates()) {
    RestoreBoardState(stored, p.boards, p.health);
  }
  // Models loaded at run time (waferctl load) before the restart load again, every replica;
  // the config's own, started above, win over stored loads of the same name.
  std::set<std::string> configured;
  for (const auto& [replica, model] : p.models.models()) configured.insert(model->name);
  for (const StoredModelLoad& stored : p.store->LoadedModels()) {
    if (configured.count(stored.name) > 0) continue;
    bool valid = !stored.boards.empty();
    for (uint32_t board : stored.boards) valid &= board < p.boards.size();
    if (!valid) {
      log::Warn("models", "stored load of {} names boards this config lacks; dropped",
                stored.name);
      p.store->ModelRemoved(stored.name).IgnoreError();
      continue;
    }
    LoadRequest request;
    request.name = stored.name;
    request.path = stored.path;
    request.boards = stored.boards;
    request.slots = stored.slots;
    request.context_length = stored.context_length;
    p.models.StartLoad(std::move(request));
  }
  // Unfinished jobs queue again in the order they were accepted; a job that was running
  // recomputes its prompt plus its output so far, then decodes on (as after a board loss).
  // No client listens until one resumes the stream.
  size_t recovered = 0;
  std::set<std::string> orphaned;
  std::vector<JobRecord*> cancelled;
  p.jobs.ForEachUnfinished([&](JobRecord& job) {
    job.peer.clear();
    job.series = &p.metrics.Model(job.model);
    if (job.cancel_requested) {
      cancelled.push_back(&job);  // Its client was told; it must not run again.
      return;
    }
    // The class follows today's configuration, as for a job submitted now.
    const SchedulingConfig& sched = config_.scheduling;
    job.priority_class = static_cast<uint8_t>(
        sched.ClassFor(job.priority, sched.TenantNamed(job.tenant), nullptr));
    p.jobs.MarkRequeued(job);
    p.scheduler.Enqueue(QueuedJobOf(job));
    if (sched.TenantNamed(job.tenant).shed_on_ttft_miss) p.steps.WatchTtftTarget(job);
    if (p.models.Replicas(job.model).empty()) orphaned.insert(job.model);
    ++recovered;
  });
  for (JobRecord* job : cancelled) p.steps.FinishJob(*job, job->cancel_reason);
  for (const std::string& model : orphaned) {
    p.steps.FailQueued(model, ErrorCode::kModelNotReady,
                       "model '" + model + "' is no longer loaded after the restart");
  }
  p.metrics.jobs_recovered().Increment(static_cast<double>(recovered));
  if (recovered > 0 || p.store->size() > 0) {
    log::Info("store", "{}: {} unfinished jobs queued again, {} jobs held", p.store->Describe(),
              recovered, p.store->size());
  }
}

void Daemon::RequestStop() {
  uint64_t one = 1;
  ssize_t n = write(stop_fd_, &one, sizeof(one));
  (void)n;  // A full eventfd already carries a stop request.
}

void Daemon::RequestReload() {
  uint64_t one = 1;
  ssize_t n = write(reload_fd_, &one, sizeof(one));
  (void)n;  // A full eventfd already carries a reload request.
}

void Daemon::set_config_source(std::function<HostResult<DaemonConfig>()> source) {
  std::lock_guard<std::mutex> lock(source_mu_);
  config_source_ = std::move(source);
}

void Daemon::Reload() {
  uint64_t value;
  ssize_t n = read(reload_fd_, &value, sizeof(value));
  (void)n;
  std::function<HostResult<DaemonConfig>()> source;
  {
    std::lock_guard<std::mutex> lock(source_mu_);
    source = config_source_;
  }
  if (!source) return;
  DaemonParts& p = *parts_;
  HostResult<DaemonConfig> reread = source();
  if (!reread.ok()) {
    // The running allowlist stays: a broken file must not open or close the doors.
    p.audit.Record("reload", "-", "security.clients", reread.error().ToString());
    return;
  }
  const DaemonConfig& fresh = *reread;
  p.access.ReplaceClients(fresh.security.clients);
  p.audit.Record("reload", "-", "security.clients",
                 "OK: " + std::to_string(fresh.security.clients.size()) + " keys");
  ReloadServerKey(fresh.security);
}

void Daemon::ReloadServerKey(const SecurityConfig& fresh) {
  DaemonParts& p = *parts_;
  const char* what = "security.server_secret_key_file";
  if (fresh.curve() != config_.security.curve()) {
    p.audit.Record("reload", "-", what, "IGNORED: turning CURVE on or off needs a restart");
    return;
  }
  if (!fresh.curve()) return;
  HostResult<std::string> key = ReadSecretKeyFile(fresh.server_secret_key_file);
  if (!key.ok()) {
    // The running key stays: a broken file must not open or close the doors.
    p.audit.Record("reload", "-", what, key.error().ToString());
    return;
  }
  if (*key == server_secret_key_) return;
  if (HostStatus s = p.job_frontend.Rekey(*key, server_secret_key_); !s.ok()) {
    p.audit.Record("reload", "-", what, s.error().ToString());
    return;
  }
  if (HostStatus s = p.admin_frontend.Rekey(*key, server_secret_key_); !s.ok()) {
    // Both sockets keep one key: the job socket goes back to the old one (whose failure the
    // audit line below does not add to: the admin socket's is the one reported).
    (void)p.job_frontend.Rekey(server_secret_key_, *key);
    p.audit.Record("reload", "-", what, s.error().ToString());
    return;
  }
  server_secret_key_ = *key;
  std::string public_key;
  if (Result<std::string> pub = net::CurvePublicKeyOf(*key); pub.ok()) public_key = *pub;
  p.audit.Record("reload", "-", what, "OK: sockets rebound, server public key " + public_key);
}

void Daemon::Run() {
  DaemonParts& p = *parts_;
  std::vector<zmq::pollitem_t> items;
  while (true) {
    items.clear();
    // A socket a failed key rotation closed is not polled (fd -1 is ignored).
    for (void* socket : {p.job_frontend.handle(), p.admin_frontend.handle()}) {
      items.push_back({socket, -1, static_cast<short>(socket != nullptr ? ZMQ_POLLIN : 0), 0});
    }
    items.push_back({nullptr, stop_fd_, ZMQ_POLLIN, 0});
    items.push_back({p.loader_channel->handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({nullptr, reload_fd_, ZMQ_POLLIN, 0});
    const int durable_fd = p.store->durable_event_fd();
    items.push_back({nullptr, durable_fd, static_cast<short>(durable_fd >= 0 ? ZMQ_POLLIN : 0), 0});
    // Items 6 and 7: handshakes libzmq turned away on the CURVE sockets (none when plaintext).
    for (void* monitor : {p.job_frontend.monitor_handle(), p.admin_frontend.monitor_handle()}) {
      items.push_back({monitor, -1, static_cast<short>(monitor != nullptr ? ZMQ_POLLIN : 0), 0});
    }
    p.boards.AddPollItems(&items);
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      log::Error("daemon", "poll failed: {}", e.what());
      break;
    }
    if (items[4].revents & ZMQ_POLLIN) Reload();
    if (items[6].revents & ZMQ_POLLIN) p.job_frontend.DrainRefusedHandshakes(p.audit);
    if (items[7].revents & ZMQ_POLLIN) p.admin_frontend.DrainRefusedHandshakes(p.audit);
    if (items[5].revents & ZMQ_POLLIN) {
      uint64_t value;
      ssize_t n = read(durable_fd, &value, sizeof(value));
      (void)n;
      p.job_frontend.Release();  // Replies whose writes the syncer just made durable.
    }
    if (items[2].revents & ZMQ_POLLIN) {
      uint64_t value;
      ssize_t n = read(stop_fd_, &value, sizeof(value));
      (void)n;
      if (!stopping_) {
        stopping_ = true;
        p.job_frontend.StopAccepting();
        drain_deadline_ns_ = clock_.NowNanos() + int64_t{config_.drain_timeout_ms} * 1'000'000;
      }
    }
    while (auto done = net::ReceiveOwned<PrepareDone>(*p.loader_channel)) {
      p.models.OnPrepareDone(*done);
    }
    p.boards.Pump([this](Board& board, WorkerEvent& event) { OnWorkerEvent(board, event); });
    p.job_frontend.Pump(kBurst);
    p.admin_frontend.Pump(kBurst);
    p.job_frontend.CheckHeartbeats();
    p.steps.ExpireDeadlines();
    p.health.Tick();
    p.steps.ScheduleSteps();
    // One commit (one fsync) for everything this turn accepted, streamed and ended; the
    // replies that promised it go out after.
    p.job_frontend.Flush();
    ExportStoreStats();
    p.metrics.queue_depth().Set(static_cast<double>(p.scheduler.queued()));
    ExportSchedulerGauges();
    p.metrics.jobs_running().Set(static_cast<double>(p.scheduler.running()));
    if (stopping_ && ShutdownDrained()) break;
  }
  p.job_frontend.Flush();
}

void Daemon::ExportStoreStats() {
  DaemonParts& p = *parts_;
  const JobStoreStats now = p.store->stats();
  JobStoreStats& was = exported_store_stats_;
  p.metrics.store_commits().Increment(static_cast<double>(now.commits - was.commits));
  p.metrics.store_fsyncs().Increment(static_cast<double>(now.fsyncs - was.fsyncs));
  p.metrics.store_fsync_seconds().Increment(now.fsync_seconds - was.fsync_seconds);
  p.metrics.store_write_failures().Increment(
      static_cast<double>(now.write_failures - was.write_failures));
  p.metrics.store_stalled().Set(now.stalled ? 1 : 0);
  p.metrics.replies_waiting().Set(static_cast<double>(p.job_frontend.held()));
  was = now;
}

void Daemon::ExportSchedulerGauges() {
  const int64_t now = clock_.NowNanos();
  if (now - scheduler_gauges_exported_ns_ < kSchedulerGaugesPeriodNs) return;
  scheduler_gauges_exported_ns_ = now;
  DaemonParts& p = *parts_;
  const SchedulingConfig& sched = config_.scheduling;
  SchedulingPolicy::QueueCounts counts;
  p.scheduler.CountQueued(&counts);
  std::map<telemetry::SchedulerMetrics::DepthKey, double> depths;
  const std::string default_tenant = sched.MetricLabel("");  // A job without a tenant.
  for (const auto& [replica, model] : p.models.models()) {
    for (const PriorityClassConfig& cls : sched.classes) depths[{model->name, cls.name, default_tenant}];
  }
  for (const auto& [key, n] : counts) {
    const auto& [model, cls, tenant] = key;
    if (cls >= sched.classes.size()) continue;
    depths[{model, sched.classes[cls].name, sched.MetricLabel(tenant)}] += static_cast<double>(n);
  }
  p.metrics.scheduler().SetQueueDepths(depths);

  std::vector<telemetry::ReplicaState> replicas;
  for (const auto& [replica, model] : p.models.models()) {
    replicas.push_back({model->name, model->boards[0],
                        p.scheduler.ReplicaSlots(model->name, replica).running, model->slots,
                        p.models.TakesJobs(*model)});
  }
  p.metrics.replicas().SetReplicas(replicas);
}

bool Daemon::ShutdownDrained() {
  DaemonParts& p = *parts_;
  if (p.scheduler.queued() == 0 && p.scheduler.running() == 0) return true;
  if (clock_.NowNanos() < drain_deadline_ns_) return false;
  if (config_.store.durable()) {
    // They are in the store: the next start runs them, and their clients resume.
    log::Warn("daemon", "drain timeout; {} queued and {} running jobs stay in {} for the next start",
              p.scheduler.queued(), p.scheduler.running(), p.store->Describe());
    return true;
  }
  log::Warn("daemon", "drain timeout; cancelling {} queued and {} running jobs",
            p.scheduler.queued(), p.scheduler.running());
  p.jobs.ForEachUnfinished([&p](JobRecord& job) {
    p.steps.FinishJob(job, FinishReason::kError, ErrorCode::kDraining, "daemon shut down");
  });
  return true;
}

void Daemon::OnWorkerEvent(Board& board, WorkerEvent& event) {
  DaemonParts& p = *parts_;
  if (auto* step = std::get_if<StepDone>(&event)) return p.steps.OnStepDone(board, *step);
  if (auto* load = std::get_if<LoadDone>(&event)) return p.models.OnLoadDone(*load);
  if (auto* update = std::get_if<BoardUpdate>(&event)) return OnBoardUpdate(board, *update);
  if (auto* progress = std::get_if<LoadProgressEvent>(&event)) {
    return p.models.OnLoadProgress(*progress);
  }
  if (auto* repair = std::get_if<RepairDone>(&event)) return p.models.OnRepairDone(*repair);
  if (auto* logs = std::get_if<LogsDone>(&event)) return p.admin_frontend.OnLogsDone(board, *logs);
  if (auto* geometry = std::get_if<GeometryDone>(&event)) {
    return p.admin_frontend.OnGeometryDone(board, *geometry);
  }
  if (auto* progress = std::get_if<DiagProgressEvent>(&event)) {
    return p.admin_frontend.OnDiagProgress(board, *progress);
  }
  if (auto* diag = std::get_if<DiagDone>(&event)) return p.admin_frontend.OnDiagDone(board, *diag);
  if (auto* firmware = std::get_if<FirmwareInfoDone>(&event)) {
    return p.admin_frontend.OnFirmwareInfoDone(board, *firmware);
  }
  if (auto* flashing = std::get_if<FirmwareProgressEvent>(&event)) {
    return p.admin_frontend.OnFirmwareProgress(board, *flashing);
  }
  if (auto* op = std::get_if<OperationDone>(&event)) {
    switch (op->kind) {
      case OperationDone::Kind::kUnload:
        return p.models.OnUnloadDone(*op);
      case OperationDone::Kind::kReset:
        board.resetting = false;
        // The board's ready report of this reset came while it was still resetting (see
        // OnBoardUpdate): it is back now.
        if (board.state == BoardState::kReady) BoardBack(board);
        p.models.StartPendingLoads();  // Reloads wait for the reset to finish.
        break;
      case OperationDone::Kind::kFault:
      case OperationDone::Kind::kFirmware:
        break;
    }
    p.admin_frontend.FinishOperation(op->admin_peer, op->admin_tag, op->status, op->detail,
                                     op->elapsed_s);
  }
}

void Daemon::OnBoardUpdate(Board& board, const BoardUpdate& update) {
  DaemonParts& p = *parts_;
  const BoardState previous = p.boards.ApplyUpdate(board, update);
  p.health.OnSample(board.index, HealthSampleOf(board, clock_.NowNanos()));
  if (previous == board.state) return;
  if (previous == BoardState::kReady) p.models.OnBoardLost(board);
  // While a reset is under way, "ready" is either a reading the worker sent before it took the
  // reset up, or the reset's own boot: the board is back only once the reset is done
  // (OnWorkerEvent). Otherwise its models would be reloaded onto a board about to be reset, and
  // the health monitor would judge the reset on readings from before it.
  if (board.state == BoardState::kReady && !board.resetting) BoardBack(board);
  p.models.StartPendingLoads();  // Loads waiting for this board may go, or fail if it gave up.
}

void Daemon::BoardBack(Board& board) {
  DaemonParts& p = *parts_;
  p.models.ReloadLostModels(board);
  p.health.OnBoardReady(board.index);
}

}  // namespace wafer::host

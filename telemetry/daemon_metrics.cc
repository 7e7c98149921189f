#include "telemetry/daemon_metrics.h"

#include <prometheus/exposer.h>

namespace wafer::telemetry {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Latency buckets from 100 µs to 30 s: wafer-scale decode runs at 0.3-1 ms per token, TTFT
// ranges from milliseconds to seconds under load.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return kBuckets;
}

}  // namespace

const std::vector<std::string>& DaemonMetrics::BoardStateNames() {
  static const std::vector<std::string> kNames = {"offline", "booting", "ready", "faulted",
                                                  "resetting"};
  return kNames;
}

DaemonMetrics::DaemonMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  scheduler_ = std::make_unique<SchedulerMetrics>(r);
  replicas_ = std::make_unique<ReplicaMetrics>(r);
  health_ = std::make_unique<HealthMetrics>(r);
  board_signals_ = std::make_unique<BoardSignalMetrics>(r);
  submitted_ = &BuildCounter().Name("wafer_jobs_submitted_total")
                    .Help("Jobs accepted onto the queue, by model.").Register(r);
  finished_ = &BuildCounter().Name("wafer_jobs_finished_total")
                   .Help("Jobs that ended, by model and finish reason.").Register(r);
  rejected_ = &BuildCounter().Name("wafer_jobs_rejected_total")
                   .Help("Submissions refused, by reason.").Register(r);
  tokens_ = &BuildCounter().Name("wafer_tokens_generated_total")
                 .Help("Tokens generated, by model.").Register(r);
  dropped_ = &BuildCounter().Name("wafer_frontend_dropped_messages_total")
                  .Help("Messages dropped by socket and reason (bad input without a reply "
                        "address, or a peer that cannot take more).").Register(r);
  ttft_ = &BuildHistogram().Name("wafer_job_time_to_first_token_seconds")
               .Help("Time from acceptance to the first token, by model.").Register(r);
  inter_token_ = &BuildHistogram().Name("wafer_job_inter_token_seconds")
                      .Help("Mean time between tokens within each step's output, by model.")
                      .Register(r);
  queue_wait_ = &BuildHistogram().Name("wafer_job_queue_wait_seconds")
                     .Help("Time from acceptance to the first step, by model.").Register(r);
  board_state_ = &BuildGauge().Name("wafer_board_state")
                      .Help("1 for the board's current state, 0 otherwise.").Register(r);
  board_temp_ = &BuildGauge().Name("wafer_board_max_temperature_celsius")
                     .Help("Hottest die-region temperature.").Register(r);
  region_temp_ = &BuildGauge().Name("wafer_board_region_temperature_celsius")
                      .Help("Temperature per die region.").Register(r);
  board_power_ = &BuildGauge().Name("wafer_board_power_watts").Help("Board power.").Register(r);
  sram_used_ = &BuildGauge().Name("wafer_board_sram_used_bytes")
                    .Help("SRAM in use by weights and KV cache.").Register(r);
  sram_capacity_ = &BuildGauge().Name("wafer_board_sram_capacity_bytes")
                        .Help("SRAM of the board's usable PEs.").Register(r);
  board_drained_ = &BuildGauge().Name("wafer_board_drained")
                        .Help("1 while the board is drained for this reason (it takes no new work).")
                        .Register(r);
  audit_ = &BuildCounter().Name("wafer_audit_events_total")
                .Help("Audit log records: admin actions, refusals, outcomes, refused keys.")
                .Register(r);
  steps_ = &BuildCounter().Name("wafer_board_steps_total").Help("Steps executed.").Register(r);
  device_seconds_ = &BuildCounter().Name("wafer_board_device_seconds_total")
                         .Help("Modeled device time spent in steps.").Register(r);
  queue_depth_ = &BuildGauge().Name("wafer_scheduler_queue_depth")
                      .Help("Jobs waiting for a slot.").Register(r).Add({});
  jobs_running_ = &BuildGauge().Name("wafer_scheduler_jobs_running")
                       .Help("Jobs holding a KV-cache slot.").Register(r).Add({});
  load_bytes_ = &BuildCounter().Name("wafer_model_load_bytes_total")
                     .Help("Weight bytes written to boards.").Register(r).Add({});
  store_commits_ = &BuildCounter().Name("wafer_job_store_commits_total")
                        .Help("Job store transactions committed (one per loop turn with writes).")
                        .Register(r).Add({});
  store_fsyncs_ = &BuildCounter().Name("wafer_job_store_fsyncs_total")
                       .Help("fsyncs of the job store's log, each covering every commit before it.")
                       .Register(r).Add({});
  store_fsync_seconds_ = &BuildCounter().Name("wafer_job_store_fsync_seconds_total")
                              .Help("Time spent in those fsyncs.").Register(r).Add({});
  store_write_failures_ = &BuildCounter().Name("wafer_job_store_write_failures_total")
                               .Help("Writes or commits the disk refused (full, I/O error); each "
                                     "is kept and retried.")
                               .Register(r).Add({});
  store_stalled_ = &BuildGauge().Name("wafer_job_store_stalled")
                        .Help("1 while the job store's writes wait for the disk: new jobs are "
                              "refused with STORAGE_UNAVAILABLE.")
                        .Register(r).Add({});
  replies_waiting_ = &BuildGauge().Name("wafer_job_replies_waiting_for_store")
                          .Help("Replies (accepted, chunks, endings) held until their writes are "
                                "durable.")
                          .Register(r).Add({});
  jobs_recovered_ = &BuildCounter().Name("wafer_jobs_recovered_total")
                         .Help("Unfinished jobs read back from the job store at start and queued "
                               "again.")
                         .Register(r).Add({});
}

DaemonMetrics::~DaemonMetrics() = default;

void DaemonMetrics::SetBuildInfo(const std::string& version) {
  BuildGauge()
      .Name("wafer_build_info")
      .Help("1, labelled with the version of the waferd that serves these metrics.")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
}

HostStatus DaemonMetrics::Serve(const std::string& address, const std::string& user,
                                const std::string& password) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, 2);
    if (!user.empty()) {
      exposer_->RegisterAuth(
          [user, password](const std::string& u, const std::string& p) {
            // Compared in full whatever differs first, so the time taken says nothing.
            const auto same = [](const std::string& a, const std::string& b) {
              unsigned char diff = a.size() == b.size() ? 0 : 1;
              for (size_t i = 0; i < a.size(); ++i) {
                diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
              }
              return diff == 0;
            };
            return same(u, user) & same(p, password);
          },
          "waferd");
    }
    exposer_->RegisterCollectable(registry_);
    std::vector<int> ports = exposer_->GetListeningPorts();
    port_ = ports.empty() ? 0 : ports.front();
  } catch (const std::exception& e) {
    exposer_.reset();
    return Error{StatusCode::kUnavailable, "cannot serve metrics on " + address + ": " + e.what()};
  }
  return HostOk();
}

ModelSeries& DaemonMetrics::Model(const std::string& model) {
  auto it = models_.find(model);
  if (it != models_.end()) return it->second;
  ModelSeries s;
  s.submitted = &submitted_->Add({{"model", model}});
  s.tokens = &tokens_->Add({{"model", model}});
  s.ttft = &ttft_->Add({{"model", model}}, LatencyBuckets());
  s.inter_token = &inter_token_->Add({{"model", model}}, LatencyBuckets());
  s.queue_wait = &queue_wait_->Add({{"model", model}}, LatencyBuckets());
  scheduler_->RegisterModel(model);
  return models_.emplace(model, s).first->second;
}

const std::vector<std::string>& DaemonMetrics::DrainReasonNames() {
  static const std::vector<std::string> kNames = {"operator", "health_incident", "diagnostics"};
  return kNames;
}

BoardSeries& DaemonMetrics::Board(uint32_t board, size_t regions) {
  auto it = boards_.find(board);
  if (it != boards_.end() && it->second.region_temperature.size() >= regions) return it->second;
  BoardSeries& s = boards_[board];
  const std::string b = std::to_string(board);
  if (s.state.empty()) {
    for (const std::string& name : BoardStateNames()) {
      s.state.push_back(&board_state_->Add({{"board", b}, {"state", name}}));
    }
    s.max_temperature = &board_temp_->Add({{"board", b}});
    s.power = &board_power_->Add({{"board", b}});
    s.sram_used = &sram_used_->Add({{"board", b}});
    s.sram_capacity = &sram_capacity_->Add({{"board", b}});
    s.steps = &steps_->Add({{"board", b}});
    s.device_seconds = &device_seconds_->Add({{"board", b}});
    for (const std::string& reason : DrainReasonNames()) {
      s.drained.push_back(&board_drained_->Add({{"board", b}, {"reason", reason}}));
    }
    board_signals_->AddBoard(board);
  }
  while (s.region_temperature.size() < regions) {
    s.region_temperature.push_back(&region_temp_->Add(
        {{"board", b}, {"region", std::to_string(s.region_temperature.size())}}));
  }
  return s;
}

prometheus::Counter& DaemonMetrics::Finished(const std::string& model, const std::string& reason) {
  return finished_->Add({{"model", model}, {"reason", reason}});
}

prometheus::Counter& DaemonMetrics::Rejected(const std::string& reason) {
  return rejected_->Add({{"reason", reason}});
}

prometheus::Counter& DaemonMetrics::Dropped(const std::string& socket, const std::string& reason) {
  return dropped_->Add({{"socket", socket}, {"reason", reason}});
}

prometheus::Counter& DaemonMetrics::Audit(const std::string& event) {
  // Add() returns the existing series when the labels match; prometheus-cpp locks the family.
  return audit_->Add({{"event", event}});
}

}  // namespace wafer::telemetry

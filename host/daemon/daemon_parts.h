// The parts of one waferd, in construction order. Several parts hold references to parts built
// after them (the step loop and the model manager call each other, both answer through the
// front ends); such a reference is only stored by a constructor, never used, so the order below
// is safe. Destruction runs backwards: the front ends and the step loop go first, then the board
// workers and the loader stop, with nothing left that could call into them.
#pragma once

#include <memory>
#include <string>

#include <zmq.hpp>

#include "common/net/curve.h"
#include "common/net/socket.h"
#include "host/boards/board_manager.h"
#include "host/daemon/board_health_actions.h"
#include "host/health/health_monitor.h"
#include "host/serving/model_manager.h"
#include "host/serving/step_loop.h"
#include "host/frontend/access.h"
#include "host/frontend/admin_frontend.h"
#include "host/frontend/job_frontend.h"
#include "host/jobs/job_store.h"
#include "host/jobs/job_table.h"
#include "host/loader/loader.h"
#include "host/scheduler/admission.h"
#include "host/scheduler/scheduler.h"
#include "host/scheduler/wait_estimator.h"
#include "telemetry/daemon_metrics.h"

namespace wafer::host {

struct DaemonParts {
  DaemonParts(zmq::context_t& context, const DaemonConfig& config, const Clock& clock,
              std::unique_ptr<JobStore> job_store, std::unique_ptr<SchedulingPolicy> policy,
              BoardLinkFactory link_factory);
  ~DaemonParts();

  telemetry::DaemonMetrics metrics;
  AccessPolicy access;
  AuditLog audit;
  // Authenticates CURVE clients; started before any socket binds (CURVE on) and stopped last.
  std::unique_ptr<net::ZapHandler> zap;
  std::unique_ptr<JobStore> store;  // Durable (SQLite) or in memory, by store.path.
  JobTable jobs;
  Scheduler scheduler;
  WaitEstimator waits;  // Each model's measured service, for admission and Capacity.
  Admission admission;
  BoardManager boards;
  std::unique_ptr<net::Socket> loader_channel;  // The step loop's end of the loader's channel.
  std::unique_ptr<Loader> loader;
  StepLoop steps;
  ModelManager models;
  JobFrontend job_frontend;
  AdminFrontend admin_frontend;
  BoardHealthActions health_actions;
  HealthMonitor health;  // Fed by Daemon::OnBoardUpdate; ticks every loop turn.
};

}  // namespace wafer::host

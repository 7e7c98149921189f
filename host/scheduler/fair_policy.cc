#include "host/scheduler/fair_policy.h"

#include <algorithm>
#include <limits>

namespace wafer::host {

FairPolicy::FairPolicy(const SchedulingConfig& config)
    : config_(config), accounts_(std::max<size_t>(1, config.classes.size())) {}

uint32_t FairPolicy::ClassIndex(const QueuedJob& job) const {
  return std::min<uint32_t>(job.priority_class, static_cast<uint32_t>(accounts_.size() - 1));
}

double FairPolicy::Weight(const std::string& tenant) {
  auto it = weights_.find(tenant);
  if (it != weights_.end()) return it->second;
  const double w = std::max<uint32_t>(1, config_.TenantNamed(tenant).weight);
  // Weights are cached only while the tenant is known to the policy (see MaybeForget).
  weights_.emplace(tenant, w);
  return w;
}

void FairPolicy::Backlog(uint32_t cls, const std::string& tenant) {
  ClassAccounts& accounts = accounts_[cls];
  Account& account = accounts.tenants[tenant];
  if (account.backlogged++ > 0) return;
  double lift = accounts.floor;
  bool others = false;
  for (const auto& [name, other] : accounts.tenants) {
    if (name == tenant || other.backlogged == 0) continue;
    lift = others ? std::min(lift, other.counter) : other.counter;
    others = true;
  }
  account.counter = std::max(account.counter, lift);
}

void FairPolicy::Unbacklog(uint32_t cls, const std::string& tenant) {
  ClassAccounts& accounts = accounts_[cls];
  auto it = accounts.tenants.find(tenant);
  if (it == accounts.tenants.end() || it->second.backlogged == 0) return;
  if (--it->second.backlogged == 0) accounts.floor = std::max(accounts.floor, it->second.counter);
  MaybeForget(cls, tenant);
}

void FairPolicy::MaybeForget(uint32_t cls, const std::string& tenant) {
  ClassAccounts& accounts = accounts_[cls];
  auto it = accounts.tenants.find(tenant);
  if (it == accounts.tenants.end() || it->second.backlogged > 0 || it->second.running > 0) {
    return;
  }
  accounts.floor = std::max(accounts.floor, it->second.counter);
  accounts.tenants.erase(it);
  if (per_tenant_.count(tenant) == 0) {
    bool anywhere = false;
    for (const ClassAccounts& c : accounts_) anywhere |= c.tenants.count(tenant) > 0;
    if (!anywhere) weights_.erase(tenant);
  }
}

size_t FairPolicy::Push(const QueuedJob& job) {
  const uint32_t cls = ClassIndex(job);
  ModelQueue& queue = models_[job.model];
  if (queue.classes.empty()) queue.classes.resize(accounts_.size());
  ClassQueue& in_class = queue.classes[cls];
  in_class.tenants[job.tenant].emplace(KeyOf(job), job);
  in_class.arrivals.emplace(job.accept_seq, job.job_id);
  ++queue.size;
  index_.emplace(job.job_id, job);
  ++per_tenant_[job.tenant];
  Backlog(cls, job.tenant);
  const std::map<Key, QueuedJob>& own = in_class.tenants[job.tenant];
  if (std::prev(own.end())->first == KeyOf(job)) {
    // Last of its tenant (no earlier deadline than theirs) and accepted after every other job
    // of its class: behind all of them. O(classes), where Position() walks the class.
    return QueuedAbove(job.model, cls) + in_class.arrivals.size() - 1;
  }
  return Position(job.job_id).value_or(0);
}

void FairPolicy::Erase(ModelQueue& queue, const QueuedJob& job) {
  const uint32_t cls = ClassIndex(job);
  ClassQueue& in_class = queue.classes[cls];
  auto tenant = in_class.tenants.find(job.tenant);
  tenant->second.erase(KeyOf(job));
  if (tenant->second.empty()) in_class.tenants.erase(tenant);
  in_class.arrivals.erase(job.accept_seq);
  --queue.size;
  if (--per_tenant_[job.tenant] == 0) per_tenant_.erase(job.tenant);
  Unbacklog(cls, job.tenant);
}

bool FairPolicy::Remove(uint64_t job_id) {
  auto it = index_.find(job_id);
  if (it == index_.end()) return false;
  const QueuedJob job = std::move(it->second);
  index_.erase(it);
  Erase(models_.at(job.model), job);
  return true;
}

std::optional<QueuedJob> FairPolicy::PopNext(const std::string& model, const SchedulerView&) {
  auto it = models_.find(model);
  if (it == models_.end() || it->second.size == 0) return std::nullopt;
  ModelQueue& queue = it->second;
  for (uint32_t cls = 0; cls < queue.classes.size(); ++cls) {
    ClassQueue& in_class = queue.classes[cls];
    if (in_class.tenants.empty()) continue;
    // The backlogged tenant with the lowest counter; ties to the one whose next job came first.
    const std::map<Key, QueuedJob>* best = nullptr;
    double best_counter = 0;
    for (const auto& [tenant, jobs] : in_class.tenants) {
      const double counter = accounts_[cls].tenants[tenant].counter;
      if (best == nullptr || counter < best_counter ||
          (counter == best_counter &&
           jobs.begin()->second.accept_seq < best->begin()->second.accept_seq)) {
        best = &jobs;
        best_counter = counter;
      }
    }
    QueuedJob job = best->begin()->second;
    // Counted as running before it leaves the queue, so that its account is kept between
    // here and OnGranted.
    Account& account = accounts_[cls].tenants[job.tenant];
    ++account.running;
    running_[job.job_id] = Running{job.tenant, cls, &account, Weight(job.tenant)};
    index_.erase(job.job_id);
    Erase(queue, job);
    return job;
  }
  return std::nullopt;
}

std::vector<QueuedJob> FairPolicy::TakeAll(const std::string& model) {
  std::vector<QueuedJob> out;
  auto it = models_.find(model);
  if (it == models_.end()) return out;
  for (const ClassQueue& in_class : it->second.classes) {
    for (const auto& [seq, id] : in_class.arrivals) out.push_back(index_.at(id));
  }
  std::sort(out.begin(), out.end(),
            [](const QueuedJob& a, const QueuedJob& b) { return a.accept_seq < b.accept_seq; });
  for (const QueuedJob& job : out) Remove(job.job_id);
  models_.erase(model);
  return out;
}

void FairPolicy::OnGranted(const RunningJob& job) {
  if (running_.count(job.job.job_id) > 0) return;  // PopNext counted it.
  const uint32_t cls = ClassIndex(job.job);
  auto [account, added] = accounts_[cls].tenants.try_emplace(job.job.tenant);
  if (added) account->second.counter = accounts_[cls].floor;
  ++account->second.running;
  running_[job.job.job_id] =
      Running{job.job.tenant, cls, &account->second, Weight(job.job.tenant)};
}

void FairPolicy::OnReleased(const RunningJob& job) {
  auto it = running_.find(job.job.job_id);
  if (it == running_.end()) return;
  const Running r = it->second;
  running_.erase(it);
  auto account = accounts_[r.cls].tenants.find(r.tenant);
  if (account != accounts_[r.cls].tenants.end() && account->second.running > 0) {
    --account->second.running;
  }
  MaybeForget(r.cls, r.tenant);
}

void FairPolicy::OnServed(uint64_t job_id, uint32_t prompt_tokens, uint32_t output_tokens) {
  auto it = running_.find(job_id);
  if (it == running_.end()) return;
  const double cost = static_cast<double>(prompt_tokens) * config_.prompt_token_cost +
                      static_cast<double>(output_tokens) * config_.output_token_cost;
  it->second.account->counter += cost / it->second.weight;  // One lookup per Step's tokens.
}

std::optional<QueuedJob> FairPolicy::ShedCandidate(const std::string& model,
                                                   uint32_t newcomer_class) const {
  auto it = models_.find(model);
  if (it == models_.end()) return std::nullopt;
  const std::vector<ClassQueue>& classes = it->second.classes;
  for (size_t cls = classes.size(); cls-- > static_cast<size_t>(newcomer_class) + 1;) {
    if (classes[cls].arrivals.empty()) continue;
    return index_.at(classes[cls].arrivals.rbegin()->second);
  }
  return std::nullopt;
}

std::vector<uint64_t> FairPolicy::PreemptCandidates(const std::string& model,
                                                    const SchedulerView& view,
                                                    int64_t now_ns) const {
  std::vector<uint64_t> victims;
  const PreemptionConfig& p = config_.preemption;
  auto it = models_.find(model);
  if (!p.enabled || it == models_.end() || it->second.size == 0) return victims;
  // Nobody runs far enough below the highest waiting class: no victim (and no copy of Running).
  uint32_t highest = 0;
  while (highest < it->second.classes.size() && it->second.classes[highest].arrivals.empty()) {
    ++highest;
  }
  if (view.RunningAtOrBelow(model, highest + p.min_class_gap) == 0) return victims;
  const ModelSlots slots = view.Slots(model);
  // Free slots serve the first queued jobs; each job beyond them may claim one victim.
  size_t uncovered = slots.running < slots.max_batch
                         ? std::min<size_t>(slots.free, slots.max_batch - slots.running)
                         : 0;
  if (it->second.size <= uncovered) return victims;  // Every queued job has a free slot.
  const int64_t min_run_ns = int64_t{p.min_run_ms} * 1'000'000;
  std::vector<RunningJob> running;
  for (const RunningJob& r : view.Running(model)) {
    if (now_ns - r.granted_ns >= min_run_ns) running.push_back(r);
  }
  // Lowest class first; within it the most recently granted.
  std::sort(running.begin(), running.end(), [this](const RunningJob& a, const RunningJob& b) {
    const uint32_t ca = ClassIndex(a.job), cb = ClassIndex(b.job);
    return ca != cb ? ca > cb : a.granted_ns > b.granted_ns;
  });
  // Free slots go to the highest classes first; what they leave waits, per class.
  const std::vector<ClassQueue>& classes = it->second.classes;
  std::vector<size_t> waiting(classes.size());
  for (uint32_t c = 0; c < classes.size(); ++c) {
    const size_t covered = std::min(uncovered, classes[c].arrivals.size());
    uncovered -= covered;
    waiting[c] = classes[c].arrivals.size() - covered;
  }
  // The lowest waiting class is the choosiest (it may preempt only classes further below):
  // it picks first, each from the lowest class left.
  size_t next = 0;
  for (uint32_t c = static_cast<uint32_t>(classes.size()); c-- > 0;) {
    for (size_t n = waiting[c]; n > 0 && next < running.size(); --n) {
      if (ClassIndex(running[next].job) < c + p.min_class_gap) break;
      victims.push_back(running[next++].job.job_id);
    }
  }
  return victims;
}

size_t FairPolicy::QueuedFor(const std::string& model) const {
  auto it = models_.find(model);
  return it == models_.end() ? 0 : it->second.size;
}

size_t FairPolicy::QueuedInClass(const std::string& model, uint32_t cls) const {
  auto it = models_.find(model);
  if (it == models_.end() || cls >= it->second.classes.size()) return 0;
  return it->second.classes[cls].arrivals.size();
}

size_t FairPolicy::QueuedForTenant(const std::string& tenant) const {
  auto it = per_tenant_.find(tenant);
  return it == per_tenant_.end() ? 0 : it->second;
}

size_t FairPolicy::QueuedAbove(const std::string& model, uint32_t cls) const {
  size_t above = 0;
  auto it = models_.find(model);
  if (it == models_.end()) return 0;
  for (uint32_t c = 0; c < cls && c < it->second.classes.size(); ++c) {
    above += it->second.classes[c].arrivals.size();
  }
  return above;
}

QueueAhead FairPolicy::QueuedAhead(const std::string& model, uint32_t cls,
                                   const std::string& tenant) const {
  QueueAhead ahead{QueuedAbove(model, cls), 0, true};
  auto it = models_.find(model);
  if (it == models_.end() || cls >= it->second.classes.size()) return ahead;
  const ClassQueue& in_class = it->second.classes[cls];
  auto own = in_class.tenants.find(tenant);
  if (own != in_class.tenants.end()) ahead.own = own->second.size();
  return ahead;
}

std::optional<size_t> FairPolicy::Position(uint64_t job_id) const {
  auto found = index_.find(job_id);
  if (found == index_.end()) return std::nullopt;
  const QueuedJob& job = found->second;
  const uint32_t cls = ClassIndex(job);
  const ClassQueue& in_class = models_.at(job.model).classes[cls];
  size_t ahead = QueuedAbove(job.model, cls);
  for (const auto& [tenant, jobs] : in_class.tenants) {
    if (tenant == job.tenant) {
      ahead += static_cast<size_t>(std::distance(jobs.begin(), jobs.find(KeyOf(job))));
    } else {
      for (const auto& [key, other] : jobs) ahead += other.accept_seq < job.accept_seq ? 1 : 0;
    }
  }
  return ahead;
}

void FairPolicy::CountQueued(QueueCounts* out) const {
  for (const auto& [model, queue] : models_) {
    for (uint32_t cls = 0; cls < queue.classes.size(); ++cls) {
      for (const auto& [tenant, jobs] : queue.classes[cls].tenants) {
        (*out)[{model, cls, tenant}] += jobs.size();
      }
    }
  }
}

double FairPolicy::Counter(uint32_t cls, const std::string& tenant) const {
  if (cls >= accounts_.size()) return 0;
  auto it = accounts_[cls].tenants.find(tenant);
  return it == accounts_[cls].tenants.end() ? accounts_[cls].floor : it->second.counter;
}

}  // namespace wafer::host

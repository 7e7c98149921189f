// The admin socket's board health: `waferctl health` (HealthQuery, any role) and clearing an
// incident (ClearHealthIncident, admin role).
#include "host/frontend/admin_frontend.h"

namespace wafer::host {
namespace {

HealthIncidentInfo IncidentInfoOf(const Incident& i) {
  const HealthCode* code = FindHealthCode(i.code);
  return HealthIncidentInfo{i.id,
                            i.board,
                            i.code,
                            code != nullptr ? code->name : "",
                            i.message,
                            IncidentStateName(i.state),
                            i.opened_unix_ms,
                            i.closed_unix_ms,
                            i.recoveries,
                            i.last_action,
                            code != nullptr ? code->action : ""};
}

}  // namespace

void AdminFrontend::OnHealth(const std::string& peer, const HealthQuery& query) {
  if (query.board >= 0 && !CheckBoard(peer, query.request_tag, static_cast<uint32_t>(query.board))) {
    return;
  }
  HealthReply reply;
  reply.request_tag = query.request_tag;
  for (uint32_t index = 0; index < boards_.size(); ++index) {
    if (query.board >= 0 && index != static_cast<uint32_t>(query.board)) continue;
    const BoardHealthReport report = health_.Report(index);
    BoardHealthInfo info;
    info.board = index;
    info.level = static_cast<WireHealthLevel>(report.level);
    info.evaluated = report.evaluated;
    for (const RuleResult& r : report.rules) {
      const HealthCode* code = FindHealthCode(r.code);
      info.rules.push_back(HealthRuleState{HealthRuleName(r.rule),
                                           static_cast<WireHealthLevel>(r.level), r.code,
                                           code != nullptr ? code->name : "", r.message,
                                           code != nullptr ? code->action : ""});
    }
    if (report.open) info.open = IncidentInfoOf(*report.open);
    for (const Incident& i : report.closed) info.closed.push_back(IncidentInfoOf(i));
    info.drain = boards_.at(index).drain.Describe();
    reply.boards.push_back(std::move(info));
  }
  Send(peer, reply);
}

void AdminFrontend::OnClearHealth(const std::string& peer, const ClearHealthIncident& clear) {
  if (!CheckBoard(peer, clear.request_tag, clear.board)) return;
  const HostResult<std::string> cleared = health_.Clear(clear.board);
  if (cleared.ok()) return FinishOperation(peer, clear.request_tag, OkStatus(), *cleared, 0);
  FinishOperation(peer, clear.request_tag,
                  cleared.code() == StatusCode::kNotFound ? FailedPrecondition() : cleared.status(),
                  cleared.error().message, 0);
}

}  // namespace wafer::host

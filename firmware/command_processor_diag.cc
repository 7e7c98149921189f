// CommandProcessor's diagnostics (RunDiagnostic): the wafer's built-in self-tests, and the
// retirement of the PEs a full sweep finds failing. Split from command_processor.cc by
// responsibility (that file is near the size STYLE.md allows).
#include "firmware/command_processor.h"

namespace wafer::fw {

Status CommandProcessor::HandleRunDiagnostic(const DiagnosticArgs& args, Reply& reply,
                                             const char*& detail) {
  if (boot_.state() != BootState::kReady || !harvested_) {
    detail = "diagnostics need a ready board with a harvested fabric";
    return FailedPrecondition();
  }
  if (args.test == DiagTest::kNone) {
    detail = "RunDiagnostic.test is kNone";
    return InvalidArgument();
  }
  if (args.row_count == 0) {
    detail = "RunDiagnostic.row_count is 0";
    return InvalidArgument();
  }
  DiagnosticSummary& out = reply.diagnostic;
  out = DiagnosticSummary{};
  out.test = args.test;
  out.first_row = args.first_row;
  size_t found = 0;
  Status status;
  switch (args.test) {
    case DiagTest::kNone:
      return InvalidArgument();  // Refused above.
    case DiagTest::kSramUnused:
    case DiagTest::kSramAll:
    case DiagTest::kFabricLinks:
      status = RunPeDiagnostic(args, out, found);
      break;
    case DiagTest::kKnownAnswer:
      status = RunKnownAnswerDiagnostic(args, out, found);
      break;
  }
  if (!status.ok()) {
    switch (status.code()) {
      case StatusCode::kOutOfRange:
        detail = args.test == DiagTest::kKnownAnswer
                     ? "first region is past the board's last region"
                     : "first row is past the usable rectangle's last row";
        break;
      case StatusCode::kUnavailable:
        detail = "the wafer's clocks are stopped";
        break;
      default:
        detail = "the wafer could not run the test";
        break;
    }
    return status;
  }
  // Only runs that found something are logged: a level-3 sweep is some 64 runs, and clean ones
  // would push the records that matter out of the 256-record ring.
  if (out.failures > 0) {
    log_.Append(Severity::kWarning, LogCode::kDiagnosticRun,
                {static_cast<uint64_t>(args.test), args.first_row, out.row_count, out.failures});
  }
  reply.findings = std::span<const DiagFinding>(diag_findings_.data(), found);
  return OkStatus();
}

// kSramAll and kFabricLinks retire each failing PE they report (for a link, the PE it leaves):
// the wafer marks it failed in its defect map, then HandlePeFault remaps it onto a spare when one
// is left, counts it, logs kPeFailed, records a fault report and marks the tensors its model held
// there lost, so the host repairs the model as after any PE fault. A hit the wafer explains by a
// PE already out of service (failed_before) retires nothing: retiring it again would count it
// twice, and retiring the healthy neighbour of a dead PE would spend a spare for nothing. Only
// the first kMaxDiagFindings failures are reported, so only they are retired; a further run
// finds the rest.
Status CommandProcessor::RunPeDiagnostic(const DiagnosticArgs& args, DiagnosticSummary& out,
                                         size_t& found) {
  hal::DiagRun run;
  const std::span<hal::DiagHit> hits(diag_hits_.data(), diag_hits_.size());
  const Status status =
      args.test == DiagTest::kFabricLinks
          ? wafer_.TestFabricLinks(args.first_row, args.row_count, hits, run)
          : wafer_.TestSram(args.first_row, args.row_count, args.test == DiagTest::kSramUnused,
                            hits, run);
  if (!status.ok()) return status;
  out.row_count = run.rows;
  out.units_tested = run.units;
  out.failures = run.failures;
  out.device_ns = run.device_ns;
  const bool retire = args.test == DiagTest::kSramAll || args.test == DiagTest::kFabricLinks;
  const hal::FaultKind kind = args.test == DiagTest::kFabricLinks
                                  ? hal::FaultKind::kFabricLink
                                  : hal::FaultKind::kSramStuckBit;
  found = run.hit_count < hits.size() ? run.hit_count : hits.size();
  for (size_t i = 0; i < found; ++i) {
    const hal::DiagHit& hit = diag_hits_[i];
    DiagFinding& f = diag_findings_[i];
    f = DiagFinding{hit.row, hit.col, hit.region, hit.detail, false, false};
    if (!retire || hit.failed_before || hit.row >= usable_height_) continue;
    // A PE may fail twice in one run (its east and its south link): it is retired once.
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) {
      const DiagFinding& e = diag_findings_[j];
      if (e.row == f.row && e.pe == f.pe && e.retired) {
        f.retired = true;
        f.remapped = e.remapped;
        seen = true;
      }
    }
    if (seen || !wafer_.RetirePe(hit.row, hit.col).ok()) continue;
    f.retired = true;
    f.remapped = HandlePeFault(kind, hit.row, hit.col);
  }
  return OkStatus();
}

// Regions [first_row, first_row + row_count), clipped at the board's last (the first region
// the wafer calls OUT_OF_RANGE) and at kMaxRegions. A region fails when the wafer could not run
// the kernel there (its clock stopped) or its answer is not pes * KnownAnswerPerPe(). Regions
// run one after another: the device time is their sum.
Status CommandProcessor::RunKnownAnswerDiagnostic(const DiagnosticArgs& args,
                                                  DiagnosticSummary& out, size_t& found) {
  const uint64_t count = args.row_count < hal::kMaxRegions ? args.row_count : hal::kMaxRegions;
  const uint64_t end = uint64_t{args.first_row} + count;
  for (uint64_t region = args.first_row; region < end; ++region) {
    uint64_t answer = 0;
    uint64_t pes = 0;
    int64_t device_ns = 0;
    const Status status =
        wafer_.RunKnownAnswer(static_cast<uint32_t>(region), answer, pes, device_ns);
    if (status.code() == StatusCode::kOutOfRange) {
      if (region == args.first_row) return status;
      break;
    }
    ++out.row_count;
    ++out.units_tested;
    out.device_ns += device_ns;
    if (status.ok() && answer == pes * hal::KnownAnswerPerPe()) continue;
    ++out.failures;
    if (found < diag_findings_.size()) {
      diag_findings_[found++] =
          DiagFinding{0, 0, static_cast<uint32_t>(region), answer, false, false};
    }
  }
  return OkStatus();
}

}  // namespace wafer::fw

#include "host/loader/restage.h"

#include <algorithm>
#include <span>
#include <vector>

#include "host/loader/stage_manifest.h"
#include "host/loader/staging.h"

namespace wafer::host {
namespace {

// The tensors the reports from `*next_fault_sequence` on list for `model_id`, sorted and
// without repeats; advances `*next_fault_sequence`. `*missed` is set when reports after it were
// overwritten on the board before they could be read.
HostStatus CollectLostTensors(BoardLink& link, uint32_t model_id, uint64_t* next_fault_sequence,
                              std::vector<uint32_t>* tensors, bool* missed, RestageReport* report) {
  uint64_t from = *next_fault_sequence;
  // The board answers every report it holds in one reply; the bound only stops a board that
  // keeps answering with more from looping forever.
  for (int page = 0; page < 64; ++page) {
    HostResult<BoardFaults> faults = link.ReadFaults(from);
    if (!faults.ok()) {
      return Error{faults.code(), "reading the board's fault reports: " + faults.error().message};
    }
    const std::vector<BoardFaultReport>& got = faults->faults;
    // Sequences start at 1 and are consecutive: a gap after `from` is reports overwritten.
    if (from != 0 && (got.empty() ? faults->next_sequence > from : got.front().sequence > from)) {
      *missed = true;
    }
    for (const BoardFaultReport& f : got) {
      if (f.model_id != model_id) continue;
      ++report->fault_reports;
      report->kv_cache_lost = report->kv_cache_lost || f.kv_cache_lost;
      tensors->insert(tensors->end(), f.restage_tensors.begin(), f.restage_tensors.end());
    }
    *next_fault_sequence = std::max(*next_fault_sequence, faults->next_sequence);
    if (got.empty() || got.back().sequence + 1 >= faults->next_sequence) break;
    from = got.back().sequence + 1;
  }
  std::sort(tensors->begin(), tensors->end());
  tensors->erase(std::unique(tensors->begin(), tensors->end()), tensors->end());
  return HostOk();
}

}  // namespace

HostStatus RestageFaultedTensors(BoardLink& link, const PreparedModel& model, uint32_t model_id,
                                 uint32_t stage, uint64_t* next_fault_sequence,
                                 uint64_t max_chunk_bytes, RestageReport* report) {
  RestageReport ignored;
  RestageReport& done = report != nullptr ? *report : ignored;
  done = RestageReport{};
  if (max_chunk_bytes == 0) {
    return Error{StatusCode::kInvalidArgument, "max_chunk_bytes must be at least 1"};
  }
  ModelManifest manifest;
  std::vector<std::span<const std::byte>> data;
  WAFER_HOST_RETURN_IF_ERROR(StageManifest(model, model_id, stage, &manifest, &data));

  const uint64_t first_sequence = *next_fault_sequence;
  std::vector<uint32_t> lost;
  bool missed = false;
  WAFER_HOST_RETURN_IF_ERROR(
      CollectLostTensors(link, model_id, next_fault_sequence, &lost, &missed, &done));
  // Check every index before writing anything: a board that names a tensor the stage does not
  // have holds another model than `model` under this id.
  for (uint32_t index : lost) {
    if (index >= manifest.tensors.size()) {
      return Error{StatusCode::kDataLoss, "the board reports tensor " + std::to_string(index) +
                                              " of model " + std::to_string(model_id) +
                                              " lost, but stage " + std::to_string(stage) + " of " +
                                              model.name + " has " +
                                              std::to_string(manifest.tensors.size()) + " tensors"};
    }
  }

  // A shape-only model's weights are synthetic: nothing to send, the commit is the repair.
  if (!manifest.shape_only) {
    for (uint32_t index : lost) {
      WAFER_HOST_RETURN_IF_ERROR(WriteTensorChunks(
          link, model_id, index, "rewriting", manifest.tensors[index].name, data[index],
          max_chunk_bytes, [&](uint64_t bytes) { done.bytes += bytes; }));
      ++done.tensors;
    }
  }
  if (HostStatus s = link.CommitModel(model_id); !s.ok()) {
    Error error{s.code(),
                "the board refused the repair of " + model.name + ": " + s.error().message};
    if (missed) {
      error.message += " (fault reports after sequence " + std::to_string(first_sequence) +
                       " were overwritten before they were read; reload the model)";
    }
    return error;
  }
  return HostOk();
}

}  // namespace wafer::host

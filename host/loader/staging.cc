#include "host/loader/staging.h"

#include <algorithm>
#include <vector>

#include "host/loader/stage_manifest.h"
#include "host/loader/stage_session.h"

namespace wafer::host {

HostStatus PrepareModel(const PrepareWork& work, std::shared_ptr<const PreparedModel>* out,
                        RowBand* rows) {
  auto model = std::make_shared<PreparedModel>();
  WAFER_HOST_RETURN_IF_ERROR(OpenModelSource(work.path, &model->source));
  model->name = work.name.empty() ? model->source.name : work.name;
  model->slots = work.slots;
  const uint32_t max_context = model->source.arch.max_position;
  model->context_length =
      work.context_length == 0 ? max_context : std::min(work.context_length, max_context);
  PlanRequest request;
  request.arch = model->source.arch;
  request.board = work.geometry;
  request.boards = static_cast<uint32_t>(work.boards.size());
  request.split_over_all_boards = true;
  request.spread = work.spread;
  request.slots = model->slots;
  request.context = model->context_length;
  request.dtype_bytes = 2;
  for (const TensorDesc& t : model->source.tensors) {
    if (t.dtype == DType::kF32) request.dtype_bytes = 4;
  }
  std::string why = "no rows are free on every one of them";
  for (const RowBand& gap : work.gaps) {
    request.origin_row = gap.first;
    request.confine_height = gap.rows;
    HostResult<Plan> plan = PlanPlacement(request);
    if (!plan.ok()) {
      why = plan.error().message;
      continue;
    }
    uint32_t used = 0;
    for (const BoardPlan& b : plan->boards) used = std::max(used, b.rows_used);
    model->plan = std::move(plan).value();
    *rows = RowBand{gap.first, used};
    *out = std::move(model);
    return HostOk();
  }
  std::string boards;
  for (uint32_t b : work.boards) {
    if (!boards.empty()) boards += ',';
    boards += std::to_string(b);
  }
  return Error{StatusCode::kResourceExhausted,
               "no room for " + model->name + " on board" + (work.boards.size() > 1 ? "s " : " ") +
                   boards + " (" + std::to_string(work.geometry.fabric_width) + "x" +
                   std::to_string(work.geometry.fabric_height) + " PEs): " + why};
}

HostStatus WriteTensorChunks(BoardLink& link, uint32_t model_id, uint32_t index, const char* doing,
                             const std::string& name, std::span<const std::byte> bytes,
                             uint64_t max_chunk, const std::function<void(uint64_t)>& on_chunk) {
  for (uint64_t off = 0; off < bytes.size(); off += max_chunk) {
    const auto piece = bytes.subspan(off, std::min<uint64_t>(max_chunk, bytes.size() - off));
    if (HostStatus s = link.WriteWeights(model_id, index, off, piece); !s.ok()) {
      return Error{s.code(), std::string(doing) + " " + name + " at offset " + std::to_string(off) +
                                 ": " + s.error().message};
    }
    if (on_chunk) on_chunk(piece.size());
  }
  return HostOk();
}

HostStatus StageModel(BoardLink& link, const PreparedModel& model, uint32_t model_id,
                      uint32_t stage, uint64_t max_chunk,
                      const std::function<void(uint64_t)>& on_written,
                      const std::function<bool()>& cancelled) {
  // The session keeps `model` only for the call: a non-owning shared_ptr.
  StageSession session(std::shared_ptr<const PreparedModel>(&model, [](const PreparedModel*) {}),
                       model_id, stage, max_chunk);
  WAFER_HOST_RETURN_IF_ERROR(session.Begin(link));
  while (!session.done()) {
    if (cancelled && cancelled()) {
      session.Abort(link);
      return Error{StatusCode::kCancelled, "cancelled"};
    }
    WAFER_HOST_RETURN_IF_ERROR(session.Next(link));
    if (on_written) on_written(session.written());
  }
  return HostOk();
}

}  // namespace wafer::host

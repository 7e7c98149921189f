#include "host/placement/placement_planner.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "host/models/checkpoint.h"

namespace wafer::host {
namespace {

struct TensorSpec {
  std::string name;
  TensorRole role;
  uint32_t layer;
  uint64_t bytes;
};

// A stage before it has a board and a position: its tensors and the shape of its band.
struct StageSpec {
  StageKind kind = StageKind::kLayer;
  uint32_t layer = 0;
  std::vector<TensorSpec> tensors;
  uint64_t kv_bytes = 0;
  uint32_t rows = 0;
  uint64_t kv_per_pe = 0;
  std::vector<uint32_t> cols;  // Per tensor.
};

uint64_t CeilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

Error Fail(Status status, std::string why) { return Error{status.code(), std::move(why)}; }

TensorSpec Spec(const ModelArch& arch, TensorRole role, uint32_t layer, uint32_t dtype_bytes) {
  uint64_t bytes = dtype_bytes;
  for (uint64_t d : ExpectedTensorShape(arch, role)) bytes *= d;
  return {TensorName(role, layer), role, layer, bytes};
}

std::string Gb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GB", double(bytes) / 1e9);
  return buf;
}

const char* StageLabel(const StageSpec& s) {
  return s.kind == StageKind::kEmbedding ? "the embedding" : s.kind == StageKind::kHead ? "the head"
                                                                                       : "a layer";
}

// Splits the width among the stage's tensors for a band of `rows` rows: each tensor gets the
// fewest columns that keep its bytes per PE, beside the band's KV share, within `sram_per_pe`,
// and spare columns then go, one at a time, to the tensor with the most bytes per column.
// Returns false (and leaves `s` alone) when the tensors do not fit. Fitting is monotone in
// `rows`: more rows only lower the KV share and each tensor's column count.
bool SplitColumns(StageSpec* s, uint32_t width, uint64_t rows, uint64_t sram_per_pe) {
  if (s->tensors.size() > width) return false;
  const uint64_t kv_per_pe = CeilDiv(s->kv_bytes, uint64_t{width} * rows);
  if (kv_per_pe >= sram_per_pe) return false;
  const uint64_t budget = sram_per_pe - kv_per_pe;  // Weight bytes one PE may hold.
  std::vector<uint32_t> cols;
  uint64_t used = 0;
  for (const TensorSpec& t : s->tensors) {
    const uint64_t c = std::max<uint64_t>(1, CeilDiv(t.bytes, budget * rows));
    used += c;
    if (used > width) return false;
    cols.push_back(static_cast<uint32_t>(c));
  }
  for (uint64_t spare = width - used; spare > 0; --spare) {
    size_t worst = 0;
    for (size_t i = 1; i < cols.size(); ++i) {
      // bytes_i / cols_i > bytes_w / cols_w, without division.
      if (s->tensors[i].bytes * cols[worst] > s->tensors[worst].bytes * cols[i]) worst = i;
    }
    ++cols[worst];
  }
  s->rows = static_cast<uint32_t>(rows);
  s->kv_per_pe = kv_per_pe;
  s->cols = std::move(cols);
  return true;
}

// Gives the stage the fewest full-width rows (at most `height`) in which every tensor fits
// its column range beside the band's KV share. Returns false when no height works.
bool ShapeBand(StageSpec* s, uint32_t width, uint32_t height, uint64_t sram_per_pe) {
  uint64_t total = s->kv_bytes;
  for (const TensorSpec& t : s->tensors) total += t.bytes;
  const uint64_t lower = std::max<uint64_t>(1, CeilDiv(total, uint64_t{width} * sram_per_pe));
  for (uint64_t rows = lower; rows <= height; ++rows) {
    if (SplitColumns(s, width, rows, sram_per_pe)) return true;
  }
  return false;
}

// Boards used when each holds at most `cap` rows of stages, in order.
uint32_t CountBoards(const std::vector<StageSpec>& stages, uint32_t cap) {
  uint32_t boards = 1, used = 0;
  for (const StageSpec& s : stages) {
    if (used + s.rows > cap) {
      ++boards;
      used = 0;
    }
    used += s.rows;
  }
  return boards;
}

HostStatus Validate(const PlanRequest& r) {
  const ModelArch& a = r.arch;
  if (a.vocab_size == 0 || a.hidden_size == 0 || a.intermediate_size == 0 ||
      a.num_layers == 0 || a.num_heads == 0 || a.num_kv_heads == 0 || a.head_dim == 0) {
    return Fail(InvalidArgument(), "model architecture has a zero dimension");
  }
  if (r.board.fabric_width == 0 || r.board.fabric_height == 0 || r.board.sram_per_pe == 0) {
    return Fail(InvalidArgument(), "board geometry has a zero dimension");
  }
  if (r.boards == 0) return Fail(InvalidArgument(), "boards must be at least 1");
  if (r.dtype_bytes == 0 || r.kv_dtype_bytes == 0) {
    return Fail(InvalidArgument(), "dtype_bytes and kv_dtype_bytes must be > 0");
  }
  if (r.origin_row >= r.board.fabric_height) {
    return Fail(InvalidArgument(),
                "origin row " + std::to_string(r.origin_row) + " is outside the fabric's " +
                    std::to_string(r.board.fabric_height) + " rows");
  }
  if (r.confine_width > r.board.fabric_width ||
      r.confine_height > r.board.fabric_height - r.origin_row) {
    return Fail(InvalidArgument(),
                "fabric confinement " + std::to_string(r.confine_width) + "x" +
                    std::to_string(r.confine_height) + " exceeds the fabric " +
                    std::to_string(r.board.fabric_width) + "x" +
                    std::to_string(r.board.fabric_height));
  }
  return HostOk();
}

struct Shaped {
  std::vector<StageSpec> stages;
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t boards_needed = 0;
};

// The stages of the model, each with its band shape, and the fewest boards that hold them.
// `tied_copy`: a tied embedding also sits in the head band (needed when the head is on another
// board than the embedding).
HostResult<Shaped> ShapeStages(const PlanRequest& r, bool tied_copy) {
  const ModelArch& a = r.arch;
  Shaped out;
  out.width = r.confine_width != 0 ? r.confine_width : r.board.fabric_width;
  out.height = r.confine_height != 0 ? r.confine_height : r.board.fabric_height - r.origin_row;
  const uint64_t kv_per_layer = 2ull * a.num_kv_heads * a.head_dim * r.kv_dtype_bytes *
                                uint64_t{r.slots} * r.context;

  auto stage = [](StageKind kind, uint32_t layer) {
    StageSpec s;
    s.kind = kind;
    s.layer = layer;
    return s;
  };
  out.stages.push_back(stage(StageKind::kEmbedding, 0));
  out.stages.back().tensors.push_back(Spec(a, TensorRole::kEmbedding, 0, r.dtype_bytes));
  for (uint32_t l = 0; l < a.num_layers; ++l) {
    StageSpec s = stage(StageKind::kLayer, l);
    for (TensorRole role : {TensorRole::kAttnNorm, TensorRole::kWq, TensorRole::kWk,
                            TensorRole::kWv, TensorRole::kWo, TensorRole::kMlpNorm,
                            TensorRole::kWGate, TensorRole::kWUp, TensorRole::kWDown}) {
      s.tensors.push_back(Spec(a, role, l, r.dtype_bytes));
    }
    s.kv_bytes = kv_per_layer;
    out.stages.push_back(std::move(s));
  }
  StageSpec head = stage(StageKind::kHead, 0);
  head.tensors.push_back(Spec(a, TensorRole::kFinalNorm, 0, r.dtype_bytes));
  if (!a.tie_embeddings) {
    head.tensors.push_back(Spec(a, TensorRole::kLmHead, 0, r.dtype_bytes));
  } else if (tied_copy) {
    TensorSpec copy = Spec(a, TensorRole::kLmHead, 0, r.dtype_bytes);
    copy.name = TensorName(TensorRole::kEmbedding, 0) + " (tied copy)";
    head.tensors.push_back(std::move(copy));
  }
  out.stages.push_back(std::move(head));

  // Decoder layers are alike: shape one and copy its band.
  const StageSpec* shaped_layer = nullptr;
  for (StageSpec& s : out.stages) {
    if (s.kind == StageKind::kLayer && shaped_layer != nullptr) {
      s.rows = shaped_layer->rows;
      s.kv_per_pe = shaped_layer->kv_per_pe;
      s.cols = shaped_layer->cols;
      continue;
    }
    if (!ShapeBand(&s, out.width, out.height, r.board.sram_per_pe)) {
      uint64_t bytes = s.kv_bytes;
      for (const TensorSpec& t : s.tensors) bytes += t.bytes;
      return Fail(ResourceExhausted(),
                  std::string("even one stage does not fit a wafer: ") + StageLabel(s) +
                      " needs " + Gb(bytes) + (s.kv_bytes ? " (" + Gb(s.kv_bytes) + " of KV)" : "") +
                      " but a " + std::to_string(out.width) + "x" + std::to_string(out.height) +
                      " region holds " +
                      Gb(uint64_t{out.width} * out.height * r.board.sram_per_pe) +
                      (s.kv_bytes ? "; reduce slots or context" : ""));
    }
    if (s.kind == StageKind::kLayer) shaped_layer = &s;
  }
  out.boards_needed = CountBoards(out.stages, out.height);
  return out;
}

// Shapes the stages, adding the tied copy only when the model goes over more than one board.
HostResult<Shaped> ShapeModel(const PlanRequest& r) {
  WAFER_HOST_RETURN_IF_ERROR(Validate(r));
  WAFER_HOST_ASSIGN_OR_RETURN(Shaped shaped, ShapeStages(r, /*tied_copy=*/false));
  const bool split = shaped.boards_needed > 1 || (r.split_over_all_boards && r.boards > 1);
  if (r.arch.tie_embeddings && split) {
    return ShapeStages(r, /*tied_copy=*/true);
  }
  return shaped;
}

// The bytes of weights a stage multiplies by for every token: what PlanRequest::spread hands
// rows in proportion to. The embedding is a lookup of one row per token, so it gets no extra
// rows, unless the model ties its embeddings and the head holds no copy: then the embedding
// matrix is also the LM head.
uint64_t MatmulBytes(const StageSpec& s, bool embedding_is_lm_head) {
  if (s.kind == StageKind::kEmbedding && !embedding_is_lm_head) return 0;
  uint64_t bytes = 0;
  for (const TensorSpec& t : s.tensors) bytes += t.bytes;
  return bytes;
}

// PlanRequest::spread: on every board, hands the rows the bands left free to that board's bands,
// one row at a time to the band with the most matmul bytes per row (the slowest pipeline
// stage), so rows end up in proportion to the bands' work as far as each band's fewest rows
// allow. Then re-splits the taller bands' columns; that cannot fail, since a band that fits in
// r rows fits in more (SplitColumns), but a failure is reported rather than ignored.
HostStatus SpreadRows(const PlanRequest& r, const std::vector<uint32_t>& board_of, size_t boards,
                      uint32_t width, uint32_t height, std::vector<StageSpec>* stages) {
  bool head_has_lm_head = false;
  for (const StageSpec& s : *stages) {
    if (s.kind != StageKind::kHead) continue;
    for (const TensorSpec& t : s.tensors) head_has_lm_head |= t.role == TensorRole::kLmHead;
  }
  const bool embedding_is_lm_head = r.arch.tie_embeddings && !head_has_lm_head;
  std::vector<size_t> on_board;
  std::vector<uint64_t> work;
  std::vector<uint64_t> rows;
  for (uint32_t board = 0; board < boards; ++board) {
    on_board.clear();
    work.clear();
    rows.clear();
    uint64_t used = 0;
    for (size_t k = 0; k < stages->size(); ++k) {
      if (board_of[k] != board) continue;
      used += (*stages)[k].rows;
      const uint64_t bytes = MatmulBytes((*stages)[k], embedding_is_lm_head);
      if (bytes == 0) continue;
      on_board.push_back(k);
      work.push_back(bytes);
      rows.push_back((*stages)[k].rows);
    }
    if (on_board.empty()) continue;
    for (uint64_t spare = height - used; spare > 0; --spare) {
      size_t slowest = 0;
      for (size_t i = 1; i < on_board.size(); ++i) {
        // work_i / rows_i > work_s / rows_s, without division.
        if (work[i] * rows[slowest] > work[slowest] * rows[i]) slowest = i;
      }
      ++rows[slowest];
    }
    for (size_t i = 0; i < on_board.size(); ++i) {
      StageSpec& s = (*stages)[on_board[i]];
      if (rows[i] == s.rows) continue;
      if (!SplitColumns(&s, width, rows[i], r.board.sram_per_pe)) {
        return Fail(Internal(),
                    std::string("spreading ") + StageLabel(s) + " over " +
                        std::to_string(rows[i]) + " rows broke its column split");
      }
    }
  }
  return HostOk();
}

}  // namespace

const char* StageKindName(StageKind kind) {
  switch (kind) {
    case StageKind::kEmbedding: return "embedding";
    case StageKind::kLayer: return "layer";
    case StageKind::kHead: return "head";
  }
  return "?";
}

BoardGeometry GeometryFromIdentity(const BoardIdentity& identity) {
  return {identity.fabric_width, identity.fabric_height, identity.sram_per_pe};
}

HostResult<uint32_t> BoardsNeeded(const PlanRequest& request) {
  WAFER_HOST_ASSIGN_OR_RETURN(const Shaped shaped, ShapeModel(request));
  return shaped.boards_needed;
}

HostResult<Plan> PlanPlacement(const PlanRequest& request) {
  WAFER_HOST_ASSIGN_OR_RETURN(Shaped shaped, ShapeModel(request));
  const uint32_t n = shaped.boards_needed;
  if (n > request.boards) {
    return Fail(ResourceExhausted(),
                "the model needs " + std::to_string(n) + " boards of " +
                    std::to_string(shaped.width) + "x" + std::to_string(shaped.height) +
                    " PEs for its weights and KV reservation; " + std::to_string(request.boards) +
                    (request.boards == 1 ? " board was" : " boards were") + " given");
  }
  // Split over every board given: layers spread evenly by count (layer l on board
  // l * boards / layers), the embedding with the first, the head with the last.
  const bool even = request.split_over_all_boards && request.boards > n;
  if (even && request.boards > request.arch.num_layers) {
    return Fail(InvalidArgument(),
                std::to_string(request.boards) + " boards for " +
                    std::to_string(request.arch.num_layers) +
                    " layers: a split gives every board at least one layer");
  }
  // Otherwise balance: the smallest per-board row limit that still needs only n boards.
  uint32_t lo = 1, hi = shaped.height;
  for (const StageSpec& s : shaped.stages) lo = std::max(lo, s.rows);
  while (lo < hi) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (CountBoards(shaped.stages, mid) <= n) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  const uint32_t cap = lo;

  // Each stage's board, in pipeline order, and the rows each board's bands take.
  std::vector<uint32_t> board_of;
  std::vector<uint32_t> rows_on(1, 0);
  for (const StageSpec& s : shaped.stages) {
    const uint32_t current = static_cast<uint32_t>(rows_on.size() - 1);
    const bool next_board =
        even ? s.kind == StageKind::kLayer &&
                   uint64_t{s.layer} * request.boards / request.arch.num_layers > current
             : rows_on.back() + s.rows > cap;
    if (next_board) rows_on.push_back(0);
    board_of.push_back(static_cast<uint32_t>(rows_on.size() - 1));
    rows_on.back() += s.rows;
  }
  for (size_t b = 0; b < rows_on.size(); ++b) {
    if (rows_on[b] > shaped.height) {  // Only an even split can get here.
      return Fail(ResourceExhausted(),
                  "split evenly over " + std::to_string(request.boards) + " boards, board " +
                      std::to_string(b) + " needs " + std::to_string(rows_on[b]) + " rows of " +
                      std::to_string(shaped.height));
    }
  }
  if (request.spread) {
    WAFER_HOST_RETURN_IF_ERROR(
        SpreadRows(request, board_of, rows_on.size(), shaped.width, shaped.height,
                   &shaped.stages));
  }

  Plan plan;
  plan.request = request;
  plan.region_width = shaped.width;
  plan.region_height = shaped.height;
  plan.boards_needed = even ? request.boards : n;
  const uint64_t sram = request.board.sram_per_pe;
  for (uint32_t index = 0; index < rows_on.size(); ++index) {
    BoardPlan b;
    b.index = index;
    b.pes_total = uint64_t{shaped.width} * shaped.height;
    b.sram_total = b.pes_total * sram;
    plan.boards.push_back(b);
  }
  for (size_t k = 0; k < shaped.stages.size(); ++k) {
    const StageSpec& s = shaped.stages[k];
    BoardPlan& b = plan.boards[board_of[k]];
    StagePlacement st;
    st.kind = s.kind;
    st.layer = s.layer;
    st.board = b.index;
    const uint32_t y = request.origin_row + b.rows_used;
    st.band = {0, y, shaped.width, s.rows};
    st.kv_bytes = s.kv_bytes;
    st.kv_bytes_per_pe = s.kv_per_pe;
    uint32_t x = 0;
    for (size_t i = 0; i < s.tensors.size(); ++i) {
      TensorPlacement t;
      t.name = s.tensors[i].name;
      t.role = s.tensors[i].role;
      t.layer = s.tensors[i].layer;
      t.bytes = s.tensors[i].bytes;
      t.rect = {x, y, s.cols[i], s.rows};
      t.bytes_per_pe = CeilDiv(t.bytes, t.rect.pes());
      x += s.cols[i];
      st.weight_bytes += t.bytes;
      st.tensors.push_back(std::move(t));
    }
    b.rows_used += s.rows;
    b.pes_used += st.band.pes();
    b.weight_bytes += st.weight_bytes;
    b.kv_bytes += st.kv_bytes;
    switch (s.kind) {
      case StageKind::kEmbedding: b.stage.has_embedding = true; break;
      case StageKind::kHead: b.stage.has_head = true; break;
      case StageKind::kLayer:
        if (b.stage.layer_count == 0) b.stage.first_layer = s.layer;
        ++b.stage.layer_count;
        break;
    }
    plan.weight_bytes += st.weight_bytes;
    plan.kv_bytes += st.kv_bytes;
    plan.stages.push_back(std::move(st));
  }
  return plan;
}

std::string PlanSummary(const Plan& plan) {
  const PlanRequest& r = plan.request;
  std::string out;
  char line[512];
  std::snprintf(line, sizeof line,
                "placement: %u layers on %zu board(s) (%u given), region %ux%u PEs x %u B SRAM "
                "(%s per board)\n",
                r.arch.num_layers, plan.boards.size(), r.boards, plan.region_width,
                plan.region_height, r.board.sram_per_pe,
                Gb(uint64_t{plan.region_width} * plan.region_height * r.board.sram_per_pe).c_str());
  out += line;
  std::snprintf(line, sizeof line,
                "  weights %s at %u-bit; KV reserved %s (%u slots x %u tokens)\n",
                Gb(plan.weight_bytes).c_str(), r.dtype_bytes * 8, Gb(plan.kv_bytes).c_str(),
                r.slots, r.context);
  out += line;
  for (const StagePlacement& s : plan.stages) {
    if (s.kind != StageKind::kLayer) continue;
    std::snprintf(line, sizeof line,
                  "  each layer: band of %u rows (%llu PEs), weights %s, KV %s (%llu B/PE)\n",
                  s.band.h, static_cast<unsigned long long>(s.band.pes()),
                  Gb(s.weight_bytes).c_str(), Gb(s.kv_bytes).c_str(),
                  static_cast<unsigned long long>(s.kv_bytes_per_pe));
    out += line;
    break;
  }
  for (const BoardPlan& b : plan.boards) {
    std::string what;
    if (b.stage.has_embedding) what += "embedding";
    if (b.stage.layer_count > 0) {
      what += what.empty() ? "" : " + ";
      what += "layers " + std::to_string(b.stage.first_layer) + "-" +
              std::to_string(b.stage.first_layer + b.stage.layer_count - 1);
    }
    if (b.stage.has_head) what += what.empty() ? "head" : " + head";
    std::snprintf(line, sizeof line,
                  "  board %u: %-34s rows %4u/%u  PEs %llu (%.1f%%)  weights %s  KV %s  free %s\n",
                  b.index, what.c_str(), b.rows_used, plan.region_height,
                  static_cast<unsigned long long>(b.pes_used),
                  100.0 * double(b.pes_used) / double(b.pes_total), Gb(b.weight_bytes).c_str(),
                  Gb(b.kv_bytes).c_str(), Gb(b.free_bytes()).c_str());
    out += line;
  }
  return out;
}

std::string PlanJson(const Plan& plan, bool include_tensors) {
  using Json = nlohmann::ordered_json;
  auto rect = [](const Rect& r) { return Json{{"x", r.x}, {"y", r.y}, {"w", r.w}, {"h", r.h}}; };
  Json j;
  j["region"] = {{"width", plan.region_width}, {"height", plan.region_height},
                 {"sram_per_pe", plan.request.board.sram_per_pe}};
  j["boards_given"] = plan.request.boards;
  j["boards_needed"] = plan.boards_needed;
  j["slots"] = plan.request.slots;
  j["context"] = plan.request.context;
  j["dtype_bytes"] = plan.request.dtype_bytes;
  j["weight_bytes"] = plan.weight_bytes;
  j["kv_bytes"] = plan.kv_bytes;
  Json boards = Json::array();
  for (const BoardPlan& b : plan.boards) {
    Json jb{{"index", b.index},
            {"has_embedding", b.stage.has_embedding},
            {"has_head", b.stage.has_head},
            {"first_layer", b.stage.first_layer},
            {"layer_count", b.stage.layer_count},
            {"rows_used", b.rows_used},
            {"pes_used", b.pes_used},
            {"pes_total", b.pes_total},
            {"weight_bytes", b.weight_bytes},
            {"kv_bytes", b.kv_bytes},
            {"free_bytes", b.free_bytes()}};
    boards.push_back(std::move(jb));
  }
  j["boards"] = std::move(boards);
  Json stages = Json::array();
  for (const StagePlacement& s : plan.stages) {
    Json js{{"kind", StageKindName(s.kind)},
            {"layer", s.layer},
            {"board", s.board},
            {"band", rect(s.band)},
            {"weight_bytes", s.weight_bytes},
            {"kv_bytes", s.kv_bytes},
            {"kv_bytes_per_pe", s.kv_bytes_per_pe}};
    if (include_tensors) {
      Json ts = Json::array();
      for (const TensorPlacement& t : s.tensors) {
        ts.push_back({{"name", t.name},
                      {"bytes", t.bytes},
                      {"rect", rect(t.rect)},
                      {"bytes_per_pe", t.bytes_per_pe}});
      }
      js["tensors"] = std::move(ts);
    }
    stages.push_back(std::move(js));
  }
  j["stages"] = std::move(stages);
  return j.dump(2);
}

HostStatus ApplyPlan(const Plan& plan, uint32_t board, ModelManifest* manifest) {
  manifest->kv_regions.clear();
  for (TensorDesc& t : manifest->tensors) t.placement = {};
  for (const StagePlacement& stage : plan.stages) {
    if (stage.board != board) continue;
    if (stage.kind == StageKind::kLayer) {
      manifest->kv_regions.push_back(KvRegion{stage.layer, stage.band, stage.kv_bytes_per_pe});
    }
    for (const TensorPlacement& p : stage.tensors) {
      for (TensorDesc& t : manifest->tensors) {
        if (t.role == p.role && t.layer == p.layer) t.placement = p.rect;
      }
    }
  }
  for (const TensorDesc& t : manifest->tensors) {
    if (t.placement.pes() == 0) {
      return Fail(InvalidArgument(), "the placement plan has no place for " + t.name);
    }
  }
  return HostOk();
}

}  // namespace wafer::host

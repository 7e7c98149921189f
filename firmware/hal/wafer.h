// The firmware's view of the wafer: a narrow interface the simulator (board_sim/SimWafer), a
// scripted test fake and a future real driver implement. Everything crossing it is a plain struct
// with spans; nothing here allocates.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/device_time.h"
#include "common/model_arch.h"
#include "common/model_stage.h"
#include "common/sampling.h"
#include "common/status.h"
#include "common/tensor_types.h"

namespace wafer::fw::hal {

inline constexpr size_t kMaxTensorRank = 4;
inline constexpr size_t kMaxRegions = 128;
// Most physical PE rows a wafer may have (the firmware's harvest tables are this long).
inline constexpr uint32_t kMaxFabricRows = 2048;
// A row_map entry for a physical row left out of the usable rectangle.
inline constexpr uint32_t kRowDropped = 0xFFFFFFFFu;

// Same values as board.fbs FaultKind.
enum class FaultKind : uint8_t {
  kNone, kPeStop, kEccCorrectable, kEccUncorrectable, kLinkCrc, kThermalRunaway, kPowerCap,
  kFirmwareHang, kProcessCrash, kSramStuckBit, kFabricLink,
};

// One fault to inject (simulated boards; a real board refuses with UNIMPLEMENTED).
struct FaultSpec {
  FaultKind kind = FaultKind::kNone;
  uint32_t region = 0;
  uint32_t row = 0;  // Usable-rectangle coordinates.
  uint32_t pe = 0;
  double value = 0;
};

// Physical layout: `rows` x `cols` PEs, of which `spare_cols` per row are spares.
struct PhysicalGeometry {
  uint32_t rows = 0;
  uint32_t cols = 0;
  uint32_t spare_cols = 0;
};

// Something the wafer's hardware monitors saw since the last PollEvents.
enum class HwEventKind : uint8_t { kPeStopped, kEccCorrectable, kEccUncorrectable };
struct HwEvent {
  HwEventKind kind = HwEventKind::kPeStopped;
  uint32_t row = 0;  // Usable-rectangle coordinates.
  uint32_t col = 0;
  uint64_t count = 1;
};

// A failing unit a built-in self-test found (usable-rectangle coordinates).
struct DiagHit {
  uint32_t row = 0;
  uint32_t col = 0;
  uint64_t detail = 0;  // Test-specific (see each test).
  uint32_t region = 0;  // Die region of the PE (the firmware does not know the die layout).
  // The failure is explained by a PE already out of service (failed earlier without a spare to
  // take its place): the PE itself, or for a link the PE at its far end. Nothing new to retire.
  bool failed_before = false;
};

// What a built-in self-test covered.
struct DiagRun {
  uint32_t rows = 0;       // Rows tested after clipping.
  uint64_t units = 0;      // PEs or links tested.
  uint64_t failures = 0;   // Failing units (may exceed the hits written).
  size_t hit_count = 0;    // Entries of the caller's `hits` written.
  int64_t device_ns = 0;   // Modeled time the test took on the wafer.
};

// The known-answer kernel's result on one healthy PE: the dot product of the fixed 16-bit
// patterns a[i] = i + 1 and b[i] = 2 * i + 1 over 64 lanes (what every PE computes).
constexpr uint64_t KnownAnswerPerPe() {
  uint64_t sum = 0;
  for (uint64_t i = 0; i < 64; ++i) sum += (i + 1) * (2 * i + 1);
  return sum;
}

// What lived on one PE: a model's tensors (indices into its manifest) and its KV cache.
struct PeContents {
  uint32_t model_id = 0;
  bool has_model = false;
  bool kv_cache = false;
  uint32_t tensor_count = 0;  // Total; may exceed what fit in the caller's span.
};

// A rectangle of PEs in usable-rectangle coordinates.
struct PeRect {
  uint32_t x = 0;  // Column of the top-left PE.
  uint32_t y = 0;  // Row of the top-left PE.
  uint32_t w = 0;
  uint32_t h = 0;
  uint64_t pes() const { return uint64_t{w} * h; }
};

struct TensorSpec {
  std::span<const char> name;  // Not NUL-terminated.
  TensorRole role = TensorRole::kEmbedding;
  uint32_t layer = 0;
  DType dtype = DType::kF32;
  std::array<uint64_t, kMaxTensorRank> shape{};
  uint32_t rank = 0;
  uint64_t byte_size = 0;
  // Where the host placed it: the tensor is spread evenly over these PEs, each holding
  // ceil(byte_size / placement.pes()) bytes.
  PeRect placement;
};

// KV-cache space for one decoder layer: `bytes_per_pe` on every PE of `rect`.
struct KvRegion {
  uint32_t layer = 0;
  PeRect rect;
  uint64_t bytes_per_pe = 0;
};

// Where a stage hands its hidden states on (board.fbs NextStage): the firmware's business; the
// wafer ignores it.
struct NextStage {
  std::span<const char> endpoint;  // Empty: no next stage on another board.
  uint32_t stages = 0;
  uint32_t timeout_ms = 0;
};

// What BeginModel describes. The spans are valid only during the call that receives them.
struct ModelManifest {
  uint32_t model_id = 0;
  std::span<const char> name;
  ModelArch arch;
  std::span<const TensorSpec> tensors;
  // Every decoder layer's KV cache; together at least KvCacheBytes for the layer.
  std::span<const KvRegion> kv_regions;
  uint32_t slots = 0;
  uint32_t context_length = 0;
  bool shape_only = false;
  // Tensors and KV regions are exactly those of the stage (layer indices stay global).
  ModelStage stage;
  NextStage next_stage;
};

struct SeqStepView {
  uint32_t slot = 0;
  bool reset = false;
  std::span<const uint32_t> input_tokens;
  uint32_t generate = 0;
  Sampling sampling;  // Greedy defaults when the host sent none.
  // Samples already drawn before the slot's reset (board.fbs SeqSampling.sampled_before): a
  // recomputed sequence resumes its sampler.
  uint32_t sampled_before = 0;
  std::span<const uint32_t> stop_tokens;
  // A functional model's stage without the embedding: the previous stage's hidden states,
  // input_tokens.size() * hidden_size values in token order. Empty otherwise.
  std::span<const float> hidden_in;
};

struct StepRequest {
  uint32_t model_id = 0;
  std::span<const SeqStepView> seqs;
  // The inputs came over the inter-wafer link, not from the host (board.fbs Step.from_stage):
  // no host I/O is charged; a stage with the head is charged the hop its tokens take back.
  bool from_stage = false;
};

// One sequence's result. The firmware provides `token_buffer` (room for `generate` tokens);
// the wafer fills the first `token_count` entries. On a functional model's stage without the
// head the firmware also provides `hidden_buffer` (input_tokens.size() * hidden_size values;
// empty otherwise), and the wafer writes the stage's last-layer output for every input token to
// its first `hidden_count` entries (all of them, or none when the sequence failed).
struct SeqOutcome {
  uint32_t slot = 0;
  std::span<uint32_t> token_buffer;
  uint32_t token_count = 0;
  StatusCode code = StatusCode::kOk;  // RESOURCE_EXHAUSTED when the context filled up.
  uint32_t context_tokens = 0;
  std::span<float> hidden_buffer;
  uint32_t hidden_count = 0;
};

// Identity and geometry. `preset` points to storage owned by the wafer (NUL-terminated).
struct WaferInfo {
  const char* board_id = "";
  const char* preset = "";
  uint64_t physical_pes = 0;
  uint32_t fabric_width = 0;
  uint32_t fabric_height = 0;
  uint32_t sram_per_pe = 0;
  double clock_hz = 0;
  uint32_t max_slots = 0;
  float warn_c = 85;       // Throttle threshold.
  float critical_c = 105;  // Trip threshold.
};

struct SensorReadout {
  std::array<float, kMaxRegions> region_temp_c{};
  uint32_t region_count = 0;
  float power_w = 0;
  double clock_hz = 0;
  float coolant_in_c = 0;
  float coolant_out_c = 0;
  uint64_t sram_used_bytes = 0;
  uint64_t sram_total_bytes = 0;
  uint64_t ecc_correctable = 0;
  uint64_t ecc_uncorrectable = 0;
  std::array<double, kMaxRegions> region_clock_hz{};  // 0: stopped.
  float core_power_w = 0;
  float sram_power_w = 0;
  float io_power_w = 0;
  float coolant_flow_kg_s = 0;
  float power_cap_w = 0;  // 0: none.
  bool throttled = false;
};

// Not thread-safe; driven only by the firmware's superloop.
class Wafer {
 public:
  virtual ~Wafer() = default;

  virtual WaferInfo Info() const = 0;

  // Runs the power-on self-test. OK, or INTERNAL when the wafer failed it.
  virtual Status SelfTest() = 0;

  // Reserves SRAM for a model's weights and KV cache on the PEs the manifest names: every
  // tensor's placement and every KV region, per PE, on top of what other models hold there.
  // All or nothing.
  // Returns:
  //   OK                 - reserved; WriteTensor may follow.
  //   RESOURCE_EXHAUSTED - some PE would hold more than its SRAM, or too many slots.
  //   INVALID_ARGUMENT   - the manifest is inconsistent (sizes, arch, a placement outside the
  //                        usable rectangle or empty, a layer without enough KV space, a stage
  //                        that is not part of the model, a tensor or KV region outside it).
  //   ALREADY_EXISTS     - the id is taken.
  virtual Status BeginModel(const ModelManifest& manifest) = 0;

  // Writes bytes of one tensor: of a model being staged, or of a committed model repairing a
  // tensor a PE fault lost (the firmware allows only the tensors its fault reports listed). The
  // firmware has already checked CRC and bounds.
  // Returns OK, NOT_FOUND (no such model) or OUT_OF_RANGE.
  virtual Status WriteTensor(uint32_t model_id, uint32_t tensor_index, uint64_t offset,
                             std::span<const std::byte> data) = 0;

  // Makes a fully written model steppable; on a committed model, installs the tensors rewritten
  // since a PE fault. OK, NOT_FOUND, INVALID_ARGUMENT (weights rejected).
  virtual Status CommitModel(uint32_t model_id) = 0;

  // Frees a model's SRAM (staging or committed). OK or NOT_FOUND.
  virtual Status UnloadModel(uint32_t model_id) = 0;

  // Runs one step. `outcomes` has one entry per request seq, with token (and hidden) buffers
  // set as SeqOutcome describes.
  // Returns OK (per-sequence failures are in `outcomes`), NOT_FOUND (model) or
  // INVALID_ARGUMENT (a slot out of range or listed twice, or a seq breaking its stage's rules:
  // see ModelStage and SeqStepView::hidden_in; the firmware checks those first).
  virtual Status RunStep(const StepRequest& request, std::span<SeqOutcome> outcomes,
                         DeviceTime& time) = 0;

  virtual void ReadSensors(SensorReadout& out) = 0;

  // Power cycle: every model and all SRAM contents are lost, the harvest is forgotten (the
  // fabric is back to its nominal rectangle) and the clocks run again after a Halt.
  virtual void PowerCycle() = 0;

  // --- Geometry and health. ---

  virtual PhysicalGeometry Geometry() const = 0;

  // Number of defective PEs the fuses record for physical row `row` (< Geometry().rows).
  virtual uint32_t ReadRowFuses(uint32_t row) const = 0;

  // Programs the row shifters: `row_map[physical row]` is its row in the usable rectangle, or
  // kRowDropped. In each kept row the shifters skip the defective PEs, so the row's healthy PEs
  // form a contiguous row of cols - spare_cols. SRAM capacity becomes exactly the usable PEs.
  // Returns:
  //   OK               - programmed.
  //   INVALID_ARGUMENT - wrong length, a kept row has more defects than spares, or the kept rows
  //                      are not numbered 0, 1, 2, ... in order.
  virtual Status ProgramHarvest(std::span<const uint32_t> row_map) = 0;

  // Moves usable PE (row, col) onto a spare of its physical row; its SRAM contents are lost.
  // Returns OK, RESOURCE_EXHAUSTED (the row has no spare left) or OUT_OF_RANGE.
  virtual Status RemapPe(uint32_t row, uint32_t col) = 0;

  // What lived on usable PE (row, col): fills `tensors` with tensor indices (as many as fit).
  virtual PeContents ContentsOfPe(uint32_t row, uint32_t col,
                                  std::span<uint32_t> tensors) const = 0;

  // Drains the hardware monitors' events into `out`; returns how many were written. Events
  // beyond out.size() stay queued.
  virtual size_t PollEvents(std::span<HwEvent> out) = 0;

  // Stops every clock (a thermal trip). Steps fail with UNAVAILABLE until PowerCycle.
  virtual void Halt() = 0;

  // Injects a hardware fault (simulated boards). OK, INVALID_ARGUMENT (bad coordinates or
  // value) or UNIMPLEMENTED (a real board, or a kind this board cannot simulate).
  virtual Status InjectFault(const FaultSpec& fault) = 0;

  // Consumes one pending host-link CRC failure: true when the frame just received must be
  // treated as corrupted. A real link checks its CRC in hardware and never asks.
  virtual bool TakeLinkCrcError() = 0;

  // ---- Built-in self-tests (diagnostics). The caller runs them only on a harvested fabric with
  // no Step in flight. Each fills `hits` with the first failing units (as many as fit) and
  // `run` with what it tested; rows beyond the usable rectangle are clipped.

  // March C- over the SRAM of each PE in usable rows [first_row, first_row + row_count), ECC
  // bypassed. `unused_only`: only PEs holding no model bytes (destructive: their contents are
  // unused); otherwise every PE, transparently (contents saved and restored). A hit's `detail`
  // is the failing word's byte address. OUT_OF_RANGE when first_row is past the last row.
  virtual Status TestSram(uint32_t first_row, uint32_t row_count, bool unused_only,
                          std::span<DiagHit> hits, DiagRun& run) = 0;

  // Sends test patterns over each PE's east link and south link (none past the rectangle's
  // last column or row) in the rows and checks what arrives. A hit names the PE the link leaves
  // and `detail` 0 (east) or 1 (south). OUT_OF_RANGE when first_row is past the last row.
  virtual Status TestFabricLinks(uint32_t first_row, uint32_t row_count,
                                 std::span<DiagHit> hits, DiagRun& run) = 0;

  // Runs the known-answer kernel on every usable PE of die region `region`: each computes
  // KnownAnswerPerPe() and the region's fabric sums the results. `answer` is the sum read back,
  // `pes` the PEs that took part (the firmware expects pes * KnownAnswerPerPe()). UNAVAILABLE
  // when the region's clock is stopped; OUT_OF_RANGE for a region the board does not have.
  virtual Status RunKnownAnswer(uint32_t region, uint64_t& answer, uint64_t& pes,
                                int64_t& device_ns) = 0;

  // Takes usable PE (row, col) out of service after a diagnostic found it failing: it is marked
  // failed in the defect map (it stays failed across power cycles) and its SRAM contents are
  // lost; RemapPe then moves it onto a spare. OUT_OF_RANGE outside the rectangle.
  virtual Status RetirePe(uint32_t row, uint32_t col) = 0;
};

}  // namespace wafer::fw::hal

// Test helper: runs one step of a SimWafer with storage for the firmware-provided token and
// hidden-state buffers.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "board_sim/sim_wafer.h"

namespace wafer::sim::testing {

// A step of one or more sequences, with storage for the firmware-provided token buffers (and
// hidden buffers of `hidden_width` values per input token, for a stage without the head).
struct StepRig {
  std::vector<fw::hal::SeqStepView> seqs;
  std::vector<fw::hal::SeqOutcome> outcomes;
  std::vector<std::vector<uint32_t>> buffers;
  std::vector<std::vector<float>> hidden;
  uint32_t hidden_width = 0;
  DeviceTime time;

  Status Run(SimWafer& wafer, uint32_t model_id) {
    outcomes.assign(seqs.size(), {});
    buffers.assign(seqs.size(), {});
    hidden.assign(seqs.size(), {});
    for (size_t i = 0; i < seqs.size(); ++i) {
      buffers[i].resize(seqs[i].generate);
      hidden[i].resize(seqs[i].input_tokens.size() * hidden_width);
      outcomes[i].slot = seqs[i].slot;
      outcomes[i].token_buffer = buffers[i];
      outcomes[i].hidden_buffer = hidden[i];
    }
    return wafer.RunStep(fw::hal::StepRequest{model_id, seqs}, outcomes, time);
  }
  std::vector<uint32_t> Tokens(size_t i) const {
    return {buffers[i].begin(), buffers[i].begin() + outcomes[i].token_count};
  }
  std::span<const float> Hidden(size_t i) const {
    return std::span<const float>(hidden[i]).first(outcomes[i].hidden_count);
  }
};

}  // namespace wafer::sim::testing

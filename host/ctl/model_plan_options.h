// What `waferctl model plan` is asked (the parser, ctl_cli.h, fills it; model_plan.h runs it).
#pragma once

#include <cstdint>
#include <string>

namespace wafer::host {

// `waferctl model plan`'s options (model_plan.h runs it).
struct ModelPlanOptions {
  std::string config;
  std::string preset;
  uint32_t boards = 1;
  uint32_t slots = 1;
  uint32_t context = 0;        // 0: min(8192, the model's max_position).
  uint32_t prompt_tokens = 0;  // 0: min(1024, context).
  uint32_t fabric_width = 0;   // --fabric WxH; 0: the whole preset.
  uint32_t fabric_height = 0;
  // Tokens a Step produces per sequence, as waferd's scheduler.decode_tokens_per_step; 0: its
  // default (DaemonConfig).
  uint32_t tokens_per_step = 0;
  bool pack = false;
  bool json = false;
};

}  // namespace wafer::host

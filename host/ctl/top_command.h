// `waferctl top`: a live view of the daemon refreshed every second (TopView), drawn on the
// terminal's alternate screen and quit with q, like nvtop. When the daemon stops answering the
// last figures stay under a "reconnecting" banner and top keeps asking, so it survives a daemon
// restart. Without a terminal (or with --json) it prints one screen (one JSON line) per refresh.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "host/client/wafer_client.h"

namespace wafer::host {

struct TopOptions {
  std::string admin_endpoint;
  ClientKeys keys;
  int timeout_ms = 5000;    // The longest wait for one answer (capped at the interval, >= 1 s).
  int interval_ms = 1000;   // Between refreshes.
  uint32_t count = 0;       // Refreshes before it stops by itself; 0: until q.
  bool json = false;        // One JSON line per refresh.
  bool interactive = false;  // stdin and stdout are a terminal: alternate screen, keys.
};

// Runs until q (interactive), `count` refreshes, or SIGINT/SIGTERM; leaves the terminal as it
// found it. Returns kExitOk, or kExitUnreachable when the last refresh got no answer (only
// when it stops by `count`), kExitUsage for a bad endpoint.
int RunTop(const TopOptions& options, std::ostream& out, std::ostream& err);

}  // namespace wafer::host

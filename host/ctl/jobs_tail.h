// `waferctl jobs tail ID [--from CHUNK] [--json]`: follows a job's tokens as it generates them
// (admin TailJob), from its first chunk or a later one, until it ends; the job's own client
// keeps its stream.
#pragma once

#include <cstdint>
#include <ostream>

#include "host/client/wafer_client.h"

namespace wafer::host {

// Prints each chunk's text to `out` as it arrives (its token ids when the job streams no text),
// then a summary line on `err` ("[job 7: length, 64 tokens]"); with `as_json`, one JSON line per
// chunk ({"event":"chunk",...}) and a last {"event":"finished",...}. A note on `err` says when
// the job waits in its queue. `timeout_ms` bounds the silence between two messages (the daemon
// sends a sign of life every second).
// Returns kExitOk once the job ended; kExitFailed when the daemon refused (an unknown job, too
// many tails); kExitUnreachable, kExitProtocol as every command.
int RunJobsTail(uint64_t job_id, uint64_t from_seq, bool as_json, AdminClient& admin,
                int timeout_ms, std::ostream& out, std::ostream& err);

}  // namespace wafer::host

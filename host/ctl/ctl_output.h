// What waferctl's commands share in how they answer: JSON text, a request that got no answer of
// its kind (refused, nobody answering, undecodable), and an admin operation's result.
#pragma once

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "host/wire/messages.h"

namespace wafer::host {

// printf into a string, for aligned text (at most 511 bytes; longer output is cut).
[[gnu::format(printf, 1, 2)]] std::string Fmt(const char* format, ...);

// `j` as one line; invalid UTF-8 (a model's partial characters) is replaced, never thrown on.
std::string DumpJson(const nlohmann::json& j);

// Prints why a request to the daemon got no answer of its kind (`error`, the client call's) and
// returns the exit code:
//   kExitFailed       - the daemon refused (FAILED_PRECONDITION: the message is "CODE: detail");
//                       with --json {"ok":false,"code":...,"detail":...}.
//   kExitUnreachable  - nothing answered (DEADLINE_EXCEEDED) or the socket failed: one line
//                       naming the endpoint and how long it waited (the client's message, "no
//                       waferd answering at tcp://...: nothing answered within 5.0 s ..."),
//                       without the status code's name; with --json
//                       {"ok":false,"error":"DEADLINE_EXCEEDED","detail":...}.
//   kExitProtocol     - an undecodable reply (DATA_LOSS).
int RequestFailed(const Error& error, bool as_json, std::ostream& out, std::ostream& err);

// Prints an admin operation's OperationResult (its detail and time on `out`, or the refusal on
// `err`; with --json {"ok","code","detail","elapsed_s"}), or, when `s` is not OK, what
// RequestFailed prints for its Error. Returns kExitOk, kExitFailed or RequestFailed's code.
int ReportOperation(const HostStatus& s, const OperationResult& result, bool as_json,
                    std::ostream& out, std::ostream& err);

}  // namespace wafer::host

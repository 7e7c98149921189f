// waferctl's exit codes: stable, for scripts (the usage text lists them too).
#pragma once

namespace wafer::host {

inline constexpr int kExitOk = 0;
// The daemon refused or the operation failed (rejection, load error, unknown model or job).
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
// The daemon did not answer (not running, wrong endpoint, timeout).
inline constexpr int kExitUnreachable = 3;
// An undecodable reply.
inline constexpr int kExitProtocol = 4;
// `waferctl health`: the worst board shown WARNs, or FAILs (0 when every board passes).
inline constexpr int kExitHealthWarn = 5;
inline constexpr int kExitHealthFail = 6;

}  // namespace wafer::host

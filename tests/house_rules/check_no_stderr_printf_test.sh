#!/usr/bin/env bash
# Shows that scripts/check-no-stderr-printf can fail: on a scratch tree it must flag a site in an
# ordinary file and in a file that only mentions "int main(" (not named *_main.cc), must pass a
# real main() file's usage fprintf, and must pass once the bad sites are gone.
# usage: check_no_stderr_printf_test.sh PATH_TO_CHECK_SCRIPT
set -uo pipefail
check="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/host/boards" "$tmp/host/models" "$tmp/board_sim" "$tmp/telemetry"
printf '#include <cstdio>\nvoid Lost() {\n  std::fprintf(stderr, "board lost\\n");\n}\n' \
  > "$tmp/host/boards/board_worker.cc"
printf 'const char* kSample = R"(\nint main(int argc, char** argv) {}\n)";\nvoid F() { fprintf( stderr, "x"); }\n' \
  > "$tmp/host/models/sample.cc"
printf '#include <cstdio>\nint main(int argc, char** argv) {\n  std::fprintf(stderr, "usage: tool\\n");\n}\n' \
  > "$tmp/board_sim/tool_main.cc"

out="$("$check" "$tmp")"; rc=$?
echo "$out"
[ "$rc" -eq 1 ] || fail "exit $rc with two sites, want 1"
grep -q 'host/boards/board_worker.cc:3:' <<<"$out" || fail "the site in board_worker.cc is not named"
grep -q 'host/models/sample.cc:4:' <<<"$out" || fail "the site in sample.cc is not named"
grep -q 'tool_main.cc' <<<"$out" && fail "the main() file's usage line was flagged"

rm "$tmp/host/boards/board_worker.cc" "$tmp/host/models/sample.cc"
out="$("$check" "$tmp")"; rc=$?
echo "$out"
[ "$rc" -eq 0 ] || fail "exit $rc on a clean tree, want 0"

out="$("$check" "$tmp/host")"; rc=$?
[ "$rc" -eq 2 ] || fail "exit $rc on a tree without the folders, want 2"
echo "PASS"

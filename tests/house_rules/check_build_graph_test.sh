#!/usr/bin/env bash
# Shows that scripts/check-build-graph can fail: a scratch Ninja build where one source is
# compiled into two targets and a wafer_model source includes a host/ header must fail naming
# both, and must pass once both are gone.
# usage: check_build_graph_test.sh PATH_TO_CHECK_SCRIPT
set -uo pipefail
check="$1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

src="$tmp/src"
build="$src/build"
mkdir -p "$src/wafer_model" "$src/common" "$src/host" "$build"
printf '#define X 1\n' > "$src/host/x.h"
printf '#define C 1\n' > "$src/common/c.h"
printf '#include "host/x.h"\nint A() { return X; }\n' > "$src/wafer_model/a.cc"
printf 'int B() { return 2; }\n' > "$src/common/b.cc"
write_ninja() {  # $1: "twice" to compile common/b.cc into two targets.
  {
    for t in wafer_model x y; do
      printf 'rule CXX_COMPILER__%s_Release\n' "$t"
      printf '  command = g++ -I%s -MD -MF $out.d -c $in -o $out\n' "$src"
      printf '  depfile = $out.d\n  deps = gcc\n'
    done
    printf 'build wafer_model/CMakeFiles/wafer_model.dir/a.cc.o: CXX_COMPILER__wafer_model_Release %s\n' \
      "$src/wafer_model/a.cc"
    printf 'build common/CMakeFiles/x.dir/b.cc.o: CXX_COMPILER__x_Release %s\n' "$src/common/b.cc"
    if [ "$1" = twice ]; then
      printf 'build common/CMakeFiles/y.dir/b.cc.o: CXX_COMPILER__y_Release %s\n' "$src/common/b.cc"
    fi
  } > "$build/build.ninja"
  ninja -C "$build" >/dev/null || fail "the scratch build failed"
}

write_ninja twice
out="$("$check" "$build" "$src")"; rc=$?
echo "$out"
[ "$rc" -eq 1 ] || fail "exit $rc with a source in two targets and a host/ include, want 1"
grep -q 'common/b.cc is compiled into 2 targets: x, y' <<<"$out" || fail "common/b.cc not named"
grep -q 'wafer_model reaches host/x.h' <<<"$out" || fail "the host/ include is not named"

printf '#include "common/c.h"\nint A() { return C; }\n' > "$src/wafer_model/a.cc"
write_ninja once
out="$("$check" "$build" "$src")"; rc=$?
echo "$out"
[ "$rc" -eq 0 ] || fail "exit $rc on a clean graph, want 0"
echo "PASS"

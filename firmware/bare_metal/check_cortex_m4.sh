#!/usr/bin/env bash
# Builds the firmware for the board controller, a bare-metal Cortex-M4 (arm-none-eabi, newlib
# nano), to prove it needs no host OS, no heap, no exceptions and no RTTI. Two checks:
#
#  1. The firmware core (firmware/*.cc) as an archive: fails if it references heap allocation,
#     exceptions or RTTI, or any symbol outside a short list of freestanding C library and
#     compiler runtime helpers.
#  2. The whole firmware image: the core, the link layer (firmware/link: the board.fbs codec,
#     the superloop, the stage pipeline), the HAL port for the board controller, its startup
#     code and main(), linked with board_controller.ld into a complete ELF. The only allocation
#     functions it may contain are the trapping ones of heap_trap.cc (FlatBuffers' headers and
#     virtual destructors reference operator new[]/delete; nothing calls them): the check fails
#     if anything else defines one, if the image contains exception or RTTI support, or if it
#     pulls from the C library anything but mem*/str* functions (no malloc, no stdio, no
#     syscalls).
#
# Prints the sizes of both. Run by ctest (firmware_bare_metal_cortex_m4).
#
#   check_cortex_m4.sh SOURCE_DIR OUT_DIR GEN_DIR   (GEN_DIR: the generated schema headers)
set -euo pipefail

usage="usage: check_cortex_m4.sh SOURCE_DIR OUT_DIR GEN_DIR"
src=${1:?$usage}
out=${2:?$usage}
gen=${3:?$usage}

for tool in arm-none-eabi-g++ arm-none-eabi-gcc arm-none-eabi-ar arm-none-eabi-nm \
            arm-none-eabi-size arm-none-eabi-c++filt; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check_cortex_m4: FAILED: $tool not found; run scripts/install-deps" \
         "(it installs gcc-arm-none-eabi and libnewlib-arm-none-eabi)" >&2
    exit 1
  fi
done
if [ ! -f "$gen/schemas/board_generated.h" ]; then
  echo "check_cortex_m4: FAILED: $gen/schemas/board_generated.h missing; build first" >&2
  exit 1
fi

# The core and the two common files it uses. Not common/clock.cc (SystemClock reads
# clock_gettime; the firmware only sees the abstract Clock).
core_sources=(
  firmware/boot_state_machine.cc
  firmware/command_processor.cc
  firmware/command_processor_diag.cc
  firmware/error_log.cc
  firmware/firmware_slots.cc
  common/status.cc
  common/crc32c.cc
)
# What the image adds: the link layer, the HAL port, startup, main and the trapping heap.
image_sources=(
  firmware/link/arena_allocator.cc
  firmware/link/frame_codec.cc
  firmware/link/firmware_loop.cc
  firmware/link/stage_pipeline.cc
  firmware/bare_metal/frame_channel.cc
  firmware/bare_metal/board_clock.cc
  firmware/bare_metal/board_firmware_flash.cc
  firmware/bare_metal/board_host_port.cc
  firmware/bare_metal/board_signature_verifier.cc
  firmware/bare_metal/board_stage_link.cc
  firmware/bare_metal/board_wafer.cc
  firmware/bare_metal/startup.cc
  firmware/bare_metal/main.cc
  firmware/bare_metal/heap_trap.cc
)

rm -rf "$out"
mkdir -p "$out/obj" "$out/include"
# FlatBuffers is header-only: give the cross compiler its headers, and no other host header.
ln -s /usr/include/flatbuffers "$out/include/flatbuffers"

cpu=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
flags=(-std=c++20 "${cpu[@]}" -Os
       -fno-exceptions -fno-rtti -fno-threadsafe-statics -ffreestanding
       -ffunction-sections -fdata-sections -fstack-usage
       --specs=nano.specs -Wall -Wextra -Werror -I"$src" -I"$gen" -isystem "$out/include"
       # GCC notes that a GCC 7.1 ABI change affects passing spans: irrelevant for one compiler.
       -Wno-psabi)

compile() {  # compile SOURCE... : prints the objects
  for f in "$@"; do
    local o="$out/obj/$(basename "${f%.cc}").o"
    arm-none-eabi-g++ "${flags[@]}" -c "$src/$f" -o "$o"
    echo "$o"
  done
}
mapfile -t core_objs < <(compile "${core_sources[@]}")
mapfile -t image_objs < <(compile "${image_sources[@]}")

status=0
fail() {  # fail MESSAGE SYMBOLS
  echo "check_cortex_m4: FAILED: $1" >&2
  echo "$2" | arm-none-eabi-c++filt | sed 's/^/  /' >&2
  status=1
}
forbidden_re='^(_Znw|_Zna|_Zdl|_Zda|malloc$|calloc$|realloc$|free$|_malloc_r$|_free_r$|_realloc_r$|_calloc_r$|_sbrk|__cxa_throw$|__cxa_allocate_exception$|__cxa_begin_catch$|__gxx_personality|_ZTI|_ZTS|__dynamic_cast$)'

# ---- 1. The core archive. ----
lib="$out/libwafer_firmware_cortex_m4.a"
arm-none-eabi-ar rcs "$lib" "${core_objs[@]}"
defined=$(arm-none-eabi-nm --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort -u)
undefined=$(arm-none-eabi-nm --undefined-only "$lib" | awk 'NF == 2 && $1 == "U" { print $2 }' |
            sort -u | comm -23 - <(echo "$defined"))
forbidden=$(echo "$undefined" | grep -E "$forbidden_re" || true)
[ -z "$forbidden" ] || fail "the firmware core references heap, exceptions or RTTI:" "$forbidden"
# Everything else must be freestanding C library or compiler runtime.
unexpected=$(echo "$undefined" |
             grep -vE '^(memcpy|memmove|memset|memcmp|strlen|__assert_func|__aeabi_[a-z0-9_]+)$' |
             grep -v '^$' || true)
[ -z "$unexpected" ] ||
  fail "the firmware core references unexpected external symbols (an OS or libstdc++?):" \
       "$unexpected"
echo "check_cortex_m4: core external symbols: $(echo $undefined)"
arm-none-eabi-size -t "$lib"

# ---- 2. The firmware image. ----
elf="$out/wafer_firmware_cortex_m4.elf"
# Every allocation function's definitions and references, as the linker resolved them.
alloc_symbols=(_Znwj _Znaj _ZnwjRKSt9nothrow_t _ZnajRKSt9nothrow_t _ZnwjSt11align_val_t
               _ZnajSt11align_val_t _ZdlPv _ZdaPv _ZdlPvj _ZdaPvj _ZdlPvSt11align_val_t
               _ZdaPvSt11align_val_t _ZdlPvjSt11align_val_t _ZdaPvjSt11align_val_t
               malloc calloc realloc free _malloc_r _calloc_r _realloc_r _free_r)
trace=()
for s in "${alloc_symbols[@]}"; do trace+=("-Wl,--trace-symbol=$s"); done
# Linked with gcc, not g++: the image needs no libstdc++ at all. No crt0 either (startup.cc).
arm-none-eabi-gcc "${cpu[@]}" --specs=nano.specs -nostartfiles -Wl,--gc-sections \
  -T "$src/firmware/bare_metal/board_controller.ld" -Wl,-Map="$out/wafer_firmware.map" \
  "${trace[@]}" "${core_objs[@]}" "${image_objs[@]}" -o "$elf" 2>"$out/link_trace.txt" || {
  cat "$out/link_trace.txt" >&2
  echo "check_cortex_m4: FAILED: the firmware image does not link" >&2
  exit 1
}
# Definitions of allocation functions from anywhere but heap_trap.o (a library's new_op.o,
# mallocr.o, ...).
foreign=$(grep ': definition of ' "$out/link_trace.txt" | grep -v 'heap_trap.o: definition of' || true)
[ -z "$foreign" ] || fail "something besides heap_trap.cc defines an allocation function:" "$foreign"
# Nothing left unresolved, nothing of exception handling, RTTI or an OS in the linked image.
unresolved=$(arm-none-eabi-nm --undefined-only "$elf" | awk '{ print $NF }' | grep -v '^$' || true)
[ -z "$unresolved" ] || fail "the image has unresolved symbols:" "$unresolved"
image_symbols=$(arm-none-eabi-nm "$elf" | awk 'NF == 3 { print $3 }' | sort -u)
alloc_in_image=$(echo "$image_symbols" | grep -E "$forbidden_re" || true)
not_trapping=$(echo "$alloc_in_image" | grep -vE '^(_Zn|_Zd|malloc$|calloc$|realloc$|free$|_malloc_r$|_free_r$|_realloc_r$|_calloc_r$)' || true)
[ -z "$not_trapping" ] || fail "the image contains exception, RTTI or OS support:" "$not_trapping"
# From the C library only memory and string functions; from libgcc only arithmetic helpers.
members=$(sed -n '/^Archive member included/,/^Discarded input sections/p' "$out/wafer_firmware.map" |
          grep -oE '[^/ ]+\.a\([^)]+\)' | sort -u)
foreign_members=$(echo "$members" | grep -vE '^(libc_nano\.a\(lib_a-(mem|str)[a-z]*\.o\)|libgcc\.a\(_[a-z0-9_]+\.o\))$' | grep -v '^$' || true)
[ -z "$foreign_members" ] ||
  fail "the image pulls library code beyond mem*/str* and arithmetic helpers:" "$foreign_members"

# No heap means buffers are static or on the stack: no single frame may take a large part of
# the 32 KiB stack (board_controller.ld), or a call chain through it could overflow.
max_frame_bytes=8192
frames=$(cat "$out"/obj/*.su | sort -t$'\t' -k2 -n -r)
big=$(echo "$frames" | awk -F'\t' -v max="$max_frame_bytes" '$2 > max')
[ -z "$big" ] || fail "stack frames above $max_frame_bytes bytes:" "$big"
echo "check_cortex_m4: largest stack frames (bytes):"
echo "$frames" | head -3 | sed -E 's/^[^:]*:[0-9]+:[0-9]+:(.*)\t([0-9]+)\t.*$/  \2  \1/' 

echo "check_cortex_m4: image library members: $(echo $members)"
echo "check_cortex_m4: allocation functions in the image (all from heap_trap.o, all trap):"
echo "${alloc_in_image:-  none}" | arm-none-eabi-c++filt | sed 's/^/  /'
echo "check_cortex_m4: who references them:"
grep ': reference to ' "$out/link_trace.txt" | sed 's|^.*/||' | sort -u | arm-none-eabi-c++filt |
  sed 's/^/  /'
arm-none-eabi-size "$elf"
arm-none-eabi-size -A "$elf" | grep -E '^(\.isr_vector|\.text|\.ARM|\.data|\.bss|\.stack|\.sdram_bss)'
if [ "$status" -eq 0 ]; then echo "check_cortex_m4: OK ($lib, $elf)"; fi
exit "$status"

#!/usr/bin/env bash
# Builds the firmware core for a bare-metal Cortex-M4 (arm-none-eabi, newlib) to prove it needs
# no host OS, archives it, fails if the archive references heap allocation, exceptions or RTTI,
# or any symbol outside a short list of freestanding C library and compiler runtime helpers,
# and prints its size. Run by ctest (firmware_bare_metal_cortex_m4).
#
#   check_cortex_m4.sh SOURCE_DIR OUT_DIR
set -euo pipefail

src=${1:?usage: check_cortex_m4.sh SOURCE_DIR OUT_DIR}
out=${2:?usage: check_cortex_m4.sh SOURCE_DIR OUT_DIR}

# The core and the two common files it uses. Not common/clock.cc (SystemClock reads
# clock_gettime; the firmware only sees the abstract Clock) and not firmware/link/ (FlatBuffers).
sources=(
  firmware/boot_state_machine.cc
  firmware/command_processor.cc
  firmware/command_processor_diag.cc
  firmware/error_log.cc
  firmware/firmware_slots.cc
  common/status.cc
  common/crc32c.cc
)

for tool in arm-none-eabi-g++ arm-none-eabi-ar arm-none-eabi-nm arm-none-eabi-size; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check_cortex_m4: $tool not found; run scripts/install-deps" >&2
    exit 1
  fi
done

flags=(-std=c++20 -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os
       -fno-exceptions -fno-rtti -ffreestanding -ffunction-sections -fdata-sections
       --specs=nano.specs -Wall -Wextra -Werror -I"$src"
       # GCC notes that a GCC 7.1 ABI change affects passing spans: irrelevant for one compiler.
       -Wno-psabi)

rm -rf "$out"
mkdir -p "$out/obj"
objs=()
for f in "${sources[@]}"; do
  o="$out/obj/$(basename "${f%.cc}").o"
  arm-none-eabi-g++ "${flags[@]}" -c "$src/$f" -o "$o"
  objs+=("$o")
done
lib="$out/libwafer_firmware_cortex_m4.a"
arm-none-eabi-ar rcs "$lib" "${objs[@]}"

# Symbols the archive needs from outside itself.
defined=$(arm-none-eabi-nm --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort -u)
undefined=$(arm-none-eabi-nm --undefined-only "$lib" | awk 'NF == 2 && $1 == "U" { print $2 }' |
            sort -u | comm -23 - <(echo "$defined"))

status=0
forbidden=$(echo "$undefined" | grep -E '^(_Znw|_Zna|_Zdl|_Zda|malloc$|calloc$|realloc$|free$|__cxa_throw$|__cxa_allocate_exception$|__gxx_personality|_ZTI|__dynamic_cast$)' || true)
if [ -n "$forbidden" ]; then
  echo "check_cortex_m4: the firmware core references heap, exceptions or RTTI:" >&2
  echo "$forbidden" | arm-none-eabi-c++filt | sed 's/^/  /' >&2
  status=1
fi
# Everything else must be freestanding C library or compiler runtime.
unexpected=$(echo "$undefined" | grep -vE '^(memcpy|memmove|memset|memcmp|strlen|__assert_func|__aeabi_[a-z0-9_]+)$' | grep -v '^$' || true)
if [ -n "$unexpected" ]; then
  echo "check_cortex_m4: unexpected external symbols (an OS or libstdc++ dependency?):" >&2
  echo "$unexpected" | arm-none-eabi-c++filt | sed 's/^/  /' >&2
  status=1
fi

echo "check_cortex_m4: external symbols: $(echo $undefined)"
arm-none-eabi-size -t "$lib"
if [ "$status" -eq 0 ]; then echo "check_cortex_m4: OK ($lib)"; fi
exit "$status"

// The board controller's startup: the vector table, the reset handler (FPU on, .data copied,
// .bss zeroed, SDRAM started and its .sdram_bss zeroed, static constructors, main) and the
// fault handlers. The symbols it uses come from board_controller.ld.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "firmware/bare_metal/board_map.h"

extern "C" {
extern uint32_t __data_load__, __data_start__, __data_end__;
extern uint32_t __bss_start__, __bss_end__;
extern uint32_t __sdram_bss_start__, __sdram_bss_end__;
extern uint32_t __stack_top__;
extern void (*__init_array_start__[])();
extern void (*__init_array_end__[])();
int main();
[[noreturn]] void Reset_Handler();
[[noreturn]] void Fault_Handler();
void Ignore_Handler();
}

namespace {

using Handler = void (*)();

// ARMv7-M: the initial stack pointer, then the system exceptions. The firmware polls its
// devices from the superloop, so no device interrupt is enabled and none has a vector.
struct VectorTable {
  void* initial_sp;
  Handler handlers[15];
};

// Words copied from [from_begin, from_end) to `to`, or zeroed: by hand, because they run before
// the C library may be assumed ready (and before .bss is zero).
void CopyWords(const uint32_t* from, uint32_t* to, const uint32_t* to_end) {
  while (to < to_end) *to++ = *from++;
}
void ZeroWords(uint32_t* to, const uint32_t* to_end) {
  while (to < to_end) *to++ = 0;
}

}  // namespace

__attribute__((section(".isr_vector"), used)) const VectorTable kVectorTable = {
    &__stack_top__,
    {
        Reset_Handler,
        Fault_Handler,   // NMI.
        Fault_Handler,   // HardFault (a __builtin_trap ends here too).
        Fault_Handler,   // MemManage.
        Fault_Handler,   // BusFault.
        Fault_Handler,   // UsageFault.
        nullptr, nullptr, nullptr, nullptr,  // Reserved.
        Ignore_Handler,  // SVCall.
        Ignore_Handler,  // DebugMonitor.
        nullptr,         // Reserved.
        Ignore_Handler,  // PendSV.
        Ignore_Handler,  // SysTick.
    },
};

extern "C" [[noreturn]] void Reset_Handler() {
  using namespace wafer::fw::board;
  // The FPU first: the firmware is built for the hard-float ABI.
  const RegisterBus scb_bus(kScbBase);
  scb_bus.Write<scb::kCpacr>(scb_bus.Read<scb::kCpacr>() | scb::kCpacrFpuFull);
  __asm__ volatile("dsb 0xF\n isb 0xF" ::: "memory");
  CopyWords(&__data_load__, &__data_start__, &__data_end__);
  ZeroWords(&__bss_start__, &__bss_end__);
  // SDRAM holds the firmware's large buffers: start its controller and wait until it refreshes.
  const RegisterBus sdram_bus(kSdramCtrlBase);
  sdram_bus.Write<sdram::kControl>(sdram::kControlEnable);
  while ((sdram_bus.Read<sdram::kStatus>() & sdram::kStatusReady) == 0) {
  }
  ZeroWords(&__sdram_bss_start__, &__sdram_bss_end__);
  for (void (**ctor)() = __init_array_start__; ctor < __init_array_end__; ++ctor) (*ctor)();
  main();
  Fault_Handler();  // main never returns; if it did, stop where a debugger can see it.
}

// A fault, a trap (an arena overflow, a failed assert, a heap call) or an NMI: stop here. The
// board's watchdog, which only the superloop feeds, then resets the controller.
extern "C" [[noreturn]] void Fault_Handler() {
  for (;;) {
    __asm__ volatile("bkpt #0");
  }
}

extern "C" void Ignore_Handler() {}

// The C library's assert calls this; newlib's version prints through stdio (and so the heap).
// A failed assertion is a programmer error: trap.
extern "C" [[noreturn]] void __assert_func(const char*, int, const char*, const char*) {
  __builtin_trap();
}

// A pure virtual call is a programmer error; libstdc++'s handler would pull in its terminate
// machinery.
extern "C" [[noreturn]] void __cxa_pure_virtual() { __builtin_trap(); }

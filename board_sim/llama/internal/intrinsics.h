// <immintrin.h> for the kernels, without GCC 12's false -Wuninitialized warnings: its AVX-512
// intrinsics pass _mm512_undefined_*() values into masked builtins, which -Wuninitialized
// reports inside the header when they are inlined; the values are unused.
#pragma once

#if defined(__x86_64__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

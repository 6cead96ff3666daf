/* CPU feature detection (CPUID + XGETBV) and the AMX permission request. */
#include "base/base.h"

#include <cpuid.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static owl_cpu cpu;
static bool cpu_done;
static bool scalar_forced;

static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static void detect(void) {
    unsigned a, b, c, d;
    memset(&cpu, 0, sizeof cpu);
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    bool osxsave = c & (1u << 27);
    bool fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
    if (!osxsave || !avx) return;
    uint64_t xcr0 = xgetbv0();
    bool ymm_ok = (xcr0 & 6) == 6;
    bool zmm_ok = (xcr0 & 0xe6) == 0xe6;
    bool amx_ok = (xcr0 & (3u << 17)) == (3u << 17);
    if (!ymm_ok) return;
    unsigned max = __get_cpuid_max(0, NULL);
    if (max < 7) return;
    __cpuid_count(7, 0, a, b, c, d);
    cpu.avx2 = b & (1u << 5);
    cpu.fma = fma;
    cpu.f16c = f16c;
    if (zmm_ok) {
        cpu.avx512f = b & (1u << 16);
        cpu.avx512bw = b & (1u << 30);
        cpu.avx512vl = b & (1u << 31);
        cpu.avx512vnni = c & (1u << 11);
        cpu.avx512fp16 = d & (1u << 23);
    }
    cpu.amx_bf16 = d & (1u << 22);
    cpu.amx_tile = d & (1u << 24);
    cpu.amx_int8 = d & (1u << 25);
    unsigned a1, b1, c1, d1;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    (void)b1; (void)c1; (void)d1;
    if (zmm_ok) cpu.avx512bf16 = a1 & (1u << 5);
    if (cpu.amx_tile && amx_ok) {
        /* Linux hands out AMX tile state only on request. */
        cpu.amx_permitted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    }
    if (!amx_ok) cpu.amx_tile = cpu.amx_int8 = cpu.amx_bf16 = false;
}

const owl_cpu *owl_cpu_get(void) {
    if (!cpu_done) {
        detect();
        /* OWL_CPU=scalar|avx2|avx512 caps the paths used (for testing and
         * comparison); avx512 turns AMX off. */
        const char *cap = getenv("OWL_CPU");
        if (cap && strcmp(cap, "scalar") == 0) scalar_forced = true;
        if (cap && strcmp(cap, "avx512") == 0) cpu.amx_tile = cpu.amx_int8 = cpu.amx_bf16 = cpu.amx_permitted = false;
        if (cap && strcmp(cap, "avx2") == 0) {
            cpu.avx512f = cpu.avx512bw = cpu.avx512vl = cpu.avx512vnni = cpu.avx512bf16 = cpu.avx512fp16 = false;
            cpu.amx_tile = cpu.amx_int8 = cpu.amx_bf16 = cpu.amx_permitted = false;
        }
        cpu_done = true;
    }
    return &cpu;
}

void owl_cpu_force_scalar(bool on) { scalar_forced = on; }
bool owl_cpu_scalar_forced(void) { return scalar_forced; }

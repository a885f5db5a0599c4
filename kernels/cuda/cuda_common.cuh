/* cuda_common.cuh: what every CUDA kernel header shares: HC_CU_HD (host+device under nvcc, nothing
 * under gcc, so the math also builds for the CPU tests), launch geometry structs, f16/bf16 <-> f32. */
#ifndef HC_CUDA_COMMON_CUH
#define HC_CUDA_COMMON_CUH

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#include <cuda_fp16.h>
#define HC_CU_HD __host__ __device__
#else
#define HC_CU_HD
#endif

/* A loop with a trip count known at compile time, unrolled on the GPU (its arrays stay in registers). */
#ifdef __CUDA_ARCH__
#define HC_CU_UNROLL _Pragma("unroll")
#else
#define HC_CU_UNROLL
#endif

/* Threads of a warp; the kernels' warp reductions assume exactly this. */
#define HC_CU_WARP 32

/* Launch geometry as the .cu file uses it: grid and block sizes (x, y, z) and dynamic shared
 * memory. The CPU tests loop over the same blocks and threads. */
typedef struct hc_cu_dim {
    unsigned x, y, z;
} hc_cu_dim;

typedef struct hc_cu_launch {
    hc_cu_dim grid, block;
    size_t shared_bytes;
} hc_cu_launch;

#ifdef __CUDACC__
static inline dim3 hc_cu_dim3(hc_cu_dim d) { return dim3(d.x, d.y, d.z); }
#endif

/* Hardware limits every launch must respect (any GPU of compute capability >= 3.0). */
#define HC_CU_MAX_GRID_X 2147483647u
#define HC_CU_MAX_GRID_YZ 65535u
#define HC_CU_MAX_BLOCK_THREADS 1024u
#define HC_CU_MAX_STATIC_SHARED 49152u

static inline HC_CU_HD hc_cu_launch hc_cu_launch_1d(unsigned grid_x, unsigned block_x, size_t shared_bytes)
{
    hc_cu_launch l;
    l.grid.x = grid_x;
    l.grid.y = 1;
    l.grid.z = 1;
    l.block.x = block_x;
    l.block.y = 1;
    l.block.z = 1;
    l.shared_bytes = shared_bytes;
    return l;
}

/* ---- little-endian byte readers (weights may sit at any byte offset inside a block) ---- */

static inline HC_CU_HD uint32_t hc_cu_rd_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }

static inline HC_CU_HD uint32_t hc_cu_rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline HC_CU_HD float hc_cu_bits_f32(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* IEEE binary16 -> f32, exact for every input (subnormals are man * 2^-24, exact in f32); on the GPU
 * the hardware's conversion, which is exact too (the same value for every input). */
static inline HC_CU_HD float hc_cu_f16_to_f32(uint32_t h)
{
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half((unsigned short)h));
#endif
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) return hc_cu_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf, NaN */
    if (exp != 0) return hc_cu_bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
    float v = (float)man * 5.9604644775390625e-8f; /* 2^-24 */
    return sign ? -v : v;
}

static inline HC_CU_HD uint32_t hc_cu_f32_bits(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

/* f32 -> IEEE binary16, rounded to nearest even (overflow to inf, NaN stays NaN); on the GPU the
 * hardware's conversion, which rounds the same way (one instruction instead of a dozen and branches). */
static inline HC_CU_HD uint16_t hc_cu_f32_to_f16(float f)
{
#ifdef __CUDA_ARCH__
    return __half_as_ushort(__float2half_rn(f));
#endif
    uint32_t x = hc_cu_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u, e = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (e == 0xffu) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0u));
    int ex = (int)e - 127 + 15;
    if (ex >= 31) return (uint16_t)(sign | 0x7c00u);
    if (ex <= 0) {
        if (ex < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - ex;
        uint32_t h = man >> shift, rest = man & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rest > half || (rest == half && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)ex << 10) | (man >> 13), rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

static inline HC_CU_HD float hc_cu_bf16_to_f32(uint32_t h) { return hc_cu_bits_f32((h & 0xffffu) << 16); }

/* The kernels run on the CPU by tests/cuda_emu: a vector load from an address a GPU would fault on
 * is reported there (HC_CUDA_EMU), the CPU being forgiving. */
#ifdef HC_CUDA_EMU
#ifdef __cplusplus
extern "C"
#endif
void hc_emu_check_aligned(const void *p, unsigned align);
#define HC_CU_CHECK_ALIGNED(p, a) hc_emu_check_aligned((p), (a))
#else
#define HC_CU_CHECK_ALIGNED(p, a) ((void)0)
#endif

/* 16 bytes at p (16-byte aligned) as four words, in one load on the GPU. */
static inline HC_CU_HD void hc_cu_ld16(const uint8_t *p, uint32_t v[4])
{
#ifdef __CUDA_ARCH__
    uint4 u = *(const uint4 *)p;
    v[0] = u.x, v[1] = u.y, v[2] = u.z, v[3] = u.w;
#else
    HC_CU_CHECK_ALIGNED(p, 16);
    memcpy(v, p, 16);
#endif
}

/* Four words to p (16-byte aligned), in one store on the GPU. */
static inline HC_CU_HD void hc_cu_st16(uint8_t *p, const uint32_t v[4])
{
#ifdef __CUDA_ARCH__
    *(uint4 *)p = make_uint4(v[0], v[1], v[2], v[3]);
#else
    HC_CU_CHECK_ALIGNED(p, 16);
    memcpy(p, v, 16);
#endif
}

/* 8 bytes at p (8-byte aligned) as two words, in one load on the GPU. */
static inline HC_CU_HD void hc_cu_ld8(const uint8_t *p, uint32_t v[2])
{
#ifdef __CUDA_ARCH__
    uint2 u = *(const uint2 *)p;
    v[0] = u.x, v[1] = u.y;
#else
    HC_CU_CHECK_ALIGNED(p, 8);
    memcpy(v, p, 8);
#endif
}

/* The little-endian word at p (4-byte aligned), in one load on the GPU. */
static inline HC_CU_HD uint32_t hc_cu_ld4(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
    return *(const uint32_t *)p;
#else
    HC_CU_CHECK_ALIGNED(p, 4);
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
#endif
}

/* The little-endian half-word at p (2-byte aligned), in one load on the GPU. */
static inline HC_CU_HD uint32_t hc_cu_ld2(const uint8_t *p)
{
#ifdef __CUDA_ARCH__
    return *(const unsigned short *)p;
#else
    HC_CU_CHECK_ALIGNED(p, 2);
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
#endif
}

/* CUDA's __byte_perm: byte n of the result is byte (s >> 4 n) & 7 of x's and y's 8 bytes, x's first.
 * The GPU's one instruction; the CPU tests and the emulator run its twin, with the same selectors. */
static inline HC_CU_HD uint32_t hc_cu_byte_perm(uint32_t x, uint32_t y, uint32_t s)
{
#ifdef __CUDA_ARCH__
    return __byte_perm(x, y, s);
#else
    uint64_t v = (uint64_t)y << 32 | x;
    uint32_t r = 0;
    for (int n = 0; n < 4; n++) r |= (uint32_t)((v >> (8 * ((s >> (4 * n)) & 7u))) & 0xffu) << (8 * n);
    return r;
#endif
}

/* Byte k of x as a signed integer: one byte permute on the GPU (PTX prmt, whose selector's bit 3
 * replicates the byte's sign), where the compiler shifts first. */
static inline HC_CU_HD int hc_cu_sbyte(uint32_t x, int k)
{
#ifdef __CUDA_ARCH__
    int r;
    asm("prmt.b32 %0, %1, 0, %2;" : "=r"(r) : "r"(x), "r"(0x8880u + 0x1111u * (uint32_t)k));
    return r;
#else
    return (int)(int8_t)(uint8_t)(x >> (8 * k));
#endif
}

/* CUDA's __dp4a: c plus the sum of the products of a's and b's 4 signed bytes. The GPU's one
 * instruction; the CPU tests and the emulator run its twin. */
static inline HC_CU_HD int hc_cu_dp4a(uint32_t a, uint32_t b, int c)
{
#ifdef __CUDA_ARCH__
    return __dp4a((int)a, (int)b, c);
#else
    for (int i = 0; i < 4; i++) c += (int)(int8_t)(uint8_t)(a >> (8 * i)) * (int)(int8_t)(uint8_t)(b >> (8 * i));
    return c;
#endif
}

/* Integer sums as floats without a conversion instruction (8x slower than an FMA on recent GPUs): a sum
 * started at HC_CU_INT_BIAS (dp4a's accumulator) holds the bits of the float 1.5 2^23 + sum while
 * |sum| < 2^22, and hc_cu_biased_f takes the 1.5 2^23 away again, exactly (an FADD). */
#define HC_CU_INT_BIAS 0x4B400000
static inline HC_CU_HD float hc_cu_biased_f(int biased) { return hc_cu_bits_f32((uint32_t)biased) - 12582912.0f; }

/* f rounded to the nearest integer, ties to even (as lrintf in the default rounding mode). */
static inline HC_CU_HD int hc_cu_rint(float f)
{
#ifdef __CUDA_ARCH__
    return __float2int_rn(f);
#else
    return (int)lrintf(f);
#endif
}

/* Byte i of m (a code c) as the float 1/2 + c 2^-8 (c below 128), or with `full` 1/2 + c 2^-16 (any
 * byte): the byte moved into the mantissa of 1/2, one byte permute on the GPU (the float's bytes, low to
 * high: 0, 0, c, 0x3f; full: 0, c, 0, 0x3f). A weight s c + o is then D f + M with D = 2^8 s and
 * M = o - 2^7 s (full: 2^16 and 2^15), which the quantized GEMVs sum as D sum(f x) + M sum(x). */
static inline HC_CU_HD float hc_cu_byte_f(uint32_t m, int i, int full)
{
    return hc_cu_bits_f32(hc_cu_byte_perm(m, 0x3f000000u, full ? 0x7604u | (uint32_t)i << 4 : 0x7054u | (uint32_t)i << 8));
}

/* Four floats at p (16-byte aligned), in one load on the GPU. */
static inline HC_CU_HD void hc_cu_ld_f4(const float *p, float v[4])
{
    uint32_t u[4];
    hc_cu_ld16((const uint8_t *)p, u);
    memcpy(v, u, 16);
}

/* Blocks needed to cover n items with `per` items per block. */
static inline HC_CU_HD unsigned hc_cu_div_up(size_t n, size_t per) { return (unsigned)((n + per - 1) / per); }

#endif

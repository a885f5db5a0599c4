/* scalar.c: the example compensation-kernel plugin "scalar", built outside hcinfer's tree against
 * the installed SDK: y += B (A x) for f32 and f16 branches in plain C, one element at a time. */
#include <string.h>

#include <hc/hc_comp.h>
#include <hc/hc_plugin.h>
#include <hc/hc_tensor.h>

/* The ABI this plugin declares (see sdk/examples/quant_sym4/sym4.c for why it can be forced). */
#ifdef SCALAR_FORCE_ABI
#define SCALAR_ABI SCALAR_FORCE_ABI
#else
#define SCALAR_ABI HC_ABI_VERSION
#endif

static int scalar_supports(hc_dtype dtype) { return dtype == HC_F32 || dtype == HC_F16; }

/* Element i of a row of A or B stored as f32 or f16 (hc_f16_to_f32 comes from libhc). */
static float element(hc_dtype dtype, const void *row, int64_t i)
{
    if (dtype == HC_F16) {
        uint16_t h;
        memcpy(&h, (const char *)row + 2 * i, 2);
        return hc_f16_to_f32(h);
    }
    return ((const float *)row)[i];
}

static size_t element_bytes(hc_dtype dtype) { return dtype == HC_F16 ? 2 : 4; }

static const char *name_of(const hc_branch *b) { return b->name ? b->name : "(unnamed)"; }

/* What down and up both check: never trust the caller to have checked for us. */
static hc_status check_branch(const char *phase, const hc_branch *b, int rank, int n_tok)
{
    if (!b) return hc_error(HC_E_ARG, "scalar %s: no branch given", phase);
    if (!scalar_supports(b->dtype))
        return hc_error(HC_E_UNSUPPORTED, "scalar %s %s: storage type %s is not f32 or f16", phase, name_of(b),
                        hc_dtype_name(b->dtype));
    if (rank < 0 || rank > b->rank || n_tok < 0 || b->in <= 0 || b->out <= 0)
        return hc_error(HC_E_ARG, "scalar %s %s: bad arguments (active rank %d of %d, %d tokens)", phase,
                        name_of(b), rank, b->rank, n_tok);
    return HC_OK;
}

/* down: t[j][k] = sum_i A[k][i] x[j][i] for directions k in [k0, k1), tokens j < n_tok.
 * A is [b->rank][b->in]; x is [n_tok][b->in]; t has row stride ldt. */
static hc_status scalar_down(const hc_branch *b, int rank, const float *x, int n_tok, float *t, int64_t ldt,
                             int k0, int k1)
{
    hc_status st = check_branch("down", b, rank, n_tok);
    if (st != HC_OK) return st;
    if (k0 < 0 || k1 < k0 || k1 > rank)
        return hc_error(HC_E_ARG, "scalar down %s: range [%d, %d) is outside the active rank %d", name_of(b), k0,
                        k1, rank);
    if (n_tok == 0 || k0 == k1) return HC_OK;
    if (!b->a || !x || !t) return hc_error(HC_E_ARG, "scalar down %s: missing A, x or t", name_of(b));
    size_t a_row = element_bytes(b->dtype) * (size_t)b->in;
    for (int j = 0; j < n_tok; j++) {
        const float *xj = x + (size_t)j * (size_t)b->in;
        for (int k = k0; k < k1; k++) {
            const char *a = (const char *)b->a + (size_t)k * a_row;
            float acc = 0.0f;
            for (int64_t i = 0; i < b->in; i++) acc += element(b->dtype, a, i) * xj[i];
            t[(size_t)j * (size_t)ldt + (size_t)k] = acc;
        }
    }
    return HC_OK;
}

/* up: y[j][o] += sum_{k < rank} B[k][o] t[j][k] for outputs o in [o0, o1).
 * B is [b->rank][b->out]: row k is direction k's output vector (the active prefix is its first rows). */
static hc_status scalar_up(const hc_branch *b, int rank, const float *t, int64_t ldt, int n_tok, float *y,
                           int64_t ldy, int64_t o0, int64_t o1)
{
    hc_status st = check_branch("up", b, rank, n_tok);
    if (st != HC_OK) return st;
    if (o0 < 0 || o1 < o0 || o1 > b->out)
        return hc_error(HC_E_ARG, "scalar up %s: range [%lld, %lld) is outside [0, %lld)", name_of(b),
                        (long long)o0, (long long)o1, (long long)b->out);
    if (n_tok == 0 || o0 == o1 || rank == 0) return HC_OK;
    if (!b->b || !t || !y) return hc_error(HC_E_ARG, "scalar up %s: missing B, t or y", name_of(b));
    size_t b_row = element_bytes(b->dtype) * (size_t)b->out;
    for (int j = 0; j < n_tok; j++) {
        const float *tj = t + (size_t)j * (size_t)ldt;
        float *yj = y + (size_t)j * (size_t)ldy;
        for (int64_t o = o0; o < o1; o++) {
            float acc = 0.0f;
            for (int k = 0; k < rank; k++) acc += element(b->dtype, (const char *)b->b + (size_t)k * b_row, o) * tj[k];
            yj[o] += acc;
        }
    }
    return HC_OK;
}

static const hc_comp_ops scalar_ops = {
    .supports = scalar_supports,
    .down = scalar_down,
    .up = scalar_up,
};

static const hc_plugin_desc scalar_desc = {
    .abi_version = SCALAR_ABI,
    .kind = HC_PLUGIN_COMP,
    .name = "scalar",
    .version = "1.0.0",
    .description = "example: low-rank branches in plain C, one element at a time (f32, f16 storage)",
    .ops = &scalar_ops,
};

HC_PLUGIN_DEFINE(scalar_desc)

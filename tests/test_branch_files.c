/* test_branch_files.c: compressed files beyond the default: q8_0 branch factors, files of format 1
 * (lora_b transposed on load) and newer formats refused, a quantized head with a tied embedding. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "gguf.h"
#include "model_load.h"
#include "registry_default.h"
#include "stories_fixture.h"
#include "suffix.h"
#include "transpose.h"
#include "test_util.h"

static int skip_format_version(const char *key, void *ctx) { return !strcmp(key, "hc.format_version"); }

/* A copy of the compressed model marked as file format `version`; for version 1, with lora_b in that
 * format's layout, [out][rank] (GGUF dimensions {rank, out}), except q8_0 factors (kept as they are:
 * format 1 had none, such a file is to be refused). */
static void write_format(const char *src, const char *dst, uint32_t version)
{
    hc_gguf *g = NULL;
    hc_gguf_writer *w = NULL;
    HC_ASSERT_OK(hc_gguf_open(src, &g));
    HC_ASSERT_OK(hc_gguf_writer_create(&w));
    HC_ASSERT_OK(hc_gguf_copy_kv(w, g, skip_format_version, NULL));
    HC_ASSERT_OK(hc_gguf_set_u32(w, "hc.format_version", version));
    void **copies = calloc(g->n_tensors, sizeof *copies);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const hc_gguf_tensor *t = &g->tensors[i];
        if (version == 1 && hc_ends_with(t->name, ".lora_b") && t->type != HC_Q8_0) {
            int64_t out = t->ne[0], r = t->ne[1], ne[2] = { r, out };
            size_t es = hc_dtype_row_bytes(t->type, 1);
            char *b = copies[i] = malloc(t->nbytes);
            hc_transpose(b, t->data, r, out, es);
            HC_ASSERT_OK(hc_gguf_add_tensor(w, t->name, t->type, 2, ne, b, t->nbytes));
        } else {
            HC_ASSERT_OK(hc_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->nbytes));
        }
    }
    HC_ASSERT_OK(hc_gguf_writer_write(w, dst));
    for (uint64_t i = 0; i < g->n_tensors; i++) free(copies[i]);
    free(copies);
    hc_gguf_writer_free(w);
    hc_gguf_close(g);
}

/* Branches stored as q8_0 (compress --branch-dtype q8_0): the layers of width 64 and 32 get q8_0
 * factors, the ffn (172) f16; fewer bytes; a file of format 1 with them is refused; every scheduler
 * agrees; and along the same tokens the logits stay within a tenth of what the branches change
 * from the f16-branch model's. */
static void test_q8_branches(void)
{
    if (!hc_fix_model() || !hc_fix_compress_stories(HC_Q8_0, hc_fix_q8_path, sizeof hc_fix_q8_path, "st-w4-q8.gguf")) return;
    hc_registry *r = NULL;
    hc_model *m8 = NULL, *m16 = NULL;
    hc_model_load_opts lo = { 0 };
    HC_ASSERT_OK(hc_registry_create(&r));
    lo.registry = r;
    HC_ASSERT_OK(hc_registry_load_default(r));
    HC_ASSERT_OK(hc_model_load(hc_fix_q8_path, &lo, &m8));
    HC_ASSERT_OK(hc_model_load(hc_fix_path, &lo, &m16));
    if (m8 && m16) {
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_Q].dtype, HC_Q8_0);
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_K].dtype, HC_Q8_0);
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_UP].dtype, HC_F16);
        CU_ASSERT_EQUAL(m8->layers[0].branch[HC_PROJ_Q].rank, 6);
        size_t b8 = hc_model_branch_bytes(m8), b16 = hc_model_branch_bytes(m16);
        printf("\n  branch bytes: q8_0 %zu, f16 %zu\n", b8, b16);
        CU_ASSERT(b8 < b16 * 8 / 10);
    }
    hc_model_free(m8);
    hc_model_free(m16);
    const char *v1 = hc_test_tmp("q8-format1.gguf");
    write_format(hc_fix_q8_path, v1, 1);
    hc_model *bad = NULL;
    CU_ASSERT_EQUAL(hc_model_load(v1, &lo, &bad), HC_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "q8_0 factors need format 2"));
    CU_ASSERT_PTR_NULL(bad);
    hc_registry_free(r);
    hc_fix_check_schedulers_agree(hc_fix_q8_path);

    int32_t base[HC_FIX_N_GEN], got[HC_FIX_N_GEN];
    float l16[512], l8[512], lbare[512];
    hc_fix_run ro = { .sched = "serial", .host_threads = 1, .model = hc_fix_path, .last_logits = l16 };
    HC_ASSERT_OK(hc_fix_generate(&ro, base, NULL));
    ro = (hc_fix_run){ .sched = "async", .host_threads = 1, .model = hc_fix_q8_path, .force = base, .last_logits = l8 };
    HC_ASSERT_OK(hc_fix_generate(&ro, got, NULL));
    ro = (hc_fix_run){ .sched = NULL, .model = hc_fix_path, .force = base, .last_logits = lbare };
    HC_ASSERT_OK(hc_fix_generate(&ro, got, NULL));
    float d8 = hc_fix_max_abs_diff(l8, l16, 512), dbare = hc_fix_max_abs_diff(lbare, l16, 512);
    printf("  last logits: q8_0 branches %.4f, no branches %.4f from the f16 branches'\n", (double)d8, (double)dbare);
    CU_ASSERT(d8 < 0.1f * dbare);
}

/* Files of format 1 (lora_b stored [out][rank]) still run, transposed on load: the same tokens;
 * a file of a newer format than this build knows is refused with its version named. */
static void test_file_formats(void)
{
    if (!hc_fix_model()) return;
    int32_t base[HC_FIX_N_GEN], got[HC_FIX_N_GEN];
    hc_fix_run ro = { .sched = "serial", .host_threads = 1 };
    HC_ASSERT_OK(hc_fix_generate(&ro, base, NULL));
    char v1[1200], v3[1200];
    snprintf(v1, sizeof v1, "%s", hc_test_tmp("st-w4-format1.gguf"));
    snprintf(v3, sizeof v3, "%s", hc_test_tmp("st-w4-format3.gguf"));
    write_format(hc_fix_path, v1, 1);
    write_format(hc_fix_path, v3, HC_FORMAT_VERSION + 1);
    ro.model = v1;
    HC_ASSERT_OK(hc_fix_generate(&ro, got, NULL));
    CU_ASSERT_EQUAL(memcmp(base, got, sizeof got), 0);
    hc_model *m = NULL;
    hc_model_load_opts lo = { 0 };
    CU_ASSERT_EQUAL(hc_model_load(v3, &lo, &m), HC_E_UNSUPPORTED);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "hc.format_version 3 is newer"));
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "format3.gguf"));
    remove(v1);
    remove(v3);
}

/* compress --head-quant packs the tied embedding too: the file loads (its vocabulary from the
 * packed tensor's logical shape, not its bytes), and with 8-bit backbone and head the greedy tokens
 * are the source's. */
static void test_head_quant(void)
{
    const char *src = hc_test_shared("models/stories260K/stories260K.bin", "head quantization");
    if (!src) return;
    char source[1024], packed[1024];
    snprintf(source, sizeof source, "%s", src);
    snprintf(packed, sizeof packed, "%s", hc_test_tmp("st-head8.gguf"));
    hc_registry *r;
    HC_ASSERT_OK(hc_registry_create(&r));
    HC_ASSERT_OK(hc_registry_load_default(r));
    hc_compress_opts o = { .input = source, .output = packed, .quant = "rtn:bits=8,group=32",
                           .head_quant = "rtn:bits=8,group=32", .rank = 0, .threads = 2, .branch_dtype = HC_F16,
                           .registry = r };
    hc_compress_report rep;
    HC_ASSERT_OK(hc_compress(&o, &rep));
    hc_model *m = NULL;
    hc_model_load_opts lo = { .registry = r };
    HC_ASSERT_OK(hc_model_load(packed, &lo, &m));
    if (m) {
        CU_ASSERT_EQUAL(m->cfg.n_vocab, 512);
        CU_ASSERT_EQUAL(m->tok_embd.dtype, HC_PACKED);
        CU_ASSERT(m->cfg.tied_output && m->output.data == m->tok_embd.data);
    }
    hc_model_free(m);
    hc_registry_free(r);
    int32_t want[HC_FIX_N_GEN], got[HC_FIX_N_GEN];
    hc_fix_run ro = { .model = source };
    HC_ASSERT_OK(hc_fix_generate(&ro, want, NULL));
    ro.model = packed;
    HC_ASSERT_OK(hc_fix_generate(&ro, got, NULL));
    CU_ASSERT_EQUAL(memcmp(want, got, sizeof got), 0);
}

int main(void)
{
    const hc_test_case cases[] = {
        { "q8_0 branch factors", test_q8_branches },
        { "files of format 1 run, newer formats are refused", test_file_formats },
        { "a model with a quantized head and tied embedding", test_head_quant },
        { NULL, NULL },
    };
    return hc_test_run("branch_files", cases);
}

/* test_policy.c: rank allocation: the per-step error reductions, the shipped Lua policies against
 * uniform ranks and the exact optimum, refusal of every kind of bad answer, and compress end to end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "compress_policy.h"
#include "compress_sens.h"
#include "context.h"
#include "device_cpu.h"
#include "gguf.h"
#include "clock.h"
#include "lua_host.h"
#include "policy_steps.h"
#include "lowrank.h"
#include "model_load.h"
#include "registry_default.h"
#include "test_util.h"

#define POLICY_DIR HC_SOURCE_DIR "/scripts/policies/"

static uint64_t rng = 0x1234567887654321ull;

static double uniform01(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static float gaussian(void)
{
    double u = uniform01() + 1e-12, v = uniform01();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* tr(E H E^T) of E = R - B_k A_k (the first k directions), in double. */
static double residual_error(const float *r, const hc_lowrank *lr, int k, const float *h)
{
    int64_t out = lr->out, in = lr->in;
    double *e = malloc((size_t)in * sizeof *e), err = 0;
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < in; i++) {
            double v = r[o * in + i];
            for (int s = 0; s < k; s++) v -= (double)lr->b[o * lr->rank + s] * lr->a[s * in + i];
            e[i] = v;
        }
        for (int64_t i = 0; i < in; i++)
            for (int64_t j = 0; j < in; j++) err += e[i] * (h ? h[i * in + j] : (i == j)) * e[j];
    }
    free(e);
    return err;
}

/* The reductions telescope to the true error after every prefix, with and without a moment;
 * without one they are the squared singular values; with full whitening, close to them. */
static void test_step_gains(void)
{
    enum { OUT = 24, IN = 16, N = 64, K = 10 };
    float *r = malloc(OUT * IN * sizeof *r), *x = malloc(N * IN * sizeof *x), *h = calloc(IN * IN, sizeof *h);
    double *hd = calloc(IN * IN, sizeof *hd);
    for (int i = 0; i < OUT * IN; i++) r[i] = gaussian();
    for (int t = 0; t < N; t++)
        for (int i = 0; i < IN; i++) x[t * IN + i] = gaussian() * (1.0f + (float)i); /* unequal input scales */
    for (int i = 0; i < IN; i++)
        for (int j = 0; j < IN; j++) {
            double s = 0;
            for (int t = 0; t < N; t++) s += (double)x[t * IN + i] * x[t * IN + j];
            hd[i * IN + j] = s / N;
            h[i * IN + j] = (float)(s / N);
        }
    const float *moments[2] = { NULL, h };
    for (int m = 0; m < 2; m++) {
        hc_lowrank lr;
        hc_lowrank_opts lo = { .rank = K, .whitening = HC_WHITEN_NONE, .seed = 7 };
        HC_ASSERT_OK(hc_lowrank_factor(r, OUT, IN, &lo, &lr));
        float gain[K];
        double total = 0;
        HC_ASSERT_OK(hc_compress_step_gains(r, &lr, moments[m], gain, &total));
        CU_ASSERT_DOUBLE_EQUAL(total, residual_error(r, &lr, 0, moments[m]), 1e-4 * total);
        double left = total;
        for (int k = 1; k <= K; k++) {
            left -= gain[k - 1];
            CU_ASSERT_DOUBLE_EQUAL(left, residual_error(r, &lr, k, moments[m]), 1e-3 * total);
            CU_ASSERT(gain[k - 1] > 0);
            if (!m) CU_ASSERT_DOUBLE_EQUAL(gain[k - 1], (double)lr.sigma[k - 1] * lr.sigma[k - 1], 1e-3 * gain[k - 1]);
        }
        hc_lowrank_free(&lr);
    }
    /* full whitening: sigma_k^2 is the reduction under the damped moment, a few percent above the
       exact one (the damping adds to every step); the total likewise */
    hc_lowrank lr;
    hc_lowrank_opts lo = { .rank = K, .whitening = HC_WHITEN_FULL, .moment = hd, .seed = 7 };
    HC_ASSERT_OK(hc_lowrank_factor(r, OUT, IN, &lo, &lr));
    float gain[K];
    double total = 0;
    HC_ASSERT_OK(hc_compress_step_gains(r, &lr, h, gain, &total));
    for (int k = 0; k < K; k++) {
        CU_ASSERT(gain[k] <= (double)lr.sigma[k] * lr.sigma[k]);
        CU_ASSERT_DOUBLE_EQUAL(gain[k], (double)lr.sigma[k] * lr.sigma[k], 0.06 * gain[k]);
    }
    CU_ASSERT(total < lr.energy && total > 0.97 * lr.energy);
    /* and the whitened factorization removes more of this error than the plain one at every rank */
    hc_lowrank plain;
    hc_lowrank_opts po = { .rank = K, .whitening = HC_WHITEN_NONE, .seed = 7 };
    HC_ASSERT_OK(hc_lowrank_factor(r, OUT, IN, &po, &plain));
    for (int k = 1; k <= K; k++) CU_ASSERT(residual_error(r, &lr, k, h) < residual_error(r, &plain, k, h));
    hc_lowrank_free(&plain);
    hc_lowrank_free(&lr);
    free(r); free(x); free(h); free(hd);
}

/* ---- synthetic layers ---- */

enum { NL = 12, RMAX = 24 };

typedef struct synth {
    hc_policy_layer layers[NL];
    float gain[NL][RMAX], spectrum[NL][RMAX];
    char names[NL][48];
    hc_policy_budget budget;
} synth;

/* Layers whose errors differ by orders of magnitude and decay at different speeds. */
static void make_synth(synth *s)
{
    static const char *const kinds[] = { "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down" };
    memset(s, 0, sizeof *s);
    uint64_t per_rank = 0;
    for (int i = 0; i < NL; i++) {
        hc_policy_layer *l = &s->layers[i];
        snprintf(s->names[i], sizeof s->names[i], "blk.%d.%s.weight", i / 7, kinds[i % 7]);
        double energy = pow(10.0, 3.0 * uniform01()), q = 0.5 + 0.45 * uniform01(), left = energy;
        int rmax = i == 3 ? 8 : RMAX; /* one small layer: its rank_max binds */
        for (int k = 0; k < rmax; k++) {
            s->gain[i][k] = (float)(left * (1 - q));
            s->spectrum[i][k] = sqrtf(s->gain[i][k]);
            left -= s->gain[i][k];
        }
        int64_t in = 64 * (1 + i % 3), out = 64 * (1 + (i * 5) % 4);
        *l = (hc_policy_layer){ .name = s->names[i], .kind = kinds[i % 7], .layer = i / 7, .in = in, .out = out, .rank_max = rmax,
                                .bytes_per_rank = (uint64_t)(in + out) * 2 + 4, .flops_per_rank = (uint64_t)(2 * (in + out)),
                                .spectrum = s->spectrum[i], .gain = s->gain[i], .energy = energy,
                                .signal = energy * pow(10.0, 0.3 + 2.0 * uniform01()) };
        per_rank += l->bytes_per_rank;
    }
    s->budget = (hc_policy_budget){ .bytes = 6 * per_rank + 1000, .percent = 10, .base_bytes = 10 * (6 * per_rank + 1000) };
}

/* Measured losses (compress --sens-tokens) for every layer: their exchange rate from error to loss
 * (loss / energy) spreads over two orders of magnitude, unrelated to the output energies. */
static void measure_synth(synth *s)
{
    for (int i = 0; i < NL; i++) {
        s->layers[i].loss = s->layers[i].energy * 1e-4 * pow(10.0, 2.0 * uniform01());
        s->layers[i].loss_measured = 1;
    }
}

/* greedy.lua's objective: error removed times the layer's measured loss per unit of error, or without
 * a measurement relative to the layer's output energy (gain / signal). */
static double step_gain(const synth *s, int i, int k)
{
    const hc_policy_layer *l = &s->layers[i];
    return l->loss_measured ? s->gain[i][k] * l->loss / l->energy : s->gain[i][k] / l->signal;
}

static double total_gain(const synth *s, const int *ranks, uint64_t *bytes)
{
    double g = 0;
    *bytes = 0;
    for (int i = 0; i < NL; i++) {
        for (int k = 0; k < ranks[i]; k++) g += step_gain(s, i, k);
        *bytes += (uint64_t)ranks[i] * s->layers[i].bytes_per_rank;
    }
    return g;
}

/* The exact optimum by dynamic programming over bytes (costs are multiples of 4). */
static double optimum(const synth *s)
{
    int cap = (int)(s->budget.bytes / 4);
    double *dp = calloc((size_t)cap + 1, sizeof *dp), *next = malloc(((size_t)cap + 1) * sizeof *next);
    for (int i = 0; i < NL; i++) {
        int c = (int)(s->layers[i].bytes_per_rank / 4);
        for (int b = 0; b <= cap; b++) {
            double best = dp[b], pre = 0;
            for (int r = 1; r <= s->layers[i].rank_max && r * c <= b; r++) {
                pre += step_gain(s, i, r - 1);
                if (dp[b - r * c] + pre > best) best = dp[b - r * c] + pre;
            }
            next[b] = best;
        }
        memcpy(dp, next, ((size_t)cap + 1) * sizeof *dp);
    }
    double v = dp[cap];
    free(dp);
    free(next);
    return v;
}

static hc_status run_policy(const char *path, const synth *s, int *ranks)
{
    hc_lua *L = NULL;
    hc_status st = hc_policy_open(path, NULL, &L);
    if (st == HC_OK) st = hc_policy_allocate(L, path, &s->budget, s->layers, NL, ranks);
    hc_lua_close(L);
    return st;
}

static void greedy_beats_uniform(int measured)
{
    synth s;
    make_synth(&s);
    if (measured) measure_synth(&s);
    int uni[NL], greedy[NL], rel[NL];
    HC_ASSERT_OK(run_policy(POLICY_DIR "uniform.lua", &s, uni));
    HC_ASSERT_OK(run_policy(POLICY_DIR "greedy.lua", &s, greedy));
    HC_ASSERT_OK(run_policy(POLICY_DIR "relative.lua", &s, rel));
    /* uniform.lua is the C uniform rule: budget // (sum of bytes per rank), capped at rank_max */
    for (int i = 0; i < NL; i++) CU_ASSERT_EQUAL(uni[i], 6);
    uint64_t bu, bg, br;
    double gu = total_gain(&s, uni, &bu), gg = total_gain(&s, greedy, &bg), gr = total_gain(&s, rel, &br);
    double opt = optimum(&s);
    printf("\n  removed error: uniform %.1f (%llu B), greedy %.1f (%llu B), relative %.1f (%llu B), optimum %.1f; budget %llu B\n", gu,
           (unsigned long long)bu, gg, (unsigned long long)bg, gr, (unsigned long long)br, opt, (unsigned long long)s.budget.bytes);
    CU_ASSERT(bu <= s.budget.bytes && bg <= s.budget.bytes && br <= s.budget.bytes);
    CU_ASSERT(gg > gu * 1.05); /* clearly better at no more bytes */
    CU_ASSERT(gg <= opt * (1 + 1e-6));
    /* short of the optimum by less than one step of gain */
    double max_step = 0;
    for (int i = 0; i < NL; i++) max_step = fmax(max_step, step_gain(&s, i, 0));
    CU_ASSERT(gg >= opt - max_step);
    CU_ASSERT(gg >= 0.97 * opt);
    /* ranks differ per layer, and the cheap large-error layers get more */
    int differ = 0;
    for (int i = 1; i < NL; i++) differ |= greedy[i] != greedy[0];
    CU_ASSERT(differ);
    /* relative: every layer keeps its floor (half the uniform rank) */
    for (int i = 0; i < NL; i++) CU_ASSERT(rel[i] >= 3);
    /* the same answer every run */
    int again[NL];
    HC_ASSERT_OK(run_policy(POLICY_DIR "greedy.lua", &s, again));
    CU_ASSERT(!memcmp(again, greedy, sizeof again));
}

static void test_greedy_beats_uniform(void)
{
    greedy_beats_uniform(0);
    greedy_beats_uniform(1); /* on the measured losses' objective */
}

/* A policy whose allocate body is `body` (layers in l, budget in b), written to a temporary file. */
static const char *write_policy(const char *file, const char *body)
{
    const char *path = hc_test_tmp(file);
    FILE *f = fopen(path, "w");
    fprintf(f, "-- %s: a test policy\nfunction allocate(b, l)\n%s\nend\n", file, body);
    fclose(f);
    return path;
}

/* The policy is refused with HC_E_SCRIPT, a message holding `want` and the script's name, and the
 * ranks are left alone. */
static void expect_refused(const char *file, const char *body, const char *want)
{
    synth s;
    make_synth(&s);
    char path[600];
    snprintf(path, sizeof path, "%s", write_policy(file, body));
    int ranks[NL];
    for (int i = 0; i < NL; i++) ranks[i] = -7;
    hc_status st = run_policy(path, &s, ranks);
    CU_ASSERT_EQUAL(st, HC_E_SCRIPT);
    if (!strstr(hc_last_error(), want) || !strstr(hc_last_error(), file)) {
        printf("\n  %s: message '%s' lacks '%s' or the file name\n", file, hc_last_error(), want);
        CU_FAIL("wrong refusal message");
    }
    for (int i = 0; i < NL; i++) CU_ASSERT_EQUAL(ranks[i], -7);
}

/* fill_steps(), the host's greedy helper: steps in order of the policy's values (ties: lower layer),
 * each layer up to its rank_max, a step that does not fit ending its layer; the bytes left returned. */
static void test_fill_steps(void)
{
    synth s;
    make_synth(&s);
    int ranks[NL];
    /* values decrease with the layer index: layer 1 first to its rank_max, then layer 2, ... */
    HC_ASSERT_OK(run_policy(write_policy("fill_order.lua",
                                         "local r = {} for i = 1, #l do r[i] = 0 end\n"
                                         "local left = fill_steps(l, r, b.bytes, function(i, taken) return -i end)\n"
                                         "local used = 0 for i = 1, #l do used = used + r[i] * l[i].bytes_per_rank end\n"
                                         "assert(left == b.bytes - used and left >= 0, 'bytes left')\n"
                                         "return r"),
                            &s, ranks));
    int64_t left = (int64_t)s.budget.bytes;
    int stopped = 0;
    for (int i = 0; i < NL; i++) {
        int64_t cost = (int64_t)s.layers[i].bytes_per_rank, want = s.layers[i].rank_max;
        int64_t fits = left / cost < want ? left / cost : want;
        CU_ASSERT_EQUAL(ranks[i], fits);
        left -= fits * cost;
        stopped |= fits < want;
    }
    CU_ASSERT(stopped); /* the budget ran out on the way */
    /* nil ends a layer; equal values go to the lower layer first; floors given in ranks are kept */
    HC_ASSERT_OK(run_policy(write_policy("fill_nil.lua",
                                         "local r = {} for i = 1, #l do r[i] = 1 end\n"
                                         "fill_steps(l, r, 3 * l[2].bytes_per_rank + l[5].bytes_per_rank, function(i, taken)\n"
                                         "  if i == 2 or i == 5 then return taken < 4 and 1.0 or nil end return nil end)\n"
                                         "return r"),
                            &s, ranks));
    for (int i = 0; i < NL; i++) CU_ASSERT_EQUAL(ranks[i], i == 1 ? 4 : i == 4 ? 2 : 1);
    /* what it refuses: ratio functions that answer wrongly, loop, or fail */
    static const char *const refused[][3] = {
        { "fill_str.lua", "return 'x'", "fill_steps: ratio(1, 0) returned a string, not a number or nil" },
        { "fill_numstr.lua", "return '3'", "fill_steps: ratio(1, 0) returned a string, not a number or nil" },
        { "fill_nan.lua", "return 0/0", "fill_steps: ratio(1, 0) returned NaN" },
        { "fill_loop.lua", "while true do end", "instruction limit" },
        { "fill_error.lua", "error('bad value')", "fill_error.lua:4: bad value" },
    };
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        char body[512];
        snprintf(body, sizeof body, "local r = {} for i = 1, #l do r[i] = 0 end\nfill_steps(l, r, b.bytes, function(i, taken) %s end) return r",
                 refused[k][1]);
        expect_refused(refused[k][0], body, refused[k][2]);
    }
    expect_refused("fill_ranks.lua", "fill_steps(l, {}, b.bytes, function(i, taken) return 1 end) return {}",
                   "fill_steps: ranks[1] is not an integer");
    expect_refused("fill_args.lua", "fill_steps(l, {}, 'many') return {}", "bad argument #3 to 'fill_steps'");
}

/* Runs code in a policy sandbox (fill_steps registered) under the given limits, as "hostile.lua";
 * returns its status and, in *ms, the time it took. */
static hc_status run_hostile(const char *code, uint64_t instructions, uint32_t max_ms, double *ms)
{
    hc_lua_limits lim = { .max_instructions = instructions, .max_ms = max_ms };
    hc_lua *L = NULL;
    double t0 = hc_now_seconds();
    hc_status st = hc_lua_open(&lim, &L);
    if (st == HC_OK) st = hc_policy_register_steps(L);
    if (st == HC_OK) st = hc_lua_run_string(L, "hostile.lua", code);
    *ms = (hc_now_seconds() - t0) * 1e3;
    hc_lua_close(L);
    return st;
}

static void expect_hostile(const char *code, uint64_t instructions, uint32_t max_ms, const char *want)
{
    double ms;
    hc_status st = run_hostile(code, instructions, max_ms, &ms);
    CU_ASSERT_EQUAL(st, HC_E_SCRIPT);
    if (!strstr(hc_last_error(), want) || !strstr(hc_last_error(), "hostile.lua:1:")) {
        printf("\n  '%s': message '%s' lacks '%s' or the position\n", code, hc_last_error(), want);
        CU_FAIL("wrong refusal message");
    }
    CU_ASSERT(ms < 5000);
}

/* fill_steps on hostile arguments (issue 22, findings 2 to 4): a negative bytes_per_rank is refused
 * (left -= cost overflowed with math.mininteger); a ratio that sets a rank to math.maxinteger ends
 * that layer (rank + 1 overflowed); a ratio written in C, which runs no Lua instruction, offering
 * steps of 0 bytes up to rank math.maxinteger stops at the instruction limit, or at the time limit
 * when the instructions would allow it, with the script's name and line. */
static void test_fill_steps_hostile(void)
{
    expect_hostile("fill_steps({{rank_max = 10, bytes_per_rank = math.mininteger}}, {0}, 100, function() return 1 end)", 0, 0,
                   "fill_steps: layers[1].bytes_per_rank is negative");
    double ms;
    HC_ASSERT_OK(run_hostile("local r = {0}\n"
                             "local left = fill_steps({{rank_max = 10, bytes_per_rank = 1}}, r, 100,\n"
                             "  function(i, taken) r[i] = math.maxinteger return 1 end)\n"
                             "assert(r[1] == math.maxinteger and left == 100)\n"
                             "r = {0, 0}\n" /* a rank lowered by ratio is stepped from where it is now */
                             "left = fill_steps({{rank_max = 3, bytes_per_rank = 1}, {rank_max = 3, bytes_per_rank = 1}}, r, 100,\n"
                             "  function(i, taken) if i == 2 then r[1] = 0 end return i end)\n"
                             "assert(r[2] == 3 and r[1] >= 1 and r[1] <= 3 and left == 100 - r[1] - r[2])",
                             0, 0, &ms));
    const char *forever = "fill_steps({{rank_max = math.maxinteger, bytes_per_rank = 0}}, {0}, 0, math.max)";
    expect_hostile(forever, 1000000, 0, "fill_steps");
    expect_hostile(forever, 1000000, 0, "instruction limit of 1000000 exceeded");
    expect_hostile(forever, UINT64_MAX, 200, "time limit of 200 ms exceeded");
    /* a pcall around it does not help: the limit is raised again outside */
    expect_hostile("pcall(fill_steps, {{rank_max = math.maxinteger, bytes_per_rank = 0}}, {0}, 0, math.max) while true do end",
                   UINT64_MAX, 200, "time limit of 200 ms exceeded");
}

static void test_bad_answers(void)
{
    const char *fill = "local r = {} for i, x in ipairs(l) do r[i] = 1 end\n";
    char body[512];
    expect_refused("over.lua", "local r = {} for i, x in ipairs(l) do r[i] = x.rank_max end return r",
                   "above the budget of");
    expect_refused("short.lua", "return {1, 2}", "returned 2 ranks for 12 layers (none for layer 3, blk.0.attn_v.weight)");
    expect_refused("long.lua", "local r = {} for i = 1, #l + 1 do r[i] = 0 end return r", "position 13, outside 1..12");
    snprintf(body, sizeof body, "%sr[4] = l[4].rank_max + 1 return r", fill);
    expect_refused("big.lua", body, "the rank of blk.0.attn_output.weight is 9, above its rank_max 8");
    snprintf(body, sizeof body, "%sr[2] = -1 return r", fill);
    expect_refused("neg.lua", body, "the rank of blk.0.attn_k.weight is -1, below 0");
    snprintf(body, sizeof body, "%sr[5] = 2.5 return r", fill);
    expect_refused("frac.lua", body, "the rank of blk.0.ffn_gate.weight is 2.5, not an integer");
    snprintf(body, sizeof body, "%sr[6] = '3' return r", fill);
    expect_refused("str.lua", body, "the rank of blk.0.ffn_up.weight is a string, not an integer");
    snprintf(body, sizeof body, "%sr[7] = 0/0 return r", fill);
    expect_refused("nan.lua", body, "not an integer");
    expect_refused("nil.lua", "return nil", "allocate() returned a nil, not a table of ranks");
    expect_refused("num.lua", "return 5", "returned a number");
    expect_refused("throw.lua", "error('no budget for you')", "throw.lua:3: no budget for you");
    expect_refused("index.lua", "return l[1].missing.field", "index.lua:3: attempt to index a nil value");
    expect_refused("loop.lua", "while true do end", "instruction limit");
    expect_refused("names.lua", "return { ['blk.9.attn_q.weight'] = 1 }", "'blk.9.attn_q.weight', which names no layer");
    expect_refused("partial.lua", "return { ['blk.0.attn_q.weight'] = 1 }", "gives no rank for layer blk.0.attn_k.weight");
    expect_refused("mixed.lua", "return { 1, ['blk.0.attn_k.weight'] = 1 }", "mixes positions and layer names");
    expect_refused("key.lua", "return { [true] = 1 }", "boolean key");
    expect_refused("escape.lua", "os.execute('true') return {}", "'os' is not available");
    expect_refused("file.lua", "local f = io.open('/etc/passwd') return {}", "'io' is not available");
    expect_refused("req.lua", "local m = require('os') return {}", "'require' is not available");
    expect_refused("grow.lua", "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end return {}", "memory limit");

    /* a table name -> rank is accepted; so are integral floats */
    synth s;
    make_synth(&s);
    int ranks[NL];
    HC_ASSERT_OK(run_policy(write_policy("named.lua", "local r = {} for i, x in ipairs(l) do r[x.name] = (i % 3) * 1.0 end return r"), &s, ranks));
    for (int i = 0; i < NL; i++) CU_ASSERT_EQUAL(ranks[i], (i + 1) % 3);
    /* what a policy sees */
    HC_ASSERT_OK(run_policy(write_policy("sees.lua",
                                         "assert(#l == 12 and l[1].name == 'blk.0.attn_q.weight' and l[1].kind == 'attn_q' and l[1].layer == 0)\n"
                                         "assert(l[4].rank_max == 8 and #l[4].gain == 8 and #l[4].spectrum == 8 and l[4].energy > 0 and l[4].signal > 0)\n"
                                         "assert(math.type(b.bytes) == 'integer' and b.percent == 10 and b.backbone_bytes == 10 * b.bytes)\n"
                                         "assert(l[1].bytes_per_rank == (l[1]['in'] + l[1].out) * 2 + 4 and l[1].flops_per_rank == 2 * (l[1]['in'] + l[1].out))\n"
                                         "assert(math.abs(l[2].spectrum[1] ^ 2 - l[2].gain[1]) <= 1e-3 * l[2].gain[1] and l[1].expert == nil)\n"
                                         "local r = {} for i = 1, #l do r[i] = 0 end return r"),
                            &s, ranks));
    /* a script without allocate, or with a syntax error, is refused when loaded */
    hc_lua *L = NULL;
    const char *noalloc = hc_test_tmp("noalloc.lua");
    FILE *f = fopen(noalloc, "w");
    fputs("function allocat(b, l) return {} end\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(hc_policy_open(noalloc, NULL, &L), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "defines no function allocate(budget, layers)"));
    CU_ASSERT_PTR_NULL(L);
    CU_ASSERT_EQUAL(hc_policy_open(write_policy("syntax.lua", "return {1,,2}"), NULL, &L), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "syntax.lua:3:"));
    /* the example in sdk/POLICIES.md runs, and answers as greedy.lua does */
    char *doc = hc_test_read_file(HC_SOURCE_DIR "/sdk/POLICIES.md", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    char *start = strstr(doc, "-- mygreedy.lua"), *end = start ? strstr(start, "```") : NULL;
    char *with = end ? strstr(end, "The example above with it:") : NULL;
    char *start2 = with ? strstr(with, "```lua\n") : NULL, *end2 = start2 ? strstr(start2 + 7, "```") : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(end2);
    *end = '\0';
    *end2 = '\0';
    const char *example = hc_test_tmp("mygreedy.lua"), *example2 = hc_test_tmp("mygreedy_fill.lua");
    f = fopen(example, "w");
    fputs(start, f);
    fclose(f);
    f = fopen(example2, "w");
    fputs(start2 + 7, f);
    fclose(f);
    free(doc);
    int mine[NL], mine2[NL], greedy[NL];
    HC_ASSERT_OK(run_policy(example, &s, mine));
    HC_ASSERT_OK(run_policy(example2, &s, mine2));
    HC_ASSERT_OK(run_policy(POLICY_DIR "greedy.lua", &s, greedy));
    CU_ASSERT(!memcmp(mine, greedy, sizeof mine));
    CU_ASSERT(!memcmp(mine2, greedy, sizeof mine2));
    /* shipped policies are found by name */
    char path[4096];
    HC_ASSERT_OK(hc_policy_resolve("greedy", path, sizeof path));
    CU_ASSERT_EQUAL(access(path, R_OK), 0);
    HC_ASSERT_OK(hc_policy_resolve("uniform.lua", path, sizeof path));
    CU_ASSERT_EQUAL(hc_policy_resolve("no-such-policy", path, sizeof path), HC_E_IO);
}

/* ---- end to end on stories260K ---- */

typedef struct e2e {
    char model[1024], calib[1024];
    hc_registry *reg;
} e2e;

static int e2e_open(e2e *e, const char *test)
{
    const char *m = hc_test_shared("models/stories260K/stories260K.bin", test);
    if (!m) return 0;
    snprintf(e->model, sizeof e->model, "%s", m);
    const char *c = hc_test_shared("eval/wiki.valid.tokens", test);
    if (!c) return 0;
    snprintf(e->calib, sizeof e->calib, "%s", c);
    e->reg = NULL;
    if (hc_registry_create(&e->reg) != HC_OK || hc_registry_load_default(e->reg) != HC_OK) {
        printf("  %s\n", hc_last_error());
        CU_FAIL("registry");
        return 0;
    }
    return 1;
}

static hc_compress_opts e2e_opts(e2e *e, const char *out, const char *policy, double budget)
{
    return (hc_compress_opts){ .input = e->model, .output = out, .quant = "rtn:bits=3,group=32", .budget = budget, .calib = e->calib,
                               .calib_tokens = 1024, .calib_seq = 128, .whitening = HC_WHITEN_FULL, .whitening_given = 1,
                               .branch_dtype = HC_F16, .policy = policy, .threads = 2, .registry = e->reg };
}

static hc_status compress_with(e2e *e, const char *out, const char *policy, double budget)
{
    hc_compress_opts o = e2e_opts(e, out, policy, budget);
    hc_compress_report r;
    return hc_compress(&o, &r);
}

/* The compression is refused (HC_E_ARG) with a message containing `want`, and no file is left at
 * the temporary path `name`. */
static void expect_compress_refused(hc_compress_opts *o, const char *name, const char *want)
{
    char out[600];
    hc_compress_report r;
    snprintf(out, sizeof out, "%s", hc_test_tmp(name));
    o->output = out;
    CU_ASSERT_EQUAL(hc_compress(o, &r), HC_E_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), want));
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
    o->output = NULL;
}

/* Ranks of the branches in a compressed file, by their lora_s tensors (0 without). */
static int file_ranks(const char *path, int *ranks, int cap)
{
    hc_gguf *g = NULL;
    if (hc_gguf_open(path, &g) != HC_OK) return -1;
    int n = 0;
    for (uint64_t i = 0; i < g->n_kv && n < cap; i++) {
        const hc_gguf_kv *kv = &g->kv[i];
        if (strncmp(kv->key, "hc.sens.", 8) || kv->type != HC_GGUF_ARRAY) continue;
        char base[300];
        const char *w = kv->key + 8;
        snprintf(base, sizeof base, "%.*s.lora_s", (int)(strlen(w) - 7), w);
        const hc_gguf_tensor *t = hc_gguf_find_tensor(g, base);
        ranks[n++] = t ? (int)t->ne[0] : 0;
    }
    hc_gguf_close(g);
    return n;
}

/* Mean squared difference of the last-token logits of a model from the reference's over a prompt. */
static double logits_error(const char *path, const hc_model_load_opts *lo, const float *ref, float *out, hc_registry *reg)
{
    hc_model *m = NULL;
    hc_device *dev = NULL;
    hc_context *ctx = NULL;
    hc_device_config dc = { .n_threads = 1 };
    hc_context_params cp = { .n_ctx = 64, .n_batch = 16 };
    hc_status st = hc_model_load(path, lo, &m);
    if (st == HC_OK && hc_model_branch_bytes(m) > 0) {
        const hc_plugin *c = hc_registry_find(reg, HC_PLUGIN_COMP, "host"), *s = hc_registry_find(reg, HC_PLUGIN_SCHED, "serial");
        if (!c || !s) st = HC_E_PLUGIN;
        else {
            cp.comp = c->desc->ops;
            cp.sched = s->desc->ops;
            cp.sched_name = "serial";
        }
    }
    if (st == HC_OK) st = hc_cpu_device_create(&dc, &dev);
    if (st == HC_OK) st = hc_context_create(m, dev, &cp, &ctx);
    const float *logits = NULL;
    static const int32_t prompt[] = { 1, 403, 407, 261, 378, 429, 262, 275, 300, 356, 290, 365 };
    if (st == HC_OK) st = hc_decode(ctx, prompt, (int)(sizeof prompt / sizeof prompt[0]), 0, &logits);
    double err = -1;
    if (st == HC_OK) {
        int nv = m->cfg.n_vocab;
        err = 0;
        for (int i = 0; i < nv; i++) {
            if (!isfinite(logits[i])) err = INFINITY;
            if (out) out[i] = logits[i];
            if (ref) err += ((double)logits[i] - ref[i]) * ((double)logits[i] - ref[i]) / nv;
        }
    } else printf("\n  %s: %s\n", path, hc_last_error());
    hc_context_free(ctx);
    if (dev) {
        if (m) m->device = NULL;
        dev->ops->destroy(dev);
    }
    hc_model_free(m);
    return err;
}

static void test_compress_greedy(void)
{
    e2e e;
    if (!e2e_open(&e, "compress with --policy greedy")) return;
    char out[600], uni_c[600], uni_lua[600];
    snprintf(out, sizeof out, "%s", hc_test_tmp("greedy.gguf"));
    snprintf(uni_c, sizeof uni_c, "%s", hc_test_tmp("uniform_c.gguf"));
    snprintf(uni_lua, sizeof uni_lua, "%s", hc_test_tmp("uniform_lua.gguf"));
    HC_ASSERT_OK(compress_with(&e, out, POLICY_DIR "greedy.lua", 10));
    HC_ASSERT_OK(compress_with(&e, uni_c, NULL, 10));
    HC_ASSERT_OK(compress_with(&e, uni_lua, "uniform", 10));

    int rg[64], rc[64], rl[64];
    int ng = file_ranks(out, rg, 64), nc = file_ranks(uni_c, rc, 64), nl = file_ranks(uni_lua, rl, 64);
    CU_ASSERT_EQUAL(ng, 30); /* 5 layers x 6 projections that rtn groups of 32 can hold */
    CU_ASSERT_EQUAL(nc, ng);
    CU_ASSERT_EQUAL(nl, ng);
    int differ = 0, sum = 0;
    for (int i = 0; i < ng; i++) {
        differ |= rg[i] != rg[0];
        sum += rg[i];
        CU_ASSERT_EQUAL(rc[i], rl[i]); /* uniform.lua = the built-in uniform ranks */
        CU_ASSERT_EQUAL(rc[i], rc[0]);
    }
    CU_ASSERT(differ);
    CU_ASSERT(sum > 0);

    /* the sensitivity keys: rank_max steps, non-negative, within the total */
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(out, &g));
    const void *arr = NULL;
    uint64_t n = 0;
    float total = 0;
    HC_ASSERT_OK(hc_gguf_get_arr(g, "hc.sens.blk.0.attn_q.weight", HC_GGUF_FLOAT32, &arr, &n));
    HC_ASSERT_OK(hc_gguf_get_f32(g, "hc.sens.blk.0.attn_q.weight.total", &total));
    CU_ASSERT_EQUAL(n, 64); /* min(64, 64, max(4 x uniform, 64)) */
    double s = 0;
    for (uint64_t k = 0; k < n; k++) {
        float v;
        memcpy(&v, (const char *)arr + 4 * k, 4);
        CU_ASSERT(v >= 0);
        s += v;
    }
    CU_ASSERT(s <= total * 1.001 && s >= 0.99 * total); /* full rank: everything is removed at rank_max */
    const char *measure = NULL;
    HC_ASSERT_OK(hc_gguf_get_str(g, "hc.sens.measure", &measure));
    CU_ASSERT_STRING_EQUAL(measure, "activation");
    const char *policy = NULL;
    HC_ASSERT_OK(hc_gguf_get_str(g, "hc.comp.policy", &policy));
    CU_ASSERT_STRING_EQUAL(policy, "greedy.lua");
    hc_gguf_close(g);

    /* hcinfer inspect prints the sensitivity table */
    char cmd[1400], line[512];
    snprintf(cmd, sizeof cmd, "%s/hcinfer inspect --no-tensors '%s' 2>&1", HC_BIN_DIR, out);
    FILE *p = popen(cmd, "r");
    int table = 0, rows = 0, summary = 0;
    while (p && fgets(line, sizeof line, p)) {
        table |= strstr(line, "branch sensitivity (30 layers, measure activation)") != NULL;
        rows += strncmp(line, "  blk.", 6) == 0 && strstr(line, "%") != NULL;
        summary |= strstr(line, "all layers") != NULL;
    }
    CU_ASSERT_EQUAL(p ? pclose(p) : -1, 0);
    CU_ASSERT(table && summary);
    CU_ASSERT_EQUAL(rows, 30);

    /* it runs, and its branches bring the logits closer to the original model's */
    float *ref = malloc(512 * sizeof *ref);
    hc_model_load_opts plain = { .to_f32 = 1 };
    CU_ASSERT(logits_error(e.model, &plain, NULL, ref, e.reg) == 0);
    hc_model_load_opts with = { .registry = e.reg }, without = { .registry = e.reg, .no_branches = 1 };
    double err_with = logits_error(out, &with, ref, NULL, e.reg), err_without = logits_error(out, &without, ref, NULL, e.reg);
    double err_uni = logits_error(uni_c, &with, ref, NULL, e.reg);
    printf("\n  logits MSE vs the original: greedy %.5f, uniform %.5f, no branches %.5f\n", err_with, err_uni, err_without);
    CU_ASSERT(err_with >= 0 && err_with < err_without);
    CU_ASSERT(err_uni >= 0 && err_uni < err_without);
    free(ref);
    hc_registry_free(e.reg);
}

/* Sum of the measured losses stored in a compressed file (-1 when a layer has none or a bad one). */
static double file_losses(const char *path, int *n_layers)
{
    hc_gguf *g = NULL;
    if (hc_gguf_open(path, &g) != HC_OK) return -1;
    double sum = 0;
    *n_layers = 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const hc_gguf_kv *kv = &g->kv[i];
        if (strncmp(kv->key, "hc.sens.", 8) || kv->type != HC_GGUF_ARRAY) continue;
        char key[300];
        float loss = -1;
        snprintf(key, sizeof key, "%s.loss", kv->key);
        if (hc_gguf_get_f32(g, key, &loss) != HC_OK || !isfinite(loss) || loss < -1e-6f) sum = -1e30;
        sum += loss;
        (*n_layers)++;
    }
    hc_gguf_close(g);
    return sum < 0 ? -1 : sum;
}

/* --sens-tokens: every layer's end-to-end loss is measured, stored, shown to policies, and follows
 * the quantization error (8-bit layers cost far less than 3-bit ones). */
static void test_compress_measured(void)
{
    e2e e;
    if (!e2e_open(&e, "compress with --sens-tokens")) return;
    char w3[600], w8[600], policy[600];
    snprintf(w3, sizeof w3, "%s", hc_test_tmp("measured3.gguf"));
    snprintf(w8, sizeof w8, "%s", hc_test_tmp("measured8.gguf"));
    snprintf(policy, sizeof policy, "%s",
             write_policy("needs_loss.lua", "local r = {}\n"
                                            "for i, x in ipairs(l) do\n"
                                            "  if type(x.loss) ~= 'number' or x.loss < 0 then error('layer ' .. x.name .. ' has no loss') end\n"
                                            "  r[i] = 1\n"
                                            "end\n"
                                            "return r"));
    hc_compress_report r;
    hc_compress_opts o = e2e_opts(&e, w3, policy, 10);
    o.sens_tokens = 256;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.sens_tokens, 256);
    o.output = w8;
    o.quant = "rtn:bits=8,group=32";
    HC_ASSERT_OK(hc_compress(&o, &r));
    int n3 = 0, n8 = 0;
    double l3 = file_losses(w3, &n3), l8 = file_losses(w8, &n8);
    printf("\n  sum of the measured losses over %d layers: 3-bit %.5f, 8-bit %.7f nats/token\n", n3, l3, l8);
    CU_ASSERT_EQUAL(n3, 30);
    CU_ASSERT_EQUAL(n8, 30);
    CU_ASSERT(l3 > 0 && l8 >= 0 && l8 < 0.01 * l3);
    /* greedy reads them: its ranks differ from greedy's on the layer-local measure */
    char measured[600], local[600];
    snprintf(measured, sizeof measured, "%s", hc_test_tmp("greedy_measured.gguf"));
    snprintf(local, sizeof local, "%s", hc_test_tmp("greedy_local.gguf"));
    o = e2e_opts(&e, measured, "greedy", 10);
    o.sens_tokens = 256;
    HC_ASSERT_OK(hc_compress(&o, &r));
    HC_ASSERT_OK(compress_with(&e, local, "greedy", 10));
    int rm[64], rl[64], differ = 0;
    int nm = file_ranks(measured, rm, 64), nl = file_ranks(local, rl, 64);
    CU_ASSERT(nm == 30 && nl == 30);
    for (int i = 0; i < nm && i < nl; i++) differ |= rm[i] != rl[i];
    CU_ASSERT(differ);
    /* without the measurement the policy sees no loss; without calibration text there is none */
    CU_ASSERT_EQUAL(compress_with(&e, hc_test_tmp("never3.gguf"), policy, 10), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "has no loss"));
    o = e2e_opts(&e, NULL, NULL, 10);
    o.sens_tokens = 256;
    o.calib = NULL;
    o.whitening = HC_WHITEN_NONE;
    expect_compress_refused(&o, "never4.gguf", "--sens-tokens needs calibration text");
    o.calib = e.calib;
    o.sens_tokens = 5000;
    expect_compress_refused(&o, "never4.gguf", "--sens-tokens 5000 is out of range");

    /* --sens-source self: text sampled from the source model, no calibration text needed; the same
       losses every run (fixed seed), again far smaller at 8 bits, and not those measured on the
       calibration text */
    char self3[600], self3b[600], self8[600];
    snprintf(self3, sizeof self3, "%s", hc_test_tmp("self3.gguf"));
    snprintf(self3b, sizeof self3b, "%s", hc_test_tmp("self3b.gguf"));
    snprintf(self8, sizeof self8, "%s", hc_test_tmp("self8.gguf"));
    o = e2e_opts(&e, self3, policy, 10);
    o.calib = NULL;
    o.whitening = HC_WHITEN_NONE;
    o.sens_tokens = 256;
    o.sens_self = 1;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.sens_tokens, 256);
    o.output = self3b;
    HC_ASSERT_OK(hc_compress(&o, &r));
    o.output = self8;
    o.quant = "rtn:bits=8,group=32";
    HC_ASSERT_OK(hc_compress(&o, &r));
    int ns = 0, ns2 = 0, ns8 = 0;
    double s3 = file_losses(self3, &ns), s3b = file_losses(self3b, &ns2), s8 = file_losses(self8, &ns8);
    printf("  on sampled text: 3-bit %.5f, 8-bit %.7f nats/token\n", s3, s8);
    CU_ASSERT(ns == 30 && ns2 == 30 && ns8 == 30);
    CU_ASSERT(s3 > 0 && s3 == s3b && s8 >= 0 && s8 < 0.01 * s3);
    CU_ASSERT(fabs(s3 - l3) > 1e-6 * l3);
    hc_gguf *g = NULL;
    HC_ASSERT_OK(hc_gguf_open(self3, &g));
    const char *source = NULL;
    CU_ASSERT(hc_gguf_get_str(g, "hc.sens.loss_source", &source) == HC_OK && source && !strcmp(source, "self"));
    hc_gguf_close(g);
    o = e2e_opts(&e, NULL, NULL, 10);
    o.sens_self = 1;
    expect_compress_refused(&o, "never5.gguf", "--sens-source self needs --sens-tokens N");
    hc_registry_free(e.reg);
}

/* --calib-skip: another draw of the calibration text gives other branches (other logits), says so
 * in the file, and a skip past the text's end is refused by name with no file left. */
static void test_calib_skip(void)
{
    e2e e;
    if (!e2e_open(&e, "--calib-skip")) return;
    char first[600], other[600];
    snprintf(first, sizeof first, "%s", hc_test_tmp("skip0.gguf"));
    snprintf(other, sizeof other, "%s", hc_test_tmp("skip2048.gguf"));
    hc_compress_report r;
    hc_compress_opts o = e2e_opts(&e, first, NULL, 10);
    HC_ASSERT_OK(hc_compress(&o, &r));
    o.output = other;
    o.calib_skip = 2048;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.calib_tokens, 1024);
    hc_model_load_opts lo = { .registry = e.reg };
    float ref[512];
    double e0 = logits_error(first, &lo, NULL, ref, e.reg), e1 = logits_error(other, &lo, ref, NULL, e.reg);
    printf("  last logits of the two draws: mean squared difference %.3g\n", e1);
    CU_ASSERT(e0 == 0 && isfinite(e1) && e1 > 1e-8);
    hc_gguf *g = NULL;
    int64_t skip = 0;
    HC_ASSERT_OK(hc_gguf_open(other, &g));
    CU_ASSERT(hc_gguf_get_i64(g, "hc.calib.skip", &skip) == HC_OK && skip == 2048);
    hc_gguf_close(g);
    o.calib_skip = 1 << 30;
    expect_compress_refused(&o, "never6.gguf", "--calib-skip 1073741824: calibration file");
    hc_registry_free(e.reg);
}

/* --calib self: calibration on text the source model samples (fixed seed: the same branches every
 * run, not those of the calibration file; another seed, others); the measurement then samples
 * too; no --calib-skip. */
static void test_calib_self(void)
{
    e2e e;
    if (!e2e_open(&e, "--calib self")) return;
    char wiki[600], self1[600], self2[600];
    snprintf(wiki, sizeof wiki, "%s", hc_test_tmp("calib_wiki.gguf"));
    snprintf(self1, sizeof self1, "%s", hc_test_tmp("calib_self1.gguf"));
    snprintf(self2, sizeof self2, "%s", hc_test_tmp("calib_self2.gguf"));
    hc_compress_report r;
    hc_compress_opts o = e2e_opts(&e, wiki, NULL, 10);
    HC_ASSERT_OK(hc_compress(&o, &r));
    o.calib = "self";
    o.output = self1;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.calib_tokens, 1024);
    o.output = self2;
    o.sens_tokens = 64;
    HC_ASSERT_OK(hc_compress(&o, &r));
    CU_ASSERT_EQUAL(r.sens_tokens, 64);
    hc_model_load_opts lo = { .registry = e.reg };
    float ref[512];
    CU_ASSERT(logits_error(self1, &lo, NULL, ref, e.reg) == 0);
    double same = logits_error(self2, &lo, ref, NULL, e.reg), other = logits_error(wiki, &lo, ref, NULL, e.reg);
    printf("  last logits against calibration on sampled text: again %.3g, on the file %.3g\n", same, other);
    CU_ASSERT(same == 0 && isfinite(other) && other > 1e-8);
    hc_gguf *g = NULL;
    const char *file = NULL, *source = NULL;
    HC_ASSERT_OK(hc_gguf_open(self2, &g));
    CU_ASSERT(hc_gguf_get_str(g, "hc.calib.file", &file) == HC_OK && file && !strcmp(file, "self"));
    CU_ASSERT(hc_gguf_get_str(g, "hc.sens.loss_source", &source) == HC_OK && source && !strcmp(source, "self"));
    hc_gguf_close(g);
    /* another seed: another draw of the sampled text, other branches */
    char seeded[600];
    snprintf(seeded, sizeof seeded, "%s", hc_test_tmp("calib_seed7.gguf"));
    o.output = seeded;
    o.calib_seed = 7;
    HC_ASSERT_OK(hc_compress(&o, &r));
    double reseeded = logits_error(seeded, &lo, ref, NULL, e.reg);
    CU_ASSERT(isfinite(reseeded) && reseeded > 1e-8);
    uint32_t seed = 0;
    HC_ASSERT_OK(hc_gguf_open(seeded, &g));
    CU_ASSERT(hc_gguf_get_u32(g, "hc.calib.seed", &seed) == HC_OK && seed == 7);
    hc_gguf_close(g);
    o.calib_skip = 10;
    expect_compress_refused(&o, "never7.gguf", "--calib-skip needs a calibration file, not --calib self");
    hc_registry_free(e.reg);
}

/* A policy that fails (or answers badly) leaves no output file, temporary or final. */
static void test_failing_policy_no_output(void)
{
    e2e e;
    if (!e2e_open(&e, "a failing policy leaves no output")) return;
    const char *bodies[] = { "error('refused on purpose')", "local r = {} for i, x in ipairs(l) do r[i] = x.rank_max end return r",
                             "return {}" };
    const char *wants[] = { "fail0.lua:3: refused on purpose", "above the budget", "returned 0 ranks for 30 layers" };
    for (int i = 0; i < 3; i++) {
        char name[32], policy[600], out[600], tmp[620];
        snprintf(name, sizeof name, "fail%d.lua", i);
        snprintf(policy, sizeof policy, "%s", write_policy(name, bodies[i]));
        snprintf(out, sizeof out, "%s", hc_test_tmp("never.gguf"));
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        CU_ASSERT_EQUAL(compress_with(&e, out, policy, 10), HC_E_SCRIPT);
        if (!strstr(hc_last_error(), wants[i])) printf("\n  message: %s\n", hc_last_error());
        CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), wants[i]));
        CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
        CU_ASSERT_NOT_EQUAL(access(tmp, F_OK), 0);
    }
    /* a broken script is refused before the long work (no calibration, no quantization) */
    char out[600];
    snprintf(out, sizeof out, "%s", hc_test_tmp("never2.gguf"));
    CU_ASSERT_EQUAL(compress_with(&e, out, write_policy("broken.lua", "return {"), 10), HC_E_SCRIPT);
    CU_ASSERT_PTR_NOT_NULL(strstr(hc_last_error(), "broken.lua:4:"));
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
    CU_ASSERT_EQUAL(compress_with(&e, out, "no-such-policy", 10), HC_E_IO);
    CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0);
    hc_registry_free(e.reg);
}

int main(void)
{
    static const hc_test_case cases[] = {
        {"per-step error reductions telescope to the true error", test_step_gains},
        {"greedy beats uniform and is near the optimum", test_greedy_beats_uniform},
        {"bad answers are refused with their message", test_bad_answers},
        {"fill_steps takes steps in value order within the budget", test_fill_steps},
        {"fill_steps on hostile arguments stays bounded", test_fill_steps_hostile},
        {"compress stories260K with --policy greedy", test_compress_greedy},
        {"compress stories260K with --sens-tokens", test_compress_measured},
        {"--calib-skip draws other calibration text", test_calib_skip},
        {"--calib self calibrates on sampled text", test_calib_self},
        {"a failing policy leaves no output file", test_failing_policy_no_output},
        {NULL, NULL},
    };
    return hc_test_run("policy", cases);
}

/* fuzz_lua.c: libFuzzer harness of the Lua sandbox as rank policies use it: the input is a script,
 * run under small limits with fill_steps; its allocate(budget, layers) is called on a synthetic
 * model and the answer checked; the stack stays balanced and the state usable after any error. */
#include <string.h>

#include "compress_policy.h"
#include "fuzz_util.h"
#include "lua_host.h"
#include "policy_steps.h"

enum { NL = 6, RMAX = 8 };
static hc_policy_layer layers[NL];
static float spectrum[NL][RMAX], gain[NL][RMAX];
static char names[NL][48];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const char *const kinds[] = { "attn_q", "attn_k", "ffn_down" };
    for (int i = 0; i < NL; i++) {
        snprintf(names[i], sizeof names[i], "blk.%d.%s.weight", i / 3, kinds[i % 3]);
        for (int k = 0; k < RMAX; k++) {
            spectrum[i][k] = (float)(RMAX - k) * (float)(i + 1);
            gain[i][k] = spectrum[i][k] * spectrum[i][k];
        }
        layers[i] = (hc_policy_layer){ .name = names[i], .kind = kinds[i % 3], .layer = i / 3, .in = 64, .out = 32 + 32 * (i % 2),
                                       .rank_max = RMAX, .bytes_per_rank = (uint64_t)(64 + 32 + 32 * (i % 2)) * 2 + 4,
                                       .flops_per_rank = 2 * (uint64_t)(64 + 32 + 32 * (i % 2)), .spectrum = spectrum[i],
                                       .gain = gain[i], .energy = 100.0 * (i + 1), .signal = 1000.0, .is_expert = i == 5,
                                       .expert = 3, .routing_frequency = i == 5 ? 0.25 : -1 };
    }
    layers[4].loss_measured = 1;
    layers[4].loss = 0.5;
    return 0;
}

/* The state answers after whatever the script did: only its memory may be used up. */
static void check_usable(hc_lua *L)
{
    lua_State *S = hc_lua_state(L);
    FUZZ_CHECK(lua_gettop(S) == 0, "%d values left on the stack", lua_gettop(S));
    hc_status st = hc_lua_run_string(L, "probe", "local t = {} for i = 1, 10 do t[i] = i end return #t");
    FUZZ_CHECK(st == HC_OK || strstr(hc_last_error(), "memory limit"), "the state broke: %s", hc_last_error());
    FUZZ_CHECK(lua_gettop(S) == 0, "%d values left on the stack after the probe", lua_gettop(S));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *code = malloc(size + 1);
    if (!code) return 0;
    memcpy(code, data, size);
    code[size] = '\0';
    hc_lua *L = NULL;
    FUZZ_CHECK(hc_lua_open(&fuzz_lua_limits, &L) == HC_OK, "open: %s", hc_last_error());
    FUZZ_CHECK(hc_policy_register_steps(L) == HC_OK, "fill_steps: %s", hc_last_error());
    hc_clear_error();
    hc_status st = hc_lua_run_string(L, "fuzz.lua", code);
    FUZZ_CHECK(st == HC_OK || (st == HC_E_SCRIPT && hc_last_error()[0]), "status %d '%s'", st, hc_last_error());
    if (st == HC_OK && hc_lua_has_function(L, "allocate")) {
        hc_policy_budget b = { .bytes = 4000, .percent = 10, .base_bytes = 40000 };
        int ranks[NL];
        for (int i = 0; i < NL; i++) ranks[i] = -7;
        st = hc_policy_allocate(L, "fuzz.lua", &b, layers, NL, ranks);
        if (st == HC_OK) {
            uint64_t used = 0;
            for (int i = 0; i < NL; i++) {
                FUZZ_CHECK(ranks[i] >= 0 && ranks[i] <= RMAX, "rank %d of layer %d accepted", ranks[i], i);
                used += (uint64_t)ranks[i] * layers[i].bytes_per_rank;
            }
            FUZZ_CHECK(used <= b.bytes, "%llu bytes over a budget of %llu accepted", (unsigned long long)used, (unsigned long long)b.bytes);
        } else {
            FUZZ_CHECK(hc_last_error()[0], "a refusal without a message");
            for (int i = 0; i < NL; i++) FUZZ_CHECK(ranks[i] == -7, "ranks written by a refused answer");
        }
    }
    check_usable(L);
    hc_lua_close(L);
    free(code);
    return 0;
}

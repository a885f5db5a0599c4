/* policy_steps.h: the helpers the host gives every rank-policy sandbox: fill_steps(), the greedy
 * building block (rank steps by a policy's value per step until the bytes run out). */
#ifndef HC_POLICY_STEPS_H
#define HC_POLICY_STEPS_H

#include "hc/hc_api.h"
#include "hc/hc_status.h"

struct hc_lua;

/* Sets the sandbox's global fill_steps(layers, ranks, bytes_left, ratio). */
hc_status hc_policy_register_steps(struct hc_lua *L);

#endif

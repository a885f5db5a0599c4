/* weights_fixture.h: random weight matrices of every type the kernels read, with finite f16 scales
 * where each block layout keeps them, for the suites that compare devices' matmuls. */
#ifndef HC_WEIGHTS_FIXTURE_H
#define HC_WEIGHTS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "hc/hc_tensor.h"

/* rows x in weights of type t (malloc'd, *bytes long): plain types uniform in [-1, 1); block types
 * random bytes with their scales set to small finite f16 values. *rng: a xorshift64 state (not 0). */
uint8_t *hc_test_weights(hc_dtype t, int64_t rows, int64_t in, size_t *bytes, uint64_t *rng);

#endif

/* kv_window.h: the KV cache's rows per layer, with sliding-window layers (gemma3's local layers)
 * keeping only what their window can still see, and attention that honours each layer's window.
 *
 * A global layer keeps n_ctx rows, row r holding position r. A sliding-window layer (window W)
 * keeps min(n_ctx, W - 1 + n_batch) rows -- the window of the batch's first token and the batch --,
 * row r holding position kv_first[l] + r; before a batch would run past its last row, the W - 1
 * newest positions move to the front (hc_kv_slide), so a window is always contiguous: decoding
 * moves W - 1 rows every n_batch tokens. A token at position p of such a layer sees positions
 * max(0, p - W + 1) .. p (llama.cpp's standard SWA mask). */
#ifndef HC_KV_WINDOW_H
#define HC_KV_WINDOW_H

#include "context.h"

/* Fills c->kv_rows, kv_off and kv_first for c->model, c->n_ctx and c->n_batch; *total_rows: the
 * rows of all layers together (the cache is total_rows x kv_dim elements, for K and for V). */
hc_status hc_kv_layout_create(hc_context *c, size_t *total_rows);
void hc_kv_layout_free(hc_context *c);

/* The sliding window W of a layer, 0 when it attends globally. */
int hc_kv_layer_window(const hc_context *c, int layer);

/* Byte offset in k_cache / v_cache of position pos of a layer (pos must be held). */
size_t hc_kv_offset(const hc_context *c, int layer, int pos);

/* Before running n tokens at positions n_past ..: makes room in every sliding-window layer. */
hc_status hc_kv_slide(hc_context *c, int n);

/* Forgetting positions from n on: refused when a sliding-window layer no longer holds the window
 * of the token at position n (it moved past them). reset: every layer starts again at row 0. */
hc_status hc_kv_truncate(hc_context *c, int n);
void hc_kv_reset(hc_context *c);

/* Attention of n tokens at positions n_past .. (their keys already stored) for a layer: one call of
 * the device's attention for a global layer and for the tokens still inside their first window;
 * past it, one call per token over a view of the rows of its window. */
hc_status hc_kv_attention(hc_context *c, int layer, const float *q, float *out, int n, float scale);

#endif

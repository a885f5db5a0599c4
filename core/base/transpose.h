/* transpose.h: a row-major matrix of any element size transposed, as a branch's B is between the
 * layout hcinfer keeps (by direction, [rank][out]) and others (format-1 files, a device's matmul). */
#ifndef HC_TRANSPOSE_H
#define HC_TRANSPOSE_H

#include <stdint.h>
#include <string.h>

/* dst [cols][rows] = src [rows][cols], elements of elem_bytes each. */
static inline void hc_transpose(void *dst, const void *src, int64_t rows, int64_t cols, size_t elem_bytes)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy((char *)dst + (size_t)(c * rows + r) * elem_bytes, (const char *)src + (size_t)(r * cols + c) * elem_bytes,
                   elem_bytes);
}

#endif

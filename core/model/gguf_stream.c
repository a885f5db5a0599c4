/* gguf_stream.c: a GGUF file written while its tensors are made: offsets fixed by the declared
 * tensors, data written in any order, the header last into reserved room; atomic, room checked. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_write_internal.h"

struct hc_gguf_stream {
    hc_gguf_writer *w;
    char *path, *tmp;
    int fd;
    uint32_t align;
    size_t room;           /* header bytes reserved: the data section starts here */
    uint64_t *offsets;     /* per tensor of w, in declaration order */
    size_t cap;
    uint64_t end;          /* end of the declared tensors' data */
};

static double mib(uint64_t n) { return (double)n / 1048576.0; }

/* Room for `need` bytes at path: the file system's free space and the file size limit. */
static hc_status check_room(const char *path, const char *tmp, uint64_t need)
{
    char *dir = strdup(path);
    if (!dir) return hc_error(HC_E_NOMEM, "out of memory");
    struct statvfs fs;
    int ok = statvfs(dirname(dir), &fs) == 0;
    free(dir);
    uint64_t free_bytes = ok ? (uint64_t)fs.f_bavail * (uint64_t)fs.f_frsize : UINT64_MAX;
    if (need > free_bytes)
        return hc_error(HC_E_IO, "%s: no room: the file needs %.1f MiB, its file system has %.1f MiB free", path, mib(need),
                        mib(free_bytes));
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && need > (uint64_t)rl.rlim_cur)
        return hc_error(HC_E_IO, "%s: no room: the file needs %.1f MiB, the file size limit (RLIMIT_FSIZE) is %.1f MiB", path,
                        mib(need), mib((uint64_t)rl.rlim_cur));
    (void)tmp;
    return HC_OK;
}

static void stream_free(hc_gguf_stream *s)
{
    free(s->path);
    free(s->tmp);
    free(s->offsets);
    free(s);
}

void hc_gguf_stream_abort(hc_gguf_stream *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    unlink(s->tmp);
    stream_free(s);
}

static int grow_offsets(hc_gguf_stream *s, size_t n)
{
    if (n <= s->cap) return 1;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    uint64_t *p = realloc(s->offsets, cap * sizeof *p);
    if (!p) return 0;
    s->offsets = p;
    s->cap = cap;
    return 1;
}

hc_status hc_gguf_stream_open(hc_gguf_writer *w, const char *path, size_t room, uint64_t extra, hc_gguf_stream **out)
{
    *out = NULL;
    if (!w || !path) return hc_error(HC_E_ARG, "gguf stream: NULL argument");
    hc_gguf_stream *s = calloc(1, sizeof *s);
    if (!s) return hc_error(HC_E_NOMEM, "gguf stream: out of memory");
    s->w = w;
    s->fd = -1;
    s->room = room;
    size_t n = hc_gguf_internal_n_tensors(w);
    hc_status st = HC_OK;
    size_t plen = strlen(path);
    if (!(s->path = strdup(path)) || !(s->tmp = malloc(plen + 5)) || !grow_offsets(s, n ? n : 1)) st = hc_error(HC_E_NOMEM, "gguf stream: out of memory");
    if (st == HC_OK) {
        memcpy(s->tmp, path, plen);
        memcpy(s->tmp + plen, ".tmp", 5);
        st = hc_gguf_internal_layout(w, &s->align, s->offsets, &s->end);
    }
    if (st == HC_OK && (room == 0 || room % s->align))
        st = hc_error(HC_E_ARG, "gguf stream: %s: header room %zu is not a positive multiple of the alignment %" PRIu32, path, room, s->align);
    uint64_t need = (uint64_t)room + s->end + extra;
    if (st == HC_OK) st = check_room(path, s->tmp, need);
    if (st == HC_OK && (s->fd = open(s->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        st = hc_error(HC_E_IO, "%s: cannot create: %s", s->tmp, strerror(errno));
    /* reserve the blocks now: a full disk fails here, not hours later (file systems without
       fallocate write as they go) */
    if (st == HC_OK && fallocate(s->fd, 0, 0, (off_t)need) != 0 && errno != EOPNOTSUPP && errno != ENOSYS)
        st = hc_error(HC_E_IO, "%s: no room for the %.1f MiB the file needs: %s", path, mib(need), strerror(errno));
    if (st != HC_OK) {
        if (s->fd >= 0) {
            close(s->fd);
            unlink(s->tmp);
        }
        stream_free(s);
        return st;
    }
    *out = s;
    return HC_OK;
}

hc_status hc_gguf_stream_offset(const hc_gguf_stream *s, const char *name, uint64_t *offset)
{
    long i = hc_gguf_internal_find_tensor(s->w, name);
    if (i < 0) return hc_error(HC_E_ARG, "gguf stream: %s: no tensor '%s' was declared", s->path, name);
    *offset = s->offsets[i];
    return HC_OK;
}

uint64_t hc_gguf_stream_data_end(const hc_gguf_stream *s) { return s->end; }

/* pwrite(2) until done. */
static hc_status write_at(const hc_gguf_stream *s, off_t at, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t k = pwrite(s->fd, p, n > (1u << 30) ? (1u << 30) : n, at);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return hc_error(HC_E_IO, "%s: write failed: %s", s->tmp, k < 0 ? strerror(errno) : "no progress");
        p += k;
        at += k;
        n -= (size_t)k;
    }
    return HC_OK;
}

hc_status hc_gguf_stream_pwrite(hc_gguf_stream *s, uint64_t offset, const void *data, size_t n)
{
    return write_at(s, (off_t)(s->room + offset), data, n);
}

hc_status hc_gguf_stream_pread(const hc_gguf_stream *s, uint64_t offset, void *data, size_t n)
{
    char *p = data;
    off_t at = (off_t)(s->room + offset);
    while (n) {
        ssize_t k = pread(s->fd, p, n > (1u << 30) ? (1u << 30) : n, at);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return hc_error(HC_E_IO, "%s: read failed: %s", s->tmp, k < 0 ? strerror(errno) : "end of file");
        p += k;
        at += k;
        n -= (size_t)k;
    }
    return HC_OK;
}

hc_status hc_gguf_stream_add_tensor(hc_gguf_stream *s, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                                    size_t nbytes, uint64_t *offset)
{
    size_t n = hc_gguf_internal_n_tensors(s->w);
    if (!grow_offsets(s, n + 1)) return hc_error(HC_E_NOMEM, "gguf stream: out of memory");
    hc_status st = hc_gguf_declare_tensor(s->w, name, type, n_dims, ne, NULL, nbytes);
    if (st != HC_OK) return st;
    uint64_t padded = ((uint64_t)nbytes + s->align - 1) / s->align * s->align;
    s->offsets[n] = s->end;
    *offset = s->end;
    s->end += padded;
    return HC_OK;
}

hc_status hc_gguf_stream_finish(hc_gguf_stream *s)
{
    uint8_t *h = NULL;
    size_t len = 0;
    hc_status st = hc_gguf_internal_header(s->w, s->room, &h, &len);
    if (st == HC_OK) st = write_at(s, 0, h, len);
    else hc_error_context(st, "%s: ", s->path);
    free(h);
    if (st == HC_OK && ftruncate(s->fd, (off_t)(s->room + s->end)) != 0)
        st = hc_error(HC_E_IO, "%s: cannot cut the file to its size: %s", s->tmp, strerror(errno));
    if (st == HC_OK && fsync(s->fd) != 0) st = hc_error(HC_E_IO, "%s: fsync failed: %s", s->tmp, strerror(errno));
    int fd = s->fd;
    s->fd = -1;
    if (close(fd) != 0 && st == HC_OK) st = hc_error(HC_E_IO, "%s: close failed: %s", s->tmp, strerror(errno));
    if (st == HC_OK && rename(s->tmp, s->path) != 0) st = hc_error(HC_E_IO, "%s: cannot rename to %s: %s", s->tmp, s->path, strerror(errno));
    if (st != HC_OK) {
        hc_gguf_stream_abort(s);
        return st;
    }
    stream_free(s);
    return HC_OK;
}

/* fuzz_util.h: what the libFuzzer harnesses and the seed writer share: the input as a file for APIs
 * that take paths, small sandbox limits, an input cursor, the oracles' abort, and test vocabularies. */
#ifndef HC_FUZZ_UTIL_H
#define HC_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hc/hc_status.h"
#include "lua_host.h"
#include "model.h"

/* An oracle's verdict: prints what broke and aborts, so that libFuzzer keeps the input as a crash. */
#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz oracle failed: %s (%s:%d): ", #cond, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* The bytes as a file: the path of one memfd of this process, rewritten at every call. */
const char *fuzz_file(const void *data, size_t size);
/* A path in this process's scratch folder (removed at exit), e.g. fuzz_tmp("rt.gguf"). */
const char *fuzz_tmp(const char *name);

/* The sandbox limits every harness runs scripts under: 10^5 instructions, 100 ms, 4 MiB (small, so
 * that the endless loops the fuzzer soon writes cost a millisecond, not a second). */
extern const hc_lua_limits fuzz_lua_limits;

/* Reading an input piece by piece; past the end everything reads as zero / empty. */
typedef struct fuzz_cursor {
    const uint8_t *p;
    size_t n;
} fuzz_cursor;

uint8_t fuzz_u8(fuzz_cursor *c);
uint32_t fuzz_u32(fuzz_cursor *c);
/* The next min(n, left) bytes (*got receives how many). */
const uint8_t *fuzz_bytes(fuzz_cursor *c, size_t n, size_t *got);
/* A malloc'd NUL-terminated copy of the next piece up to a 0 byte (consumed) or the end. */
char *fuzz_string(fuzz_cursor *c);

/* Oracle: every weight and branch of a loaded model lies inside the file it was mapped from (or in
 * a buffer the model owns, which ASan watches): ASan cannot see reads past a mapping. */
void fuzz_check_model_in_file(const hc_model *m);

/* Strict UTF-8: shortest forms, no surrogates, at most U+10FFFF. */
int fuzz_valid_utf8(const uint8_t *s, size_t n);
struct hc_tokenizer;
/* Encodes text plainly and with BOS and special tokens: every id in range and with a piece; with
 * round_trip, the plain pieces give the text back (behind SentencePiece's leading space). */
void fuzz_exercise_tokenizer(const struct hc_tokenizer *t, const uint8_t *text, size_t len, int round_trip);

/* The test vocabularies, written with the project's own code: a SentencePiece one (the vocabulary
 * `hcinfer synth` writes, from a tiny synthetic model) and a byte-level GPT-2 one (all 256 byte
 * tokens, some merges, ChatML's special tokens). Vocabulary-only GGUF files. */
hc_status fuzz_write_spm_vocab(const char *path);
hc_status fuzz_write_gpt2_vocab(const char *path);

#endif

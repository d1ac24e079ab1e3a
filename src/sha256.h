/* SHA-256 (FIPS 180-4), for deterministic cache UUIDs and ad-hoc code signatures. */
#ifndef DYLDKIT_SHA256_H
#define DYLDKIT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct dk_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} dk_sha256_ctx;

void dk_sha256_init(dk_sha256_ctx *s);
void dk_sha256_update(dk_sha256_ctx *s, const void *data, size_t n);
void dk_sha256_final(dk_sha256_ctx *s, uint8_t out[32]);
void dk_sha256(const void *data, size_t n, uint8_t out[32]);

#endif

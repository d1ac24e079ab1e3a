/*
 * Ad-hoc code signatures for the Mach-O images dyldkit writes (arm64 code
 * must be signed to load on macOS).  The format is the embedded signature of
 * xnu osfmk/kern/cs_blobs.h and <Security/CSCommon.h>: a big-endian SuperBlob
 * holding one CodeDirectory (version 0x20400, SHA-256 page hashes of 4 KiB
 * pages, no special slots), laid out exactly as ld64.lld writes it, so that a
 * file signed here is byte-identical to the same file signed by lld.
 * Internal API (used by the extractor).
 */
#ifndef DYLDKIT_CODESIGN_H
#define DYLDKIT_CODESIGN_H

#include "internal.h"

/* Values from xnu osfmk/kern/cs_blobs.h. */
#define CSMAGIC_CODEDIRECTORY 0xfade0c02u
#define CSMAGIC_EMBEDDED_SIGNATURE 0xfade0cc0u
#define CSSLOT_CODEDIRECTORY 0u
#define CS_SUPPORTSEXECSEG 0x20400u
#define CS_ADHOC 0x2u
#define CS_LINKER_SIGNED 0x20000u
#define CS_HASHTYPE_SHA256 2u
#define CS_SHA256_LEN 32u
#define CS_EXECSEG_MAIN_BINARY 0x1u

/* The only page size written: 4 KiB, what ld64 and lld use on every target. */
#define DK_CODESIGN_PAGE_SIZE 4096u
/* Longest identifier accepted (lld uses a file name, ld64 an install-name leaf). */
#define DK_CODESIGN_MAX_IDENTIFIER 1024u

/* The executable segment the CodeDirectory names (version 0x20400 fields). */
typedef struct dk_codesign_exec {
    uint64_t execSegBase;  /* file offset of __TEXT */
    uint64_t execSegLimit; /* its file size */
    uint64_t execSegFlags; /* CS_EXECSEG_MAIN_BINARY for MH_EXECUTE, else 0 */
} dk_codesign_exec;

/**
 * Bytes the signature of the file bytes [0, CODE_LIMIT) takes, a multiple of
 * 16: reserve this much at CODE_LIMIT (itself 16-byte aligned, the
 * LC_CODE_SIGNATURE dataoff) at the end of __LINKEDIT.  PAGE_SIZE must be
 * DK_CODESIGN_PAGE_SIZE.  Returns 0 when no signature can be written: a
 * CODE_LIMIT of 0 or above 4 GiB - 1 (dataoff is 32 bits), a NULL, empty or
 * over-long identifier, or another page size.
 */
uint64_t dk_codesign_size(uint64_t code_limit, const char *identifier, unsigned page_size);

/**
 * Write into OUT the ad-hoc signature of FILE[0, CODE_LIMIT) with IDENTIFIER;
 * EXEC may be NULL (no executable segment).  OUT_SIZE must be at least
 * dk_codesign_size(CODE_LIMIT, IDENTIFIER, DK_CODESIGN_PAGE_SIZE); bytes past
 * the blob are zeroed.  OUT may lie in the same buffer as FILE, at or after
 * CODE_LIMIT, but not inside the hashed bytes.  The CodeDirectory flags are
 * CS_ADHOC | CS_LINKER_SIGNED, as ld64 and lld write them: the signature is
 * the build tool's own (codesign(1) replaces it without --force) and carries
 * no entitlements or requirements.
 */
dk_status dk_codesign_write(const uint8_t *file, uint64_t code_limit, const char *identifier,
                            const dk_codesign_exec *exec, uint8_t *out, uint64_t out_size, dk_error *err);

/**
 * Ad-hoc sign the thin little-endian Mach-O in *DATA (*SIZE bytes, malloc'd):
 * add LC_CODE_SIGNATURE after the last load command (16 bytes of zeroed
 * header padding needed; DK_E_UNSUPPORTED when there are none) or reuse the
 * existing one and drop the signature it points to (it must be the last thing
 * in __LINKEDIT), then append the new signature at the end of __LINKEDIT,
 * 16-byte aligned, growing the segment's filesize (and vmsize where it no
 * longer covers the file data), and fill it in.  __LINKEDIT must be the last
 * segment in the file, with nothing after it.  On success *DATA may have been
 * reallocated and *SIZE is the new size; on failure both are unchanged and the
 * image is untouched.
 */
dk_status dk_codesign_adhoc_image(uint8_t **data, size_t *size, const char *identifier, dk_error *err);

#endif

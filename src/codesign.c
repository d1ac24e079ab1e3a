/*
 * Ad-hoc code signatures (src/codesign.h).  Structures follow xnu
 * osfmk/kern/cs_blobs.h (CS_SuperBlob, CS_BlobIndex, CS_CodeDirectory); every
 * field is big-endian.  The layout is the one ld64.lld writes
 * (CodeSignatureSection in lld/MachO/SyntheticSections.cpp), which the tests
 * compare byte for byte:
 *
 *   0    CS_SuperBlob   magic CSMAGIC_EMBEDDED_SIGNATURE, length, count 1
 *   12   CS_BlobIndex   type CSSLOT_CODEDIRECTORY, offset 24
 *   20   4 zero bytes   (the blob headers are rounded up to 8)
 *   24   CS_CodeDirectory, 88 bytes through execSegFlags (version 0x20400)
 *   112  identifier, NUL, zeros up to a multiple of 16   (identOffset 88)
 *   ...  nCodeSlots SHA-256 hashes, one per 4 KiB page  (hashOffset)
 *
 * No special slots: an ad-hoc signature needs neither a Requirements blob nor
 * an Info.plist hash, and ld64 and lld emit none.
 */
#include "codesign.h"

#include "macho_defs.h"
#include "sha256.h"

#include <stdint.h>
#include <stdio.h>

#define CS_BLOB_HEADERS 24u  /* sizeof(CS_SuperBlob) + one CS_BlobIndex = 20, rounded up to 8 */
#define CS_CD_SIZE 88u       /* CS_CodeDirectory up to end_withExecSeg */
#define CS_PAGE_SHIFT 12u    /* log2(DK_CODESIGN_PAGE_SIZE): CS_CodeDirectory.pageSize */

/* CS_CodeDirectory field offsets (cs_blobs.h) */
#define CD_magic 0
#define CD_length 4
#define CD_version 8
#define CD_flags 12
#define CD_hashOffset 16
#define CD_identOffset 20
#define CD_nSpecialSlots 24
#define CD_nCodeSlots 28
#define CD_codeLimit 32
#define CD_hashSize 36
#define CD_hashType 37
#define CD_platform 38
#define CD_pageSize 39
#define CD_execSegBase 64
#define CD_execSegLimit 72
#define CD_execSegFlags 80

static void wr32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static void wr64be(uint8_t *p, uint64_t v) { wr32be(p, (uint32_t)(v >> 32)); wr32be(p + 4, (uint32_t)v); }

static uint64_t align16(uint64_t v) { return (v + 15) & ~(uint64_t)15; }

/* Where everything goes in one signature. */
typedef struct cs_layout {
    size_t ident_len;     /* identifier bytes, without the NUL */
    uint32_t hash_offset; /* from the CodeDirectory */
    uint32_t nslots;      /* code slots: pages of [0, code_limit) */
    uint64_t size;        /* the whole SuperBlob */
} cs_layout;

/*
 * Lay out a signature.  Returns NULL when it can be written, else the reason
 * it cannot, and in *STATUS whether the identifier (DK_E_ARG) or the size
 * (DK_E_LIMIT) is at fault.
 */
static const char *cs_plan(uint64_t code_limit, const char *identifier, cs_layout *l, dk_status *status)
{
    *status = DK_E_ARG;
    if (!identifier || !identifier[0]) return "empty identifier";
    l->ident_len = strnlen(identifier, DK_CODESIGN_MAX_IDENTIFIER + 1);
    if (l->ident_len > DK_CODESIGN_MAX_IDENTIFIER) return "identifier longer than 1024 bytes";
    if (code_limit == 0) return "nothing to sign (code limit 0)";
    /* codeLimit, dataoff and every length in the SuperBlob are 32 bits */
    *status = DK_E_LIMIT;
    if (code_limit > UINT32_MAX) return "code limit above 4 GiB";
    uint64_t headers = align16(CS_BLOB_HEADERS + CS_CD_SIZE + l->ident_len + 1);
    uint64_t nslots = (code_limit + DK_CODESIGN_PAGE_SIZE - 1) >> CS_PAGE_SHIFT;
    l->nslots = (uint32_t)nslots;
    l->hash_offset = (uint32_t)(headers - CS_BLOB_HEADERS);
    l->size = headers + nslots * CS_SHA256_LEN; /* < 2^32 + 2^22: no overflow */
    if (l->size > UINT32_MAX || code_limit + l->size > UINT32_MAX) return "signature would end past 4 GiB";
    *status = DK_OK;
    return NULL;
}

uint64_t dk_codesign_size(uint64_t code_limit, const char *identifier, unsigned page_size)
{
    cs_layout l;
    dk_status st;
    if (page_size != DK_CODESIGN_PAGE_SIZE || cs_plan(code_limit, identifier, &l, &st)) return 0;
    return l.size;
}

dk_status dk_codesign_write(const uint8_t *file, uint64_t code_limit, const char *identifier,
                            const dk_codesign_exec *exec, uint8_t *out, uint64_t out_size, dk_error *err)
{
    if (!file || !out) return dk_fail(err, DK_E_ARG, "code signature: no %s buffer", file ? "output" : "input");
    cs_layout l;
    dk_status st;
    const char *why = cs_plan(code_limit, identifier, &l, &st);
    if (why) return dk_fail(err, st, "code signature: %s", why);
    if (out_size < l.size)
        return dk_fail(err, DK_E_ARG, "code signature: %llu bytes reserved, %llu needed", (unsigned long long)out_size,
                       (unsigned long long)l.size);
    /* the hashes must not cover the bytes being written */
    uintptr_t f = (uintptr_t)file, o = (uintptr_t)out;
    if (o < f + code_limit && f < o + out_size)
        return dk_fail(err, DK_E_ARG, "code signature: output overlaps the signed bytes [0, 0x%llx)",
                       (unsigned long long)code_limit);
    memset(out, 0, (size_t)out_size);

    /* CS_SuperBlob + CS_BlobIndex[1] */
    wr32be(out + 0, CSMAGIC_EMBEDDED_SIGNATURE);
    wr32be(out + 4, (uint32_t)l.size);
    wr32be(out + 8, 1);
    wr32be(out + 12, CSSLOT_CODEDIRECTORY);
    wr32be(out + 16, CS_BLOB_HEADERS);

    /* CS_CodeDirectory: spare2, scatterOffset, teamOffset, spare3 and codeLimit64 stay 0 */
    uint8_t *cd = out + CS_BLOB_HEADERS;
    wr32be(cd + CD_magic, CSMAGIC_CODEDIRECTORY);
    wr32be(cd + CD_length, (uint32_t)(l.size - CS_BLOB_HEADERS));
    wr32be(cd + CD_version, CS_SUPPORTSEXECSEG);
    wr32be(cd + CD_flags, CS_ADHOC | CS_LINKER_SIGNED);
    wr32be(cd + CD_hashOffset, l.hash_offset);
    wr32be(cd + CD_identOffset, CS_CD_SIZE);
    wr32be(cd + CD_nSpecialSlots, 0);
    wr32be(cd + CD_nCodeSlots, l.nslots);
    wr32be(cd + CD_codeLimit, (uint32_t)code_limit);
    cd[CD_hashSize] = CS_SHA256_LEN;
    cd[CD_hashType] = CS_HASHTYPE_SHA256;
    cd[CD_platform] = 0; /* not a platform binary */
    cd[CD_pageSize] = CS_PAGE_SHIFT;
    if (exec) {
        wr64be(cd + CD_execSegBase, exec->execSegBase);
        wr64be(cd + CD_execSegLimit, exec->execSegLimit);
        wr64be(cd + CD_execSegFlags, exec->execSegFlags);
    }
    memcpy(cd + CS_CD_SIZE, identifier, l.ident_len); /* NUL and padding already zero */

    uint8_t *hash = cd + l.hash_offset;
    for (uint32_t i = 0; i < l.nslots; i++, hash += CS_SHA256_LEN) {
        uint64_t off = (uint64_t)i << CS_PAGE_SHIFT;
        uint64_t n = code_limit - off < DK_CODESIGN_PAGE_SIZE ? code_limit - off : DK_CODESIGN_PAGE_SIZE;
        dk_sha256(file + off, (size_t)n, hash);
    }
    return DK_OK;
}

/* ------------------------------------------------------- signing an image */

/* What dk_codesign_adhoc_image needs to know about the image. */
typedef struct cs_image {
    bool is64;
    uint32_t cputype, filetype, ncmds, sizeofcmds;
    uint64_t lc_end;          /* header + sizeofcmds: where a new load command goes */
    uint64_t room_end;        /* first byte of file content after the header */
    char room_owner[64];      /* what starts there, for the error message */
    bool have_text;
    uint64_t text_fileoff, text_filesize;
    int64_t linkedit_lc;      /* offset of the __LINKEDIT segment command, -1 when none */
    uint64_t le_vmaddr, le_vmsize, le_fileoff, le_filesize;
    uint64_t max_other_end;   /* end of the file data of every other segment */
    int64_t cs_lc;            /* offset of LC_CODE_SIGNATURE, -1 when none */
    uint32_t cs_dataoff, cs_datasize;
} cs_image;

static bool is_zerofill(uint32_t flags)
{
    uint32_t t = flags & SECTION_TYPE;
    return t == S_ZEROFILL || t == S_GB_ZEROFILL || t == 0x12u /* S_THREAD_LOCAL_ZEROFILL */;
}

static void note_content(cs_image *im, uint64_t off, const char *what, const char *seg, const char *sect)
{
    if (off == 0 || off >= im->room_end) return;
    im->room_end = off;
    snprintf(im->room_owner, sizeof im->room_owner, "%s %s%s%s", what, seg, sect ? "," : "", sect ? sect : "");
}

/* Validate the header and every load command, and find what signing touches. */
static dk_status cs_scan(const uint8_t *p, size_t size, cs_image *im, dk_error *err)
{
    memset(im, 0, sizeof *im);
    im->linkedit_lc = im->cs_lc = -1;
    if (size < 4) return dk_fail(err, DK_E_MALFORMED, "code signature: %zu-byte file is not a Mach-O", size);
    uint32_t magic = dk_le32(p);
    if (magic == MH_CIGAM || magic == MH_CIGAM_64)
        return dk_fail(err, DK_E_UNSUPPORTED, "code signature: big-endian Mach-O files are not signed");
    if (dk_be32(p) == FAT_MAGIC || dk_be32(p) == FAT_MAGIC_64)
        return dk_fail(err, DK_E_ARG, "code signature: universal file; sign each slice on its own");
    if (magic != MH_MAGIC && magic != MH_MAGIC_64)
        return dk_fail(err, DK_E_MALFORMED, "code signature: bad Mach-O magic 0x%08x", magic);
    im->is64 = magic == MH_MAGIC_64;
    size_t hdr = im->is64 ? 32 : 28, align = im->is64 ? 8 : 4;
    if (size < hdr) return dk_fail(err, DK_E_MALFORMED, "code signature: mach header truncated (%zu bytes)", size);
    im->cputype = dk_le32(p + 4);
    im->filetype = dk_le32(p + 12);
    im->ncmds = dk_le32(p + 16);
    im->sizeofcmds = dk_le32(p + 20);
    if (!dk_range_ok(hdr, im->sizeofcmds, size))
        return dk_fail(err, DK_E_MALFORMED, "code signature: load commands (sizeofcmds %u) run past the %zu-byte file",
                       im->sizeofcmds, size);
    im->lc_end = hdr + im->sizeofcmds;
    im->room_end = size;
    snprintf(im->room_owner, sizeof im->room_owner, "the end of the file");

    uint64_t off = hdr;
    for (uint32_t i = 0; i < im->ncmds; i++) {
        if (im->lc_end - off < 8)
            return dk_fail(err, DK_E_MALFORMED, "code signature: load command %u at 0x%llx runs past sizeofcmds", i,
                           (unsigned long long)off);
        const uint8_t *lc = p + off;
        uint32_t cmd = dk_le32(lc), cmdsize = dk_le32(lc + 4);
        if (cmdsize < 8 || cmdsize % align || cmdsize > im->lc_end - off)
            return dk_fail(err, DK_E_MALFORMED, "code signature: load command %u (0x%x) at 0x%llx has bad cmdsize %u", i,
                           cmd, (unsigned long long)off, cmdsize);
        if (cmd == LC_SEGMENT_64 || cmd == LC_SEGMENT) {
            bool s64 = cmd == LC_SEGMENT_64;
            size_t seghdr = s64 ? 72 : 56, secsize = s64 ? 80 : 68;
            if (s64 != im->is64 || cmdsize < seghdr)
                return dk_fail(err, DK_E_MALFORMED, "code signature: bad segment command %u at 0x%llx", i,
                               (unsigned long long)off);
            char seg[17];
            dk_copy_name16(seg, lc + 8);
            uint64_t vmaddr = s64 ? dk_le64(lc + 24) : dk_le32(lc + 24);
            uint64_t vmsize = s64 ? dk_le64(lc + 32) : dk_le32(lc + 28);
            uint64_t fileoff = s64 ? dk_le64(lc + 40) : dk_le32(lc + 32);
            uint64_t filesize = s64 ? dk_le64(lc + 48) : dk_le32(lc + 36);
            uint32_t nsects = dk_le32(lc + (s64 ? 64 : 48));
            if (nsects > (cmdsize - seghdr) / secsize)
                return dk_fail(err, DK_E_MALFORMED, "code signature: segment %s: %u sections do not fit in cmdsize %u",
                               seg, nsects, cmdsize);
            if (!dk_range_ok(fileoff, filesize, size))
                return dk_fail(err, DK_E_MALFORMED, "code signature: segment %s file range 0x%llx+0x%llx is outside the "
                               "%zu-byte file", seg, (unsigned long long)fileoff, (unsigned long long)filesize, size);
            if (strcmp(seg, "__LINKEDIT") == 0) {
                if (im->linkedit_lc >= 0)
                    return dk_fail(err, DK_E_MALFORMED, "code signature: two __LINKEDIT segments");
                im->linkedit_lc = (int64_t)off;
                im->le_vmaddr = vmaddr;
                im->le_vmsize = vmsize;
                im->le_fileoff = fileoff;
                im->le_filesize = filesize;
            } else if (filesize && fileoff + filesize > im->max_other_end) {
                im->max_other_end = fileoff + filesize;
            }
            if (strcmp(seg, "__TEXT") == 0 && !im->have_text) {
                im->have_text = true;
                im->text_fileoff = fileoff;
                im->text_filesize = filesize;
            }
            if (filesize) note_content(im, fileoff, "segment", seg, NULL);
            for (uint32_t k = 0; k < nsects; k++) {
                const uint8_t *s = lc + seghdr + (size_t)k * secsize;
                uint64_t ssize = s64 ? dk_le64(s + 40) : dk_le32(s + 36);
                uint32_t soff = dk_le32(s + (s64 ? 48 : 40)), sflags = dk_le32(s + (s64 ? 64 : 56));
                if (!ssize || is_zerofill(sflags)) continue;
                char sect[17];
                dk_copy_name16(sect, s);
                note_content(im, soff, "section", seg, sect);
            }
        } else if (cmd == LC_CODE_SIGNATURE) {
            if (im->cs_lc >= 0) return dk_fail(err, DK_E_MALFORMED, "code signature: two LC_CODE_SIGNATURE commands");
            if (cmdsize != 16)
                return dk_fail(err, DK_E_MALFORMED, "code signature: LC_CODE_SIGNATURE at 0x%llx has cmdsize %u, not 16",
                               (unsigned long long)off, cmdsize);
            im->cs_lc = (int64_t)off;
            im->cs_dataoff = dk_le32(lc + 8);
            im->cs_datasize = dk_le32(lc + 12);
        }
        off += cmdsize;
    }
    if (off != im->lc_end)
        return dk_fail(err, DK_E_MALFORMED, "code signature: %u load commands end at 0x%llx, sizeofcmds says 0x%llx",
                       im->ncmds, (unsigned long long)off, (unsigned long long)im->lc_end);
    return DK_OK;
}

/* Fail unless the VM range [A, A+AN) holds no segment's start but __LINKEDIT's own. */
static dk_status cs_check_vm(const uint8_t *p, const cs_image *im, uint64_t a, uint64_t an, dk_error *err)
{
    uint64_t off = im->is64 ? 32 : 28;
    for (uint32_t i = 0; i < im->ncmds; i++) {
        const uint8_t *lc = p + off;
        uint32_t cmd = dk_le32(lc);
        if ((cmd == LC_SEGMENT_64 || cmd == LC_SEGMENT) && (int64_t)off != im->linkedit_lc) {
            bool s64 = cmd == LC_SEGMENT_64;
            uint64_t vmaddr = s64 ? dk_le64(lc + 24) : dk_le32(lc + 24);
            uint64_t vmsize = s64 ? dk_le64(lc + 32) : dk_le32(lc + 28);
            if (vmsize && vmaddr >= a && vmaddr - a < an) {
                char seg[17];
                dk_copy_name16(seg, lc + 8);
                return dk_fail(err, DK_E_UNSUPPORTED, "code signature: __LINKEDIT cannot grow to 0x%llx bytes: segment %s "
                               "starts at 0x%llx", (unsigned long long)an, seg, (unsigned long long)vmaddr);
            }
        }
        off += dk_le32(lc + 4);
    }
    return DK_OK;
}

dk_status dk_codesign_adhoc_image(uint8_t **data, size_t *size, const char *identifier, dk_error *err)
{
    if (!data || !*data || !size) return dk_fail(err, DK_E_ARG, "code signature: no image");
    const uint8_t *p = *data;
    cs_image im;
    dk_status st = cs_scan(p, *size, &im, err);
    if (st != DK_OK) return st;
    if (im.linkedit_lc < 0)
        return dk_fail(err, DK_E_UNSUPPORTED, "code signature: no __LINKEDIT segment to hold the signature");
    uint64_t le_end = im.le_fileoff + im.le_filesize;
    if (im.max_other_end > im.le_fileoff)
        return dk_fail(err, DK_E_UNSUPPORTED, "code signature: __LINKEDIT (file 0x%llx) is not the last segment in the "
                       "file (data up to 0x%llx)", (unsigned long long)im.le_fileoff, (unsigned long long)im.max_other_end);
    if (le_end != *size)
        return dk_fail(err, DK_E_UNSUPPORTED, "code signature: %llu bytes after the end of __LINKEDIT (0x%llx)",
                       (unsigned long long)(*size - le_end), (unsigned long long)le_end);

    /* The signed bytes end where the old signature started, or at the end of __LINKEDIT. */
    uint64_t base = le_end;
    if (im.cs_lc >= 0 && im.cs_datasize) {
        uint64_t cs_end = (uint64_t)im.cs_dataoff + im.cs_datasize;
        if (im.cs_dataoff < im.le_fileoff || cs_end > le_end || le_end - cs_end >= 16)
            return dk_fail(err, DK_E_UNSUPPORTED, "code signature: the existing signature (0x%x+%u) is not at the end of "
                           "__LINKEDIT (0x%llx-0x%llx)", im.cs_dataoff, im.cs_datasize,
                           (unsigned long long)im.le_fileoff, (unsigned long long)le_end);
        base = im.cs_dataoff;
    } else if (im.cs_lc < 0) {
        /* a new LC_CODE_SIGNATURE goes into the header padding, which must be free */
        if (im.lc_end + 16 > im.room_end)
            return dk_fail(err, DK_E_UNSUPPORTED, "code signature: no room in the header for LC_CODE_SIGNATURE: the load "
                           "commands end at 0x%llx and %s starts at 0x%llx (16 bytes needed)",
                           (unsigned long long)im.lc_end, im.room_owner, (unsigned long long)im.room_end);
        for (unsigned k = 0; k < 16; k++)
            if (p[im.lc_end + k])
                return dk_fail(err, DK_E_UNSUPPORTED, "code signature: no room in the header for LC_CODE_SIGNATURE: "
                               "byte 0x%llx after the load commands is not padding",
                               (unsigned long long)(im.lc_end + k));
    }
    uint64_t sig_off = align16(base);
    cs_layout l;
    const char *why = cs_plan(sig_off, identifier, &l, &st);
    if (why) return dk_fail(err, st, "code signature: %s", why);
    uint64_t sig_size = l.size;
    uint64_t new_size = sig_off + sig_size; /* < 2^32: checked by cs_plan */
    uint64_t le_filesize = new_size - im.le_fileoff;
    uint64_t le_vmsize = im.le_vmsize;
    if (im.le_vmsize == im.le_filesize) {
        /* lld's layout: __LINKEDIT's vmsize is its filesize */
        le_vmsize = le_filesize;
    } else if (le_vmsize < le_filesize) {
        /* ld64's: whole pages (16 KiB for arm64 targets, 4 KiB otherwise) */
        uint64_t page = (im.cputype & ~(CPU_ARCH_ABI64 | CPU_ARCH_ABI64_32)) == CPU_TYPE_ARM ? 0x4000 : 0x1000;
        le_vmsize = (le_filesize + page - 1) & ~(page - 1);
    }
    if (le_vmsize > im.le_vmsize) {
        uint64_t vm_limit = im.is64 ? UINT64_MAX : UINT32_MAX;
        if (le_vmsize > vm_limit || im.le_vmaddr > vm_limit - le_vmsize)
            return dk_fail(err, DK_E_UNSUPPORTED, "code signature: __LINKEDIT at 0x%llx cannot grow to 0x%llx bytes",
                           (unsigned long long)im.le_vmaddr, (unsigned long long)le_vmsize);
        st = cs_check_vm(p, &im, im.le_vmaddr, le_vmsize, err);
        if (st != DK_OK) return st;
    }
    if (new_size > SIZE_MAX) return dk_fail(err, DK_E_LIMIT, "code signature: image too large");

    /* Everything is checked: from here on the image only changes. */
    uint8_t *buf = *data;
    if (new_size > *size) {
        buf = realloc(*data, (size_t)new_size);
        if (!buf) return dk_fail(err, DK_E_NOMEM, "code signature: out of memory for a %llu-byte image",
                                 (unsigned long long)new_size);
    } else if (new_size < *size) {
        uint8_t *q = realloc(*data, (size_t)new_size); /* only shrinks; keep the old block if that fails */
        if (q) buf = q;
    }
    if (new_size > base) memset(buf + base, 0, (size_t)(new_size - base));

    uint64_t cs_lc = im.cs_lc >= 0 ? (uint64_t)im.cs_lc : im.lc_end;
    if (im.cs_lc < 0) {
        dk_wr32le(buf + 16, im.ncmds + 1);
        dk_wr32le(buf + 20, im.sizeofcmds + 16);
        dk_wr32le(buf + cs_lc, LC_CODE_SIGNATURE);
        dk_wr32le(buf + cs_lc + 4, 16);
    }
    dk_wr32le(buf + cs_lc + 8, (uint32_t)sig_off);
    dk_wr32le(buf + cs_lc + 12, (uint32_t)sig_size);
    uint8_t *le = buf + im.linkedit_lc;
    if (im.is64) {
        dk_wr64le(le + 32, le_vmsize);
        dk_wr64le(le + 48, le_filesize);
    } else {
        dk_wr32le(le + 28, (uint32_t)le_vmsize);
        dk_wr32le(le + 36, (uint32_t)le_filesize);
    }

    dk_codesign_exec exec = {0, 0, 0};
    if (im.have_text) {
        exec.execSegBase = im.text_fileoff;
        exec.execSegLimit = im.text_filesize;
    }
    if (im.filetype == MH_EXECUTE) exec.execSegFlags = CS_EXECSEG_MAIN_BINARY;
    *data = buf;
    *size = (size_t)new_size;
    /* cannot fail: the identifier, limits and room were checked above */
    return dk_codesign_write(buf, sig_off, identifier, &exec, buf + sig_off, sig_size, err);
}

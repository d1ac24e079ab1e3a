/*
 * dyld cache slide info (v1..v5) on its own: dk_slide_parse and
 * dk_slide_foreach over a region built from the input, and dk_slide_decode
 * of raw words.  Input layout: byte 0 selects the pointer size (bit 0: 4
 * bytes) and the mapping address (bits 1-7), bytes 1-4 the blob size (LE),
 * then the blob, then the mapping's bytes.
 */
#include "fuzz.h"

static int slide_cb(void *ctx, const dk_slide_pointer *p)
{
    dk_slide_info *info = ctx;
    fz_sink += p->address + p->raw + p->target + p->page + p->next;
    dk_slide_pointer q;
    if (dk_slide_decode(info, p->address, p->raw, &q)) fz_sink += q.target;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5) return 0;
    uint32_t bsize = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 | (uint32_t)data[4] << 24;
    size_t rest = size - 5;
    if (bsize > rest) bsize = (uint32_t)rest;
    dk_slide_region r;
    memset(&r, 0, sizeof r);
    r.blob = data + 5;
    r.blob_size = bsize;
    r.data = data + 5 + bsize;
    r.data_size = rest - bsize;
    r.address = 0x180000000ull + ((uint64_t)(data[0] >> 1) << 14);
    r.pointer_size = (data[0] & 1) ? 4 : 8;
    r.name = "fuzz mapping";
    r.blob_file_offset = 5;
    dk_error e = {0};
    dk_slide_info info;
    dk_status st = dk_slide_parse(&r, &info, &e);
    fz_check(st, &e);
    if (st == DK_OK) {
        for (uint32_t i = 0; i < info.page_starts_count && i < 64; i++) fz_sink += dk_slide_page_start(&info, i);
        for (uint32_t i = 0; i < info.page_extras_count && i < 64; i++) fz_sink += dk_slide_page_extra(&info, i);
        st = dk_slide_foreach(&r, slide_cb, &info, &e);
        fz_check(st, &e);
    }
    return 0;
}

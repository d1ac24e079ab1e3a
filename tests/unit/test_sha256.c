/* SHA-256: FIPS 180-4 test vectors and buffering, on whichever block
 * function this CPU uses (SHA-NI on x86_64 when present); the suite runs
 * this program twice, the second time with DK_SHA256_PORTABLE=1. */
#include "unit.h"

#include "sha256.h"

#include <unistd.h>

static void hex(const uint8_t d[32], char out[65])
{
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check_vec(const void *data, size_t n, const char *want)
{
    uint8_t d[32];
    char h[65];
    dk_sha256(data, n, d);
    hex(d, h);
    CHECK_STR(h, want);
}

int main(int argc, char **argv)
{
    (void)argc;
    check_vec("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_vec("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_vec("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    size_t big = 1000000;
    uint8_t *a = malloc(big);
    CHECK(a != NULL);
    if (!a) return 1;
    memset(a, 'a', big);
    check_vec(a, big, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* the same digest whatever the update() chunking: every length 0..300 in
     * uneven pieces against one call */
    uint32_t x = 12345;
    for (size_t i = 0; i < big; i++) {
        x = x * 1103515245u + 12345u;
        a[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n <= 300; n++) {
        uint8_t one[32], many[32];
        dk_sha256(a, n, one);
        dk_sha256_ctx s;
        dk_sha256_init(&s);
        for (size_t off = 0, k = 1; off < n; off += k, k = k * 3 % 97 + 1)
            dk_sha256_update(&s, a + off, off + k <= n ? k : n - off);
        dk_sha256_final(&s, many);
        CHECK(memcmp(one, many, 32) == 0);
    }
    free(a);
    /* once more with the portable block function */
    if (!unit_failures && !getenv("DK_SHA256_PORTABLE")) {
        printf("sha256: %d checks passed, again with DK_SHA256_PORTABLE=1\n", unit_checks);
        fflush(stdout);
        setenv("DK_SHA256_PORTABLE", "1", 1);
        execv("/proc/self/exe", argv);
    }
    return unit_finish("sha256");
}

/*
 * A minimal unit-test harness: CHECK records a failure and goes on, the
 * process exits non-zero if any check failed.  Each tests/unit/test_*.c is its
 * own program (built by `make unit`, run by `make test`).
 */
#ifndef DYLDKIT_UNIT_H
#define DYLDKIT_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failures, unit_checks;

#define CHECK(cond)                                                                                  \
    do {                                                                                             \
        unit_checks++;                                                                               \
        if (!(cond)) {                                                                               \
            unit_failures++;                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                            \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                           \
    do {                                                                                             \
        unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);             \
        unit_checks++;                                                                               \
        if (va_ != vb_) {                                                                            \
            unit_failures++;                                                                         \
            fprintf(stderr, "%s:%d: %s == %s failed: 0x%llx != 0x%llx\n", __FILE__, __LINE__, #a, #b, \
                    va_, vb_);                                                                       \
        }                                                                                            \
    } while (0)

#define CHECK_STR(a, b)                                                                              \
    do {                                                                                             \
        const char *sa_ = (a), *sb_ = (b);                                                           \
        unit_checks++;                                                                               \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                                 \
            unit_failures++;                                                                         \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
                    sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                                     \
        }                                                                                            \
    } while (0)

static inline int unit_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}

#endif

/*
 * A fork server for the dyldkit CLI, for fuzz/cli_mutations.py: the sanitizer
 * runtime starts once, and each request runs the real CLI main() in a fresh
 * forked child (stdout and stderr captured), which keeps a sanitizer build's
 * per-run start-up cost (tens of milliseconds) out of 100,000+ runs.
 *
 * Protocol (stdin -> stdout), one request at a time:
 *   request:  the arguments after "dyldkit", separated by 0x1F, then '\n'
 *   response: "<status> <signal> <wall_us> <cpu_us> <outlen> <errlen>\n",
 *             then OUTLEN bytes of stdout and ERRLEN bytes of stderr (each
 *             kept whole up to 256 MiB, so that a large --json document of an
 *             unmutated corpus file can be checked; beyond that it is drained
 *             and cut).
 * STATUS is the exit status (-1 when killed by a signal, SIGNAL then names
 * it; a run longer than DK_CLI_TIMEOUT seconds, default 60, is killed with
 * SIGKILL).  CPU is the child's user+system time.
 *
 * tools/dyldkit.c is compiled with -Dmain=dyldkit_cli_main for this binary.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int dyldkit_cli_main(int argc, char **argv);

#define KEEP ((size_t)256 << 20)
#define MAX_ARGS 64

typedef struct capture {
    int fd;
    char *buf;
    size_t len, size;
    int open;
} capture;

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void drain(capture *c)
{
    char tmp[65536];
    ssize_t n = read(c->fd, tmp, sizeof tmp);
    if (n <= 0) {
        if (n < 0 && errno == EINTR) return;
        close(c->fd);
        c->open = 0;
        return;
    }
    if (c->size - c->len < (size_t)n && c->size < KEEP) {
        size_t size = c->size * 2 < KEEP ? c->size * 2 : KEEP;
        char *buf = realloc(c->buf, size);
        if (!buf) abort();
        c->buf = buf;
        c->size = size;
    }
    size_t room = c->size - c->len, take = (size_t)n < room ? (size_t)n : room;
    memcpy(c->buf + c->len, tmp, take);
    c->len += take;
}

static int serve(char *line, double timeout)
{
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "dyldkit";
    for (char *p = line, *q; p && argc <= MAX_ARGS; p = q) {
        q = strchr(p, 0x1F);
        if (q) *q++ = 0;
        argv[argc++] = p;
    }
    argv[argc] = NULL;
    int po[2], pe[2];
    if (pipe(po) || pipe(pe)) return -1;
    fflush(stdout);
    long long t0 = now_us();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        exit(dyldkit_cli_main(argc, argv));
    }
    close(po[1]);
    close(pe[1]);
    capture cap[2] = {{po[0], malloc(1u << 16), 0, 1u << 16, 1}, {pe[0], malloc(1u << 16), 0, 1u << 16, 1}};
    if (!cap[0].buf || !cap[1].buf) abort();
    int killed = 0;
    while (cap[0].open || cap[1].open) {
        struct pollfd fds[2];
        int n = 0, idx[2];
        for (int k = 0; k < 2; k++)
            if (cap[k].open) {
                fds[n].fd = cap[k].fd;
                fds[n].events = POLLIN;
                idx[n++] = k;
            }
        int r = poll(fds, (nfds_t)n, 100);
        if (r > 0)
            for (int k = 0; k < n; k++)
                if (fds[k].revents) drain(&cap[idx[k]]);
        if (!killed && (double)(now_us() - t0) / 1e6 > timeout) {
            kill(pid, SIGKILL);
            killed = 1;
        }
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    long long wall = now_us() - t0;
    long long cpu = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + (long long)ru.ru_stime.tv_sec * 1000000 +
                    ru.ru_stime.tv_usec;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    printf("%d %d %lld %lld %zu %zu\n", code, sig, wall, cpu, cap[0].len, cap[1].len);
    fwrite(cap[0].buf, 1, cap[0].len, stdout);
    fwrite(cap[1].buf, 1, cap[1].len, stdout);
    fflush(stdout);
    free(cap[0].buf);
    free(cap[1].buf);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *t = getenv("DK_CLI_TIMEOUT");
    double timeout = t ? atof(t) : 60;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n') line[n - 1] = 0;
        if (serve(line, timeout)) {
            perror("cli_server");
            return 1;
        }
    }
    free(line);
    return 0;
}

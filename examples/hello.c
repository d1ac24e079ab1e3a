/* The example embedded in dyldkit's repository: a tiny program with a lazy
 * stub (printf), a pointer table (rebases) and an exported function.  Built
 * without an SDK, so the one libc function it uses is declared here. */
int printf(const char *fmt, ...);

int greet(const char *who);
const char *names[] = {"world", "dyld", "Mach-O"};

int greet(const char *who) { return printf("hello, %s\n", who); }

int main(void)
{
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) greet(names[i]);
    return 0;
}

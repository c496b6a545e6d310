#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cli.h"
#include "core/fault_guard.h"
#include "core/json.h"
#include "core/ordered.h"
#include "core/rng.h"
#include "core/outfile.h"
#include "core/tokens.h"
#include "core/u64map.h"
#include "test.h"

/* ---- the ordered pipeline commits in input order whatever the threads ---- */
typedef struct seq_batch {
    long value;
    long result;
} seq_batch;

typedef struct seq_ctx {
    long next, limit, committed_upto;
    int out_of_order;
} seq_ctx;

static int seq_produce(void *ctx, void *batch)
{
    seq_ctx *c = ctx;
    if (c->next == c->limit)
        return 0;
    ((seq_batch *)batch)->value = c->next++;
    return 1;
}

static void seq_work(void *ctx, void *batch, int worker)
{
    seq_batch *b = batch;
    /* uneven work so batches finish out of order */
    volatile long x = 0;
    for (long i = 0; i < (b->value % 7) * 20000; i++)
        x += i;
    b->result = b->value * 2;
}

static int seq_commit(void *ctx, void *batch)
{
    seq_ctx *c = ctx;
    seq_batch *b = batch;
    if (b->result != c->committed_upto * 2)
        c->out_of_order = 1;
    c->committed_upto++;
    return b->value == 500 && c->limit == 1000 ? 7 : 0;  /* stop early on request */
}

TEST(ordered_pipeline_keeps_order)
{
    for (int threads = 1; threads <= 4; threads++) {
        seq_ctx c = {0, 300, 0, 0};
        seq_batch batches[10];
        void *ptrs[10];
        for (int i = 0; i < 10; i++)
            ptrs[i] = &batches[i];
        dsk_ordered_ops ops = {&c, seq_produce, seq_work, seq_commit};
        CHECK(dsk_ordered_run(&ops, ptrs, threads > 1 ? 10 : 1, threads) == 0);
        CHECK(c.committed_upto == 300);
        CHECK(!c.out_of_order);
    }
}

TEST(ordered_pipeline_stops_on_commit_error)
{
    seq_ctx c = {0, 1000, 0, 0};
    seq_batch batches[6];
    void *ptrs[6];
    for (int i = 0; i < 6; i++)
        ptrs[i] = &batches[i];
    dsk_ordered_ops ops = {&c, seq_produce, seq_work, seq_commit};
    CHECK(dsk_ordered_run(&ops, ptrs, 6, 3) == 7);
    CHECK(c.committed_upto == 501);
}

/* ---- atomic output files ---- */
TEST(outfile_commit_and_abort)
{
    char dir[] = "/tmp/dsk-out-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/result.txt", dir);
    dsk_outfile f;
    dsk_err err = {0};
    CHECK(dsk_outfile_open(&f, path, &err) == 0);
    fputs("hello\n", f.fp);
    struct stat st;
    CHECK(stat(path, &st) != 0);  /* not visible before commit */
    CHECK(dsk_outfile_commit(&f, &err) == 0);
    CHECK(stat(path, &st) == 0 && st.st_size == 6);

    CHECK(dsk_outfile_open(&f, path, &err) == 0);
    fputs("partial", f.fp);
    dsk_outfile_abort(&f);
    CHECK(stat(path, &st) == 0 && st.st_size == 6);  /* the old file is untouched */
    unlink(path);
    CHECK(rmdir(dir) == 0);                           /* and no temporary is left */

    CHECK(dsk_outfile_open(&f, "/nonexistent/dir/x", &err) == EX_CANTCREAT);
}

/* ---- hash map ---- */
TEST(u64map_upsert_find_grow)
{
    dsk_u64map m;
    dsk_u64map_init(&m, 4);
    for (uint64_t i = 0; i < 10000; i++)
        *dsk_u64map_upsert(&m, i * 7919, NULL) = i;
    CHECK(m.count == 10000);
    int ok = 1;
    for (uint64_t i = 0; i < 10000; i++) {
        uint64_t *v = dsk_u64map_find(&m, i * 7919);
        ok &= v && *v == i;
    }
    CHECK(ok);
    CHECK(dsk_u64map_find(&m, 3) == NULL);
    /* keys with high bits set, across many growths (a grown table once
     * placed entries where lookups did not look) */
    dsk_u64map big;
    dsk_u64map_init(&big, 1);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 50000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        *dsk_u64map_upsert(&big, x, NULL) = (uint64_t)i;
    }
    x = 88172645463325252ull;
    int found = 1;
    for (int i = 0; i < 50000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t *v = dsk_u64map_find(&big, x);
        found &= v && *v == (uint64_t)i;
    }
    CHECK(found);
    CHECK(big.count == 50000);
    dsk_u64map_free(&big);
    dsk_u64map_clear(&m, 10);
    CHECK(m.count == 0 && dsk_u64map_find(&m, 7919) == NULL);
    dsk_u64map_free(&m);
}

/* ---- JSON ---- */
static char *parse_text(const char *json)
{
    char msg[160];
    struct json_object *o = dsk_json_parse(json, strlen(json), msg, sizeof msg);
    if (!o)
        return strdup(msg);
    char *s = strdup(json_object_get_string(json_object_object_get(o, "t")));
    json_object_put(o);
    return s;
}

/* Doubles in the fewest digits that read back, and still doubles. */
TEST(json_doubles_are_written_short)
{
    static const struct { double v; const char *text; } cases[] = {
        {0.95, "0.95"}, {1.0, "1.0"}, {-0.0, "-0.0"}, {0.1 + 0.2, "0.30000000000000004"}, {1e-7, "1e-07"},
        {1e300, "1e+300"}, {2.8573895665420883, "2.8573895665420883"}, {123456789.0, "123456789.0"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct json_object *o = dsk_json_new_double(cases[i].v);
        dsk_buf b = {0};
        dsk_json_append(o, &b);
        dsk_buf_addc(&b, 0);
        CHECK_STR(b.data, cases[i].text);
        CHECK(json_object_get_double(o) == cases[i].v);
        char msg[64];
        struct json_object *back = dsk_json_parse(b.data, strlen(b.data), msg, sizeof msg);
        CHECK(back && json_object_is_type(back, json_type_double) && json_object_get_double(back) == cases[i].v);
        json_object_put(back);
        json_object_put(o);
        dsk_buf_free(&b);
    }
}

TEST(json_surrogate_pairs_decode)
{
    /* U+2D847 (CJK Extension C): json-c 0.16 alone gives U+FFFD */
    char *s = parse_text("{\"t\":\"\\ud876\\udc47\"}");
    CHECK_STR(s, "\xF0\xAD\xA1\x87");
    free(s);
    s = parse_text("{\"t\":\"\\ud83c\\udf89 \\u00e9\"}");  /* others still go to json-c */
    CHECK_STR(s, "\xF0\x9F\x8E\x89 \xC3\xA9");
    free(s);
    s = parse_text("{\"t\":\"\\\\ud876\\\\udc47\"}");  /* escaped backslashes: plain text */
    CHECK_STR(s, "\\ud876\\udc47");
    free(s);
}

TEST(json_lossy_escapes_are_found)
{
    static const char *const lossy[] = {"{\"a\\u0000b\":1}", "[\"\\ud800\"]", "[\"\\ud800x\"]", "[\"\\udc00\"]",
                                        "[\"\\ud800\\n\"]", "[\"\\ud800\\u0041\"]", "[\"a\\uD83D\"]"};
    static const char *const fine[] = {"{\"a\":\"\\ud83d\\ude00\"}", "[\"\\\\u0000\"]", "[\"\\u0001\", \"\\\"\\\\\"]",
                                       "[1, \"u0000\"]", "{\"k\":\"\\uD83D\\uDE00x\"}"};
    for (size_t i = 0; i < sizeof lossy / sizeof *lossy; i++) {
        if (!dsk_json_has_lossy_escape(lossy[i], strlen(lossy[i])))
            printf("#   not found in %s\n", lossy[i]);
        CHECK(dsk_json_has_lossy_escape(lossy[i], strlen(lossy[i])));
    }
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        if (dsk_json_has_lossy_escape(fine[i], strlen(fine[i])))
            printf("#   found in %s\n", fine[i]);
        CHECK(!dsk_json_has_lossy_escape(fine[i], strlen(fine[i])));
    }
}

TEST(json_errors_name_the_column)
{
    char *s = parse_text("{\"t\": tru}");
    CHECK(strstr(s, "column") != NULL);
    free(s);
    s = parse_text("{\"t\":1} x");
    CHECK(strstr(s, "at column 9") != NULL);  /* trailing text */
    free(s);
    s = parse_text("{\"t\":\"abc");
    CHECK(strstr(s, "unexpected end") != NULL);
    free(s);
    s = parse_text("null");   /* was "success at column 5" */
    CHECK_STR(s, "null, not a JSON object");
    free(s);
}

/* A value that ends the text needs no delimiter after it. */
TEST(json_scalars_at_the_end)
{
    const char *texts[] = {"5", "-1.5e3", "true", " 7 ", "\"s\""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char msg[160] = "";
        struct json_object *o = dsk_json_parse(texts[i], strlen(texts[i]), msg, sizeof msg);
        CHECK(o != NULL);
        json_object_put(o);
    }
    char msg[160];
    struct json_object *five = dsk_json_parse("5", 1, msg, sizeof msg);
    CHECK(five && json_object_get_int(five) == 5);
    json_object_put(five);
    CHECK(dsk_json_parse("12x", 3, msg, sizeof msg) == NULL);
}

/* A raw control character in a string is not JSON (json-c takes it);
 * escaped, or outside strings as whitespace, it is. */
TEST(json_raw_control_characters_in_strings_are_refused)
{
    const char *bad[] = {"{\"t\":\"a\tb\"}", "{\"t\":\"a\nb\"}", "{\"t\":\"\x01\"}", "[\"x\\\"\x1f\"]",
                         "{\"k\x7f\":1,\"k\x0b\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char msg[160] = "";
        struct json_object *o = dsk_json_parse(bad[i], strlen(bad[i]), msg, sizeof msg);
        CHECK(o == NULL && strstr(msg, "raw control character") != NULL);
        json_object_put(o);
    }
    char *s = parse_text("{\n\t\"t\": \"a\\tb\\n\\u0001\x7f\"\n}");
    CHECK_STR(s, "a\tb\n\x01\x7f");
    free(s);
    char msg[160] = "";
    /* json-c's other leniencies: single-quoted strings; and a byte-order mark said as one */
    CHECK(dsk_json_parse("{\"t\":'a'}", 9, msg, sizeof msg) == NULL);
    CHECK(dsk_json_parse("{'v':1}", 7, msg, sizeof msg) == NULL && strstr(msg, "single-quoted") != NULL);
    CHECK(dsk_json_parse("\xEF\xBB\xBF{}", 5, msg, sizeof msg) == NULL && strstr(msg, "byte-order mark") != NULL);
    /* a raw NUL, in a string or not, is named (json-c took it for the end: "unexpected end of data") */
    CHECK(dsk_json_parse("{\"a\":\"x\0y\"}", 11, msg, sizeof msg) == NULL && strstr(msg, "a NUL byte at column 8"));
    char *apos = parse_text("{\"t\":\"it's\"}");
    CHECK_STR(apos, "it's");
    free(apos);
    const char *one = "{\"t\":\"ab\x02\"}";
    CHECK(dsk_json_parse(one, strlen(one), msg, sizeof msg) == NULL);
    CHECK_STR(msg, "a raw control character (U+0002) in a string at column 9 (JSON needs it escaped)");
}

/* Numbers json-c would change or write back as non-JSON are refused; the
 * 64-bit limits themselves, NaN and Infinity pass. */
TEST(json_numbers_pass_unchanged_or_are_refused)
{
    const char *bad[] = {"{\"n\":12345678901234567890123}", "{\"n\":-9223372036854775809}",
                         "{\"n\":18446744073709551616}", "{\"n\":[1, {\"m\":1.}]}", "{\"n\":1.e5}",
                         /* the limit's digits inside a longer number, or in a string, do not make it fit */
                         "{\"n\":184467440737095516159}", "{\"n\":-92233720368547758089}",
                         "{\"s\":\"18446744073709551615\",\"n\":99999999999999999999999}",
                         "{\"n\":-.5}", "{\"n\":-.5e3}", "{\"n\":-01}", "{\"s\":\"a\\\"b\",\"n\":1.}"};
    const char *good[] = {"{\"n\":18446744073709551615}", "{\"n\":9223372036854775807}",
                          "{\"n\":-9223372036854775808}", "{\"n\":NaN}", "{\"n\":-1.25e-3}", "{\"n\":1e400}",
                          "{\"n\":-Infinity}", "{\"n\":0.5E+2}"};
    char msg[160];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct json_object *o = dsk_json_parse(bad[i], strlen(bad[i]), msg, sizeof msg);
        CHECK(o == NULL);
        json_object_put(o);
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        struct json_object *o = dsk_json_parse(good[i], strlen(good[i]), msg, sizeof msg);
        CHECK(o != NULL);
        if (o) {   /* written back as given */
            char want[64];
            snprintf(want, sizeof want, "{\"n\":%s}", strchr(good[i], ':') + 1);
            want[strlen(want) - 1] = '\0';
            CHECK_STR(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), want);
        }
        json_object_put(o);
    }
}

/* Stored token words are little-endian at any alignment; both directions
 * return the largest id, whatever its position and the run's length. */
TEST(tokens_widen_and_narrow)
{
    uint8_t bytes[4 * 70 + 1];
    uint32_t ids[70], back[70];
    for (unsigned width = 2; width <= 4; width += 2) {
        for (size_t n = 0; n <= 70; n += 7) {
            for (size_t peak = 0; peak < (n ? n : 1); peak += 5) {
                uint32_t want = 0;
                for (size_t i = 0; i < n; i++) {
                    ids[i] = (uint32_t)(i * 2654435761u) % (width == 2 ? 60000u : 3000000u);
                    if (i == peak)
                        ids[i] = width == 2 ? 65535u : 0x01020304u;
                    want = ids[i] > want ? ids[i] : want;
                }
                uint8_t *at = bytes + 1;  /* odd address: unaligned words */
                CHECK(dsk_tokens_narrow(at, ids, n, width) == want);
                for (size_t i = 0; i < n; i++)  /* lowest byte first */
                    CHECK(at[i * width] == (ids[i] & 0xff) && at[i * width + 1] == ((ids[i] >> 8) & 0xff));
                memset(back, 0xee, sizeof back);
                CHECK(dsk_tokens_widen(back, at, n, width) == want);
                CHECK(n == 0 || memcmp(back, ids, n * 4) == 0);
                CHECK(n == 70 || back[n] == 0xeeeeeeeeu);  /* nothing past n written */
            }
        }
    }
    uint32_t wide = 70000;  /* over 2 bytes: the largest says so */
    CHECK(dsk_tokens_narrow(bytes, &wide, 1, 2) == 70000);
}

/* dsk_rng_normal_fill gives the bits of n calls of dsk_rng_normal, scaled
 * and rounded to float, and leaves the generator where they would: over
 * several chunks (with OpenMP's threads), and for 0 and 1 values. */
TEST(rng_normal_fill_is_the_sequential_stream)
{
    static const size_t lens[] = {0, 1, 4095, 300001};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++) {
        size_t n = lens[li];
        dsk_rng a, b;
        dsk_rng_seed(&a, 7 + li);
        b = a;
        float *want = malloc((n + 1) * sizeof *want), *got = malloc((n + 1) * sizeof *got);
        for (size_t i = 0; i < n; i++)
            want[i] = (float)(0.02 * dsk_rng_normal(&a));
        got[n] = want[n] = 1.5f;
        dsk_rng_normal_fill(&b, got, n, 0.02);
        CHECK(memcmp(got, want, (n + 1) * sizeof *got) == 0);   /* and nothing past n */
        CHECK(memcmp(&a, &b, sizeof a) == 0);
        free(want), free(got);
    }
}

/* ---- a memory fault inside a region returns to it; outside, it still kills ---- */
static int read_in_region(const volatile char *p, dsk_fault_region *fr)
{
    dsk_fault_enter(fr);
    if (sigsetjmp(fr->jmp, 0)) {
        dsk_fault_leave(fr);
        return -1;
    }
    int v = *p;
    dsk_fault_leave(fr);
    return v;
}

static void exit_42(int sig) { _exit(42); }

/* In a child, before any region of this process: the action set here is
 * the one a fault outside a region must reach, with its own flags. */
static int child_status(struct sigaction *before, int send)
{
    char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sigaction(SIGSEGV, before, NULL);
        dsk_fault_region fr;
        dsk_fault_enter(&fr);   /* installs the handler over `before` */
        dsk_fault_leave(&fr);
        if (send)
            raise(SIGSEGV);     /* sent, not a fault */
        else
            *(volatile char *)none = 1;
        _exit(7);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    munmap(none, 4096);
    return status;
}

TEST(fault_outside_a_region_reaches_the_earlier_action)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = exit_42;
    sa.sa_flags = SA_RESETHAND;
    int st = child_status(&sa, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42);
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = 0;
    st = child_status(&sa, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    /* an ignored SIGSEGV sent with raise() stays ignored */
    sa.sa_handler = SIG_IGN;
    st = child_status(&sa, 1);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
}

TEST(fault_region_catches_segv_and_bus)
{
    long page = sysconf(_SC_PAGESIZE);
    char *none = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(none != MAP_FAILED);
    dsk_fault_region fr, outer;
    CHECK(read_in_region(none, &fr) == -1 && fr.sig == SIGSEGV);
    /* A second fault is caught as well (the signal is not left blocked). */
    CHECK(read_in_region(none, &fr) == -1 && fr.sig == SIGSEGV);
    /* Past the end of a mapped file: SIGBUS. */
    char path[] = "/tmp/dsk-fault-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "x", 1) == 1);
    char *file = mmap(NULL, 2 * (size_t)page, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(file != MAP_FAILED);
    CHECK(read_in_region(file, &fr) == 'x' && fr.sig == 0);
    CHECK(read_in_region(file + page, &fr) == -1 && fr.sig == SIGBUS);
    /* Nested: the inner region gets the fault, the outer one stays marked. */
    dsk_fault_enter(&outer);
    if (sigsetjmp(outer.jmp, 0) == 0) {
        CHECK(read_in_region(none, &fr) == -1);
        dsk_fault_leave(&outer);
        CHECK(outer.sig == 0);
    } else {
        CHECK(!"the outer region got the inner fault");
    }
    /* The start of a file's mapping, from a pointer into any part of it */
    struct stat sb;
    CHECK(fstat(fd, &sb) == 0);
    const void *start = NULL;
    CHECK(dsk_mapping_of(file + page + 10, sb.st_dev, sb.st_ino, &start) == 0 && start == file);
    CHECK(mprotect(file + page, (size_t)page, PROT_NONE) == 0);   /* two lines in /proc/self/maps now */
    start = NULL;
    CHECK(dsk_mapping_of(file + page + 10, sb.st_dev, sb.st_ino, &start) == 0 && start == file);
    CHECK(dsk_mapping_of(file + 10, sb.st_dev, sb.st_ino + 1, &start) == -1);   /* another file's */
    CHECK(dsk_mapping_of(NULL, sb.st_dev, sb.st_ino, &start) == -1);
    munmap(file, 2 * (size_t)page);
    munmap(none, (size_t)page);
    close(fd);
    unlink(path);
}

RUN_TESTS(T(fault_outside_a_region_reaches_the_earlier_action), T(fault_region_catches_segv_and_bus), T(json_doubles_are_written_short), T(json_surrogate_pairs_decode), T(json_lossy_escapes_are_found), T(json_errors_name_the_column), T(json_scalars_at_the_end), T(json_numbers_pass_unchanged_or_are_refused), T(json_raw_control_characters_in_strings_are_refused), T(ordered_pipeline_keeps_order), T(ordered_pipeline_stops_on_commit_error), T(outfile_commit_and_abort),
          T(u64map_upsert_find_grow), T(tokens_widen_and_narrow), T(rng_normal_fill_is_the_sequential_stream))

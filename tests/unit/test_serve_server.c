/* dsk-serve's HTTP server before its model is ready: it listens at once,
 * /health answers 503 "loading" (what a Kubernetes readiness probe waits
 * on), the API answers 503 with OpenAI's error object and Retry-After,
 * /metrics and the chat page are served, and stopping it without a model
 * is clean.  Requests go over a real loopback socket. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "serve/server.h"
#include "test.h"

/* One HTTP/1.0 request; the whole response (status line, headers, body). */
static int http(int port, const char *method, const char *path, const char *body, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return -1;
    char req[1024];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s", method, path, strlen(body), body);
    if (write(fd, req, (size_t)n) != n)
        return -1;
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = 0;
    close(fd);
    return 0;
}

TEST(loading_answers_503)
{
    dsk_server_opts o = {0};
    o.port = 0;
    dsk_err err = {0};
    dsk_server *s = dsk_server_start(&o, &err);
    CHECK(s != NULL);
    if (!s)
        return;
    int port = dsk_server_port(s);
    CHECK(port > 0);
    char r[16384];
    CHECK(http(port, "GET", "/health", "", r, sizeof r) == 0);
    CHECK(strstr(r, " 503 ") != NULL && strstr(r, "{\"status\":\"loading\"}") != NULL);
    CHECK(strstr(r, "Retry-After: 1") != NULL);
    CHECK(http(port, "POST", "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", r,
               sizeof r) == 0);
    CHECK(strstr(r, " 503 ") != NULL && strstr(r, "\"code\":\"model_loading\"") != NULL);
    CHECK(strstr(r, "\"type\":\"server_error\"") != NULL);
    CHECK(http(port, "GET", "/v1/models", "", r, sizeof r) == 0);
    CHECK(strstr(r, " 503 ") != NULL);
    CHECK(http(port, "GET", "/metrics", "", r, sizeof r) == 0);
    CHECK(strstr(r, " 200 ") != NULL && strstr(r, "dsk:requests_total{endpoint=\"/health\",status=\"503\"} 1") != NULL);
    CHECK(http(port, "GET", "/", "", r, sizeof r) == 0);
    CHECK(strstr(r, " 200 ") != NULL && strstr(r, "<title>dsk-serve</title>") != NULL);
    dsk_server_stop(s, 0);
}

TEST(bad_host_and_busy_port)
{
    dsk_server_opts o = {0};
    o.host = "localhost";   /* a name, not an IPv4 address */
    dsk_err err = {0};
    CHECK(dsk_server_start(&o, &err) == NULL && err.code == EX_USAGE);
    o.host = NULL;
    o.port = 0;
    dsk_server *a = dsk_server_start(&o, &err);
    CHECK(a != NULL);
    if (!a)
        return;
    o.port = dsk_server_port(a);
    err = (dsk_err){0};
    CHECK(dsk_server_start(&o, &err) == NULL && err.code == EX_UNAVAILABLE);
    dsk_server_stop(a, 0);
}

RUN_TESTS(T(loading_answers_503), T(bad_host_and_busy_port))

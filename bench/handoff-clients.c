/*
 * The handoff benches' load clients in C (`--c-clients`): `handoff-clients <port> <clients>`, the same
 * lines on stdout as bench/handoff-clients.ts. Each connection keeps one "INC <slot>" in flight; when
 * the generation in its answers changes, it reports its last answer from the old generation and its
 * first from the new one (CLOCK_MONOTONIC ns). Reports go out 25 ms after the first of a batch, as
 * there. It exits when stdin closes, and after 30 minutes in any case.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256

struct client { int fd; int gen; long long last, sent; double max_wait; size_t len; char buf[256]; };

static struct client cl[MAX_CLIENTS];
static char out[1 << 16];
static size_t out_len;
static long long flush_at;

static long long now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void ask(int i) {
  char line[32];
  int n = snprintf(line, sizeof line, "INC %d\n", i);
  cl[i].sent = now();
  if (write(cl[i].fd, line, n) != n) { printf("{\"slot\":%d,\"failed\":\"write: %s\"}\n", i, strerror(errno)); exit(1); }
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: handoff-clients <port> <clients>\n"); return 2; }
  int port = atoi(argv[1]), n = atoi(argv[2]);
  if (port <= 0 || n <= 0 || n > MAX_CLIENTS) { fprintf(stderr, "handoff-clients: bad port or count\n"); return 2; }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = { .events = EPOLLIN, .data.u32 = MAX_CLIENTS };
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e);
  for (int i = 0; i < n; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(fd, (void *)&a, sizeof a) != 0) { printf("{\"slot\":%d,\"failed\":\"connect: %s\"}\n", i, strerror(errno)); return 1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    cl[i].fd = fd;
    e.data.u32 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    ask(i);
  }
  long long until = now() + 30LL * 60 * 1000000000LL;
  for (;;) {
    struct epoll_event ev[MAX_CLIENTS + 1];
    int k = epoll_wait(ep, ev, MAX_CLIENTS + 1, flush_at != 0 ? 5 : 1000);
    long long t = now();
    if (flush_at != 0 && t >= flush_at) {
      if (write(1, out, out_len) < 0) return 1;
      out_len = 0;
      flush_at = 0;
    }
    if (t > until) return 0;
    for (int j = 0; j < k; j++) {
      unsigned i = ev[j].data.u32;
      if (i == MAX_CLIENTS) {
        char b[64];
        if (read(0, b, sizeof b) <= 0) return 0;
        continue;
      }
      struct client *c = &cl[i];
      ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
      if (r <= 0) { printf("{\"slot\":%u,\"failed\":\"%s\"}\n", i, r == 0 ? "closed" : strerror(errno)); return 1; }
      c->len += r;
      char *nl;
      while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
        long long at = now();
        int gen = atoi(c->buf);
        double wait = (at - c->sent) / 1e6;
        if (wait > c->max_wait) c->max_wait = wait;
        if (c->gen != 0 && gen != c->gen && out_len < sizeof out - 256) {
          if (out_len == 0) flush_at = at + 25000000LL;
          out_len += snprintf(out + out_len, sizeof out - out_len, "{\"slot\":%u,\"gen\":%d,\"last\":\"%lld\",\"first\":\"%lld\",\"maxWaitMs\":%f}\n", i, gen, c->last, at, c->max_wait);
          c->max_wait = 0;
        }
        c->gen = gen;
        c->last = at;
        size_t used = nl + 1 - c->buf;
        memmove(c->buf, nl + 1, c->len - used);
        c->len -= used;
        ask(i);
      }
    }
  }
}

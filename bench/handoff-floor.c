/*
 * One generation of the handoff floor in C (bench/handoff-floor.ts runs it with --impl=c): the same
 * line service ("INC <slot>" -> "<generation> <value>"), the same control protocol shape as the Node
 * generation (OFFER with the listener and connection fds while serving, PREPARED, then the pause:
 * GO with the counters and the unparsed bytes), the same reports on stdout. What the kernel and
 * this VM's scheduler cost a handoff when no JavaScript runs.
 *
 * Environment: FLOOR_DIR (where the control sockets live), FLOOR_GEN (1 listens on 127.0.0.1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 60
#define SLOTS 64
#define BUF 4096

struct conn { int fd; size_t len; char buf[BUF]; };

static struct conn conns[MAX_CONNS];
static int nconns;
static long long counters[SLOTS];
static int gen, ep;
static long long go_at, listened_at, first_data, first_write;

static long long now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what) { fprintf(stderr, "handoff-floor.c: %s: %s\n", what, strerror(errno)); exit(1); }

static void ctl_path(struct sockaddr_un *a, int g) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  snprintf(a->sun_path, sizeof a->sun_path, "%s/ctl%d", getenv("FLOOR_DIR"), g);
}

static void watch(int fd) {
  struct epoll_event e = { .events = EPOLLIN, .data.fd = fd };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) die("epoll_ctl");
}

static struct conn *add_conn(int fd, const char *pending, size_t n) {
  if (nconns == MAX_CONNS) { close(fd); return NULL; }
  struct conn *c = &conns[nconns++];
  c->fd = fd;
  c->len = n < BUF ? n : BUF;
  memcpy(c->buf, pending, c->len);
  return c;
}

/* Answers every whole line in c's buffer. */
static void drain(struct conn *c) {
  char out[BUF];
  size_t o = 0, at = 0;
  char *nl;
  while ((nl = memchr(c->buf + at, '\n', c->len - at)) != NULL) {
    char *sp = memchr(c->buf + at, ' ', nl - (c->buf + at));
    int slot = sp != NULL ? atoi(sp + 1) % SLOTS : 0;
    counters[slot]++;
    o += snprintf(out + o, sizeof out - o, "%d %lld\n", gen, counters[slot]);
    at = nl + 1 - c->buf;
    if (o > sizeof out - 64) break;
  }
  memmove(c->buf, c->buf + at, c->len - at);
  c->len -= at;
  if (o > 0 && write(c->fd, out, o) < 0) {}
}

static int sendfds(int s, const void *data, size_t n, const int *fds, int nfds) {
  struct iovec iov = { (void *)data, n };
  char cbuf[CMSG_SPACE(sizeof(int) * (MAX_CONNS + 1))];
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (nfds > 0) {
    m.msg_control = cbuf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
  }
  return sendmsg(s, &m, 0) < 0 ? -1 : 0;
}

static ssize_t recvfds(int s, void *data, size_t n, int *fds, int *nfds) {
  struct iovec iov = { data, n };
  char cbuf[CMSG_SPACE(sizeof(int) * (MAX_CONNS + 1))];
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  ssize_t r = recvmsg(s, &m, MSG_CMSG_CLOEXEC);
  *nfds = 0;
  struct cmsghdr *h = CMSG_FIRSTHDR(&m);
  if (r >= 0 && h != NULL && h->cmsg_type == SCM_RIGHTS) {
    *nfds = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    memcpy(fds, CMSG_DATA(h), sizeof(int) * *nfds);
  }
  return r;
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  gen = atoi(getenv("FLOOR_GEN"));
  ep = epoll_create1(EPOLL_CLOEXEC);
  int lfd;
  static char msg[MAX_CONNS * (BUF + 4) + SLOTS * 8];
  if (gen == 1) {
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    if (bind(lfd, (void *)&a, sizeof a) != 0 || listen(lfd, 511) != 0 || getsockname(lfd, (void *)&a, &al) != 0) die("listen");
    printf("{\"event\":\"listening\",\"pid\":%d,\"port\":%d}\n", getpid(), ntohs(a.sin_port));
    watch(lfd);
  } else {
    int ctl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    ctl_path(&a, gen - 1);
    if (connect(ctl, (void *)&a, sizeof a) != 0) die("connect");
    int fds[MAX_CONNS + 1], nfds;
    if (recvfds(ctl, msg, sizeof msg, fds, &nfds) < 0 || nfds < 1) die("OFFER");
    /* Everything is registered with epoll before the pause: nothing waits on it until GO, so the
     * pause costs no epoll_ctl (about 17 us each on this VM). */
    lfd = fds[0];
    for (int i = 1; i < nfds; i++) {
      struct conn *c = add_conn(fds[i], "", 0);
      if (c != NULL) watch(c->fd);
    }
    watch(lfd);
    if (send(ctl, "P", 1, 0) != 1) die("PREPARED");
    ssize_t n = recv(ctl, msg, sizeof msg, 0);
    go_at = now();
    if (n < SLOTS * 8) die("GO");
    memcpy(counters, msg, SLOTS * 8);
    size_t at = SLOTS * 8;
    for (int i = 0; i < nconns && at + 4 <= (size_t)n; i++) {
      uint32_t len;
      memcpy(&len, msg + at, 4);
      struct conn *c = &conns[i];
      c->len = len < BUF ? len : BUF;
      memcpy(c->buf, msg + at + 4, c->len);
      at += 4 + len;
      if (c->len > 0) {
        if (first_data == 0) first_data = now();
        drain(c);
        if (first_write == 0) first_write = now();
      }
    }
    close(ctl);
  }
  listened_at = now();
  struct sockaddr_un ca;
  ctl_path(&ca, gen);
  int cl = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (bind(cl, (void *)&ca, sizeof ca) != 0 || listen(cl, 4) != 0) die("ctl listen");
  watch(cl);
  int ctl = -1;
  long long report_at = gen > 1 ? go_at + 20000000LL : 0;
  for (;;) {
    struct epoll_event ev[64];
    int n = epoll_wait(ep, ev, 64, report_at != 0 ? 5 : -1);
    if (report_at != 0 && now() > report_at) {
      printf("{\"event\":\"serving\",\"pid\":%d,\"go\":\"%lld\",\"listened\":\"%lld\",\"firstData\":\"%lld\",\"firstWrite\":\"%lld\"}\n", getpid(), go_at, listened_at, first_data, first_write);
      report_at = 0;
    }
    for (int i = 0; i < n; i++) {
      int fd = ev[i].data.fd;
      if (fd == lfd) {
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (add_conn(c, "", 0) != NULL) watch(c);
        }
      } else if (fd == cl) {
        ctl = accept4(cl, NULL, NULL, SOCK_CLOEXEC);
        if (ctl < 0) continue;
        int fds[MAX_CONNS + 1];
        fds[0] = lfd;
        for (int k = 0; k < nconns; k++) fds[k + 1] = conns[k].fd;
        if (sendfds(ctl, "O", 1, fds, nconns + 1) != 0) die("OFFER send");
        watch(ctl);
      } else if (fd == ctl) {
        char p;
        if (recv(ctl, &p, 1, 0) != 1) die("PREPARED recv");
        /* The pause: stop reading, hand over the counters and the unparsed bytes, go. */
        long long stopped = now();
        size_t at = 0;
        memcpy(msg, counters, SLOTS * 8);
        at = SLOTS * 8;
        for (int k = 0; k < nconns; k++) {
          uint32_t len = conns[k].len;
          memcpy(msg + at, &len, 4);
          memcpy(msg + at + 4, conns[k].buf, len);
          at += 4 + len;
        }
        if (send(ctl, msg, at, 0) < 0) die("GO send");
        struct sched_param sp = { 0 };
        sched_setscheduler(0, SCHED_IDLE, &sp);
        usleep(30000);
        printf("{\"event\":\"handedOff\",\"pid\":%d,\"stoppedAt\":\"%lld\"}\n", getpid(), stopped);
        usleep(50000);
        return 0;
      } else {
        for (int k = 0; k < nconns; k++) {
          struct conn *c = &conns[k];
          if (c->fd != fd) continue;
          ssize_t r = read(fd, c->buf + c->len, BUF - c->len);
          if (r > 0) {
            if (first_data == 0 && gen > 1) first_data = now();
            c->len += r;
            drain(c);
            if (first_write == 0 && gen > 1) first_write = now();
          } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            close(fd);
            *c = conns[--nconns];
          }
          break;
        }
      }
    }
  }
}

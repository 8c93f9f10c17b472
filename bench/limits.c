/*
 * The least the kernel needs for what a gift does, timed with nothing else around it: compiled by
 * `npm run bench -- transfer` into a temporary directory and run once. Prints one JSON object per
 * line: {"name": ..., "median_us": ..., "p10_us": ..., "p90_us": ..., "runs": ...}.
 *
 *   rtt        a 64-byte sendmsg/recvmsg round trip between two processes (SOCK_SEQPACKET, blocking)
 *   rtt_fd     the same, the first message carrying one memfd by SCM_RIGHTS (closed on arrival)
 *   mmap_4g    mmap (MAP_SHARED) of a sealed 4 GiB memfd, then munmap; nothing touched
 *   wake       one way: a 64-byte message to a process blocked in epoll_wait, to its recvmsg returning
 *   rtt_stream, wake_stream
 *              rtt and wake over SOCK_STREAM, the net socket's kind: the same kernel work without
 *              message boundaries, the floor of the transfer bench's net socket baseline
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#define RUNS 20000
#define WARMUP 1000

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void report(const char *name, double *s, int n) {
  qsort(s, n, sizeof *s, cmp);
  printf("{\"name\":\"%s\",\"median_us\":%.3f,\"p10_us\":%.3f,\"p90_us\":%.3f,\"runs\":%d}\n", name, s[n / 2], s[n / 10], s[n * 9 / 10], n);
  fflush(stdout);
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Sends 64 bytes, with `fd` attached when fd >= 0. */
static void send64(int sock, const void *buf, int fd) {
  struct iovec iov = { (void *) buf, 64 };
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (fd >= 0) {
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (sendmsg(sock, &msg, 0) != 64) die("sendmsg");
}

/* Receives one message into buf; closes any fd that came with it. */
static void recv64(int sock, void *buf) {
  struct iovec iov = { buf, 64 };
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } ctl;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
  /* MSG_WAITALL: a stream socket may hand over fewer bytes than were sent; a packet comes whole anyway. */
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL) != 64) die("recvmsg");
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (c != NULL && c->cmsg_type == SCM_RIGHTS) {
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    close(fd);
  }
}

/* The echo side: answers each message, waiting in epoll_wait first when `epoll` is set. */
static void echo(int sock, int n, int epoll) {
  char buf[64];
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, sock, &ev) < 0) die("epoll_ctl");
  for (int i = 0; i < n; i++) {
    if (epoll && epoll_wait(ep, &ev, 1, -1) != 1) die("epoll_wait");
    recv64(sock, buf);
    if (epoll) {
      double sent;
      memcpy(&sent, buf, sizeof sent);
      double waited = now_us() - sent;
      memcpy(buf, &waited, sizeof waited);
    }
    send64(sock, buf, -1);
  }
  _exit(0);
}

/* Ping-pong with a forked echo: round trips, or (epoll) one-way wake-ups as the echo measured them. */
static void pingpong(const char *name, int type, int with_fd, int epoll) {
  int sv[2];
  if (socketpair(AF_UNIX, type, 0, sv) < 0) die("socketpair");
  int memfd = with_fd ? memfd_create("limits", MFD_ALLOW_SEALING) : -1;
  pid_t child = fork();
  if (child == 0) {
    close(sv[0]);
    echo(sv[1], WARMUP + RUNS, epoll);
  }
  close(sv[1]);
  static double s[RUNS];
  char buf[64] = { 0 };
  for (int i = 0; i < WARMUP + RUNS; i++) {
    if (epoll) usleep(20); /* Let the echo go back to sleep in epoll_wait. */
    double t0 = now_us();
    memcpy(buf, &t0, sizeof t0);
    send64(sv[0], buf, memfd);
    recv64(sv[0], buf);
    double t = now_us() - t0;
    if (epoll) memcpy(&t, buf, sizeof t);
    if (i >= WARMUP) s[i - WARMUP] = t;
  }
  waitpid(child, NULL, 0);
  close(sv[0]);
  if (memfd >= 0) close(memfd);
  report(name, s, RUNS);
}

static void map4g(void) {
  const size_t size = (size_t) 4 << 30;
  int fd = memfd_create("limits", MFD_ALLOW_SEALING);
  if (fd < 0 || ftruncate(fd, size) < 0) die("memfd");
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) die("F_ADD_SEALS");
  enum { N = 2000 };
  static double s[N];
  for (int i = 0; i < N + 100; i++) {
    double t0 = now_us();
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) die("mmap");
    double t = now_us() - t0;
    munmap(p, size);
    if (i >= 100) s[i - 100] = t;
  }
  close(fd);
  report("mmap_4g", s, N);
}

int main(void) {
  pingpong("rtt", SOCK_SEQPACKET, 0, 0);
  pingpong("rtt_fd", SOCK_SEQPACKET, 1, 0);
  map4g();
  pingpong("wake", SOCK_SEQPACKET, 0, 1);
  pingpong("rtt_stream", SOCK_STREAM, 0, 0);
  pingpong("wake_stream", SOCK_STREAM, 0, 1);
  return 0;
}

/*
 * A reactor for many stream sockets, as Redis's event loop reads them: one epoll set, watched by one
 * poller (pollStart, binding_async.c), read in one pass per loop turn into one shared buffer, then
 * one call into JS for every socket that had bytes. A Node stream per socket costs a JS call, a
 * Buffer and an event emission per read; with many small request/response clients that overhead is
 * most of the server's CPU.
 *
 * Each registered socket is a dup of the caller's fd, owned here until rxDel: the caller's handle may
 * close its own fd at any time without this set ever reading from a number that now means another
 * file. The socket stays open until both are closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "binding.h"

/* One read per ready socket per turn, at most this much (Redis reads 16 KiB): a client that sends a
 * lot gets its next share in the next turn, after the others (epoll here is level-triggered). */
#define RX_READ_MAX (64 * 1024)
/* A read is only tried with at least this much room left in the shared buffer. */
#define RX_READ_MIN (4 * 1024)
#define RX_EVENTS 256

/* rxOpen() -> an epoll set (close-on-exec) or -errno; the caller watches it with pollStart(). */
napi_value pagegift__rx_open(napi_env env, napi_callback_info info) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  return pagegift__number(env, ep < 0 ? -errno : ep);
}

/*
 * rxRead(ep, buffer: Uint8Array, table: Int32Array) -> rows: reads every ready socket once into
 * `buffer`; table rows are [fd, offset, n] with n > 0 bytes, 0 at EOF, -errno.
 */
napi_value pagegift__rx_read(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  int ep = (int) pagegift__int(env, argv[0]);
  size_t cap = 0, tlen = 0;
  uint8_t* buf = pagegift__view_data(env, argv[1], &cap);
  int32_t* table = pagegift__view_data(env, argv[2], &tlen);
  if (buf == NULL || table == NULL || cap > INT32_MAX) return pagegift__number(env, -EINVAL);
  struct epoll_event ev[RX_EVENTS];
  size_t slots = tlen / (3 * sizeof(int32_t));
  int n = epoll_wait(ep, ev, (int) (slots < RX_EVENTS ? slots : RX_EVENTS), 0);
  size_t off = 0;
  int rows = 0;
  for (int i = 0; i < n && cap - off >= RX_READ_MIN; i++) {
    int fd = ev[i].data.fd;
    size_t want = cap - off < RX_READ_MAX ? cap - off : RX_READ_MAX;
    ssize_t r = recv(fd, buf + off, want, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    int32_t* row = table + 3 * rows++;
    row[0] = fd;
    row[1] = (int32_t) off;
    row[2] = r < 0 ? -errno : (int32_t) r;
    if (r > 0) {
      off += (size_t) r;
    } else {
      /* EOF or an error stays ready forever: stop watching until JS closes it. */
      struct epoll_event none = { 0 };
      none.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &none);
    }
  }
  return pagegift__number(env, rows);
}

/* rxAdd(ep, fd) -> the set's own fd for this socket (a dup), or -errno. */
napi_value pagegift__rx_add(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  int ep = (int) pagegift__int(env, argv[0]);
  int fd = fcntl((int) pagegift__int(env, argv[1]), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return pagegift__number(env, -errno);
  struct epoll_event ev = { .events = EPOLLIN };
  ev.data.fd = fd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int e = errno;
    close(fd);
    return pagegift__number(env, -e);
  }
  return pagegift__number(env, fd);
}

/* rxWatch(ep, fd, on): reading on or off (off keeps the socket registered). */
napi_value pagegift__rx_watch(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  bool on = false;
  napi_get_value_bool(env, argv[2], &on);
  struct epoll_event ev = { .events = on ? EPOLLIN : 0 };
  ev.data.fd = (int) pagegift__int(env, argv[1]);
  return pagegift__number(env, epoll_ctl((int) pagegift__int(env, argv[0]), EPOLL_CTL_MOD, ev.data.fd, &ev) == 0 ? 0 : -errno);
}

/* rxDel(ep, fd): stops watching and closes the set's dup. */
napi_value pagegift__rx_del(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  int fd = (int) pagegift__int(env, argv[1]);
  epoll_ctl((int) pagegift__int(env, argv[0]), EPOLL_CTL_DEL, fd, NULL);
  return pagegift__number(env, close(fd) == 0 ? 0 : -errno);
}

/*
 * rxSend(fd, view[, start, end]) -> bytes of view[start, end) the kernel took now (never blocks), or
 * -errno. The range lets a caller send part of a reply buffer without making a view of it per send.
 */
napi_value pagegift__rx_send(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 4);
  size_t len = 0;
  uint8_t* data = pagegift__view_data(env, argv[1], &len);
  if (data == NULL && len != 0) return pagegift__number(env, -EINVAL);
  size_t start = 0;
  size_t end = len;
  if (argc >= 4) {
    double s = -1;
    double e = -1;
    napi_get_value_double(env, argv[2], &s);
    napi_get_value_double(env, argv[3], &e);
    /* Written so that NaN fails too. */
    if (!(s >= 0 && e >= s && e <= (double) len && s == (double) (size_t) s && e == (double) (size_t) e)) return pagegift__number(env, -EINVAL);
    start = (size_t) s;
    end = (size_t) e;
  }
  ssize_t n = send((int) pagegift__int(env, argv[0]), data + start, end - start, MSG_DONTWAIT | MSG_NOSIGNAL);
  return pagegift__number(env, n >= 0 ? (double) n : (double) -errno);
}

/*
 * A reactor for many stream sockets, as Redis's event loop reads them: one epoll set, watched by one
 * uv_poll, read in one pass per loop turn into one shared buffer, then one call into JS for every
 * socket that had bytes. A Node stream per socket costs a JS call, a Buffer and an event emission
 * per read; with many small request/response clients that overhead is most of the server's CPU.
 *
 * Each registered socket is a dup of the caller's fd, owned here until rxDel: the caller's handle may
 * close its own fd at any time without this set ever reading from a number that now means another
 * file. The socket stays open until both are closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>
#include "binding.h"

/* One read per ready socket per turn, at most this much (Redis reads 16 KiB): a client that sends a
 * lot gets its next share in the next turn, after the others (epoll here is level-triggered). */
#define RX_READ_MAX (64 * 1024)
/* A read is only tried with at least this much room left in the shared buffer. */
#define RX_READ_MIN (4 * 1024)
#define RX_EVENTS 256

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_ref buffer_ref;
  napi_ref table_ref;
  napi_async_context context;
  uint8_t* buf;
  size_t cap;
  int32_t* table;
  size_t slots;
  int ep;
  int closing;
  int refs;
} pagegift__rx;

static void pagegift__rx_unref(pagegift__rx* rx) {
  if (--rx->refs == 0) free(rx);
}

/* Reads every ready socket once; table rows are [fd, offset, n] with n > 0 bytes, 0 at EOF, -errno. */
static int pagegift__rx_read(pagegift__rx* rx) {
  struct epoll_event ev[RX_EVENTS];
  size_t max = rx->slots < RX_EVENTS ? rx->slots : RX_EVENTS;
  int n = epoll_wait(rx->ep, ev, (int) max, 0);
  size_t off = 0;
  int rows = 0;
  for (int i = 0; i < n && rx->cap - off >= RX_READ_MIN; i++) {
    int fd = ev[i].data.fd;
    size_t want = rx->cap - off < RX_READ_MAX ? rx->cap - off : RX_READ_MAX;
    ssize_t r = recv(fd, rx->buf + off, want, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    int32_t* row = rx->table + 3 * rows++;
    row[0] = fd;
    row[1] = (int32_t) off;
    row[2] = r < 0 ? -errno : (int32_t) r;
    if (r > 0) {
      off += (size_t) r;
    } else {
      /* EOF or an error stays ready forever: stop watching until JS closes it. */
      struct epoll_event none = { 0 };
      none.data.fd = fd;
      epoll_ctl(rx->ep, EPOLL_CTL_MOD, fd, &none);
    }
  }
  return rows;
}

static void pagegift__rx_cb(uv_poll_t* handle, int status, int events) {
  pagegift__rx* rx = handle->data;
  if (rx->closing) return;
  int rows = pagegift__rx_read(rx);
  if (rows == 0) return;
  napi_handle_scope scope;
  napi_open_handle_scope(rx->env, &scope);
  napi_value cb, recv, arg, result;
  napi_get_reference_value(rx->env, rx->callback, &cb);
  napi_get_global(rx->env, &recv);
  napi_create_int32(rx->env, rows, &arg);
  napi_make_callback(rx->env, rx->context, recv, cb, 1, &arg, &result);
  napi_close_handle_scope(rx->env, scope);
}

static void pagegift__rx_closed(uv_handle_t* handle) {
  pagegift__rx* rx = handle->data;
  napi_delete_reference(rx->env, rx->callback);
  napi_delete_reference(rx->env, rx->buffer_ref);
  napi_delete_reference(rx->env, rx->table_ref);
  napi_async_destroy(rx->env, rx->context);
  close(rx->ep);
  pagegift__rx_unref(rx);
}

static void pagegift__rx_stop(pagegift__rx* rx) {
  if (rx->closing) return;
  rx->closing = 1;
  uv_poll_stop(&rx->poll);
  uv_close((uv_handle_t*) &rx->poll, pagegift__rx_closed);
}

static void pagegift__rx_finalize(napi_env env, void* data, void* hint) {
  pagegift__rx* rx = data;
  pagegift__rx_stop(rx);
  pagegift__rx_unref(rx);
}

static pagegift__rx* pagegift__rx_get(napi_env env, napi_value v) {
  pagegift__rx* rx = NULL;
  if (napi_get_value_external(env, v, (void**) &rx) != napi_ok || rx == NULL || rx->closing) return NULL;
  return rx;
}

/* rxOpen(buffer: Uint8Array, table: Int32Array, callback(rows)) -> handle or -errno. */
napi_value pagegift__rx_open(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  size_t cap = 0, tlen = 0;
  uint8_t* buf = pagegift__view_data(env, argv[0], &cap);
  int32_t* table = pagegift__view_data(env, argv[1], &tlen);
  if (buf == NULL || table == NULL || cap > INT32_MAX || tlen < 3 * sizeof(int32_t)) return pagegift__number(env, -EINVAL);
  uv_loop_t* loop;
  PAGEGIFT__CHECK(env, napi_get_uv_event_loop(env, &loop));
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return pagegift__number(env, -errno);
  pagegift__rx* rx = calloc(1, sizeof(*rx));
  if (rx == NULL) {
    close(ep);
    return pagegift__number(env, -ENOMEM);
  }
  *rx = (pagegift__rx) { .env = env, .buf = buf, .cap = cap, .table = table, .slots = tlen / (3 * sizeof(int32_t)), .ep = ep, .refs = 2 };
  int r = uv_poll_init(loop, &rx->poll, ep);
  if (r != 0) {
    close(ep);
    free(rx);
    return pagegift__number(env, r);
  }
  rx->poll.data = rx;
  napi_value name, handle;
  napi_create_string_utf8(env, "pagegift:rx", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &rx->context);
  napi_create_reference(env, argv[0], 1, &rx->buffer_ref);
  napi_create_reference(env, argv[1], 1, &rx->table_ref);
  napi_create_reference(env, argv[2], 1, &rx->callback);
  uv_poll_start(&rx->poll, UV_READABLE, pagegift__rx_cb);
  PAGEGIFT__CHECK(env, napi_create_external(env, rx, pagegift__rx_finalize, NULL, &handle));
  return handle;
}

/* rxAdd(handle, fd) -> the set's own fd for this socket (a dup), or -errno. */
napi_value pagegift__rx_add(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  pagegift__rx* rx = pagegift__rx_get(env, argv[0]);
  if (rx == NULL) return pagegift__number(env, -EBADF);
  int fd = fcntl((int) pagegift__int(env, argv[1]), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return pagegift__number(env, -errno);
  struct epoll_event ev = { .events = EPOLLIN };
  ev.data.fd = fd;
  if (epoll_ctl(rx->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int e = errno;
    close(fd);
    return pagegift__number(env, -e);
  }
  return pagegift__number(env, fd);
}

/* rxWatch(handle, fd, on): reading on or off (off keeps the socket registered). */
napi_value pagegift__rx_watch(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  pagegift__rx* rx = pagegift__rx_get(env, argv[0]);
  if (rx == NULL) return pagegift__number(env, -EBADF);
  bool on = false;
  napi_get_value_bool(env, argv[2], &on);
  struct epoll_event ev = { .events = on ? EPOLLIN : 0 };
  ev.data.fd = (int) pagegift__int(env, argv[1]);
  return pagegift__number(env, epoll_ctl(rx->ep, EPOLL_CTL_MOD, ev.data.fd, &ev) == 0 ? 0 : -errno);
}

/* rxDel(handle, fd): stops watching and closes the set's dup. */
napi_value pagegift__rx_del(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  pagegift__rx* rx = pagegift__rx_get(env, argv[0]);
  int fd = (int) pagegift__int(env, argv[1]);
  if (rx != NULL) epoll_ctl(rx->ep, EPOLL_CTL_DEL, fd, NULL);
  return pagegift__number(env, close(fd) == 0 ? 0 : -errno);
}

/* rxClose(handle): stops the set; sockets still in it stay open until their rxDel. */
napi_value pagegift__rx_close(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  pagegift__rx* rx = pagegift__rx_get(env, argv[0]);
  if (rx != NULL) pagegift__rx_stop(rx);
  return NULL;
}

/* rxSend(fd, view) -> bytes the kernel took now (never blocks), or -errno. */
napi_value pagegift__rx_send(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  size_t len = 0;
  void* data = pagegift__view_data(env, argv[1], &len);
  if (data == NULL && len != 0) return pagegift__number(env, -EINVAL);
  ssize_t n = send((int) pagegift__int(env, argv[0]), data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  return pagegift__number(env, n >= 0 ? (double) n : (double) -errno);
}

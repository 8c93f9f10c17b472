/*
 * The Node-API glue for the synchronous calls: argument unpacking and conversion of results.
 * Syscall failures come back to JS as negative errno numbers; src/native.ts turns them into
 * Errors with code, errno and syscall. TypeScript validates arguments, so here we only assert.
 */
#include "binding.h"
#include "sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

napi_value pagegift__number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

int64_t pagegift__int(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return (int64_t) d;
}

/* Returns the data pointer of an ArrayBuffer or ArrayBufferView (and its byte length). */
void* pagegift__view_data(napi_env env, napi_value v, size_t* length) {
  bool is;
  void* data = NULL;
  size_t len = 0;
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    napi_get_arraybuffer_info(env, v, &data, &len);
  } else if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    napi_get_typedarray_info(env, v, &type, &count, &data, &ab, &offset);
    static const size_t sizes[] = { 1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8 };
    len = count * ((size_t) type < sizeof(sizes) / sizeof(sizes[0]) ? sizes[type] : 1);
  } else if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    napi_value ab;
    size_t offset;
    napi_get_dataview_info(env, v, &len, &data, &ab, &offset);
  } else {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an ArrayBuffer or a byte view");
    return NULL;
  }
  if (length != NULL) *length = len;
  return data;
}

/* Unpacks a Float64Array of [address, length, address, length, ...] pairs into an iovec array. */
int pagegift__iovs(napi_env env, napi_value arr, struct iovec** out) {
  napi_typedarray_type type;
  size_t count;
  void* data;
  if (napi_get_typedarray_info(env, arr, &type, &count, &data, NULL, NULL) != napi_ok || type != napi_float64_array || count % 2 != 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Float64Array of address/length pairs");
    return -1;
  }
  int n = (int) (count / 2);
  struct iovec* iov = calloc((size_t) (n > 0 ? n : 1), sizeof(*iov));
  const double* d = data;
  for (int i = 0; i < n; i++) {
    iov[i].iov_base = (void*) (uintptr_t) d[2 * i];
    iov[i].iov_len = (size_t) d[2 * i + 1];
  }
  *out = iov;
  return n;
}

void pagegift__mapping_unref(pagegift__mapping* m) {
  if (--m->refs == 0) free(m);
}

static void pagegift__finalize_buffer(napi_env env, void* data, void* hint) {
  pagegift__mapping* m = hint;
  /*
   * Reached only when the ArrayBuffer was collected without an explicit release. A job still using
   * the pages unmaps them when it settles (spans_drop); a finalizer must not queue work itself.
   */
  if (!m->doomed) {
    m->doomed = 1;
    if (m->users == 0) pagegift_unmap(m->addr, m->span);
  }
  pagegift__mapping_unref(m);
}

static void pagegift__finalize_handle(napi_env env, void* data, void* hint) {
  pagegift__mapping_unref(data);
}

pagegift__mapping* pagegift__get_mapping(napi_env env, napi_value handle) {
  void* m = NULL;
  if (napi_get_value_external(env, handle, &m) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a mapping handle");
    return NULL;
  }
  return m;
}

#define PAGEGIFT__INT_FN(fname, expr)                 \
  static napi_value fname(napi_env env, napi_callback_info info) { \
    PAGEGIFT__ARGS(env, info, 3);                     \
    (void) argc;                                      \
    return pagegift__number(env, (double) (expr));    \
  }

PAGEGIFT__INT_FN(pagegift__get_seals, pagegift_get_seals((int) pagegift__int(env, argv[0])))
PAGEGIFT__INT_FN(pagegift__fd_size, pagegift_fd_size((int) pagegift__int(env, argv[0])))
PAGEGIFT__INT_FN(pagegift__dup_fd, pagegift_dup((int) pagegift__int(env, argv[0])))
PAGEGIFT__INT_FN(pagegift__close_fd, pagegift_close((int) pagegift__int(env, argv[0])))
PAGEGIFT__INT_FN(pagegift__set_ptracer, pagegift_set_ptracer((pid_t) pagegift__int(env, argv[0])))
PAGEGIFT__INT_FN(pagegift__pipe_reader_fd, pagegift_pipe_reader((int) pagegift__int(env, argv[0])))
PAGEGIFT__INT_FN(pagegift__accept_fd, pagegift_accept((int) pagegift__int(env, argv[0])))
PAGEGIFT__INT_FN(pagegift__punch_hole, pagegift_punch_hole((int) pagegift__int(env, argv[0]),
    (size_t) pagegift__int(env, argv[1]), (size_t) pagegift__int(env, argv[2])))

static int pagegift__string(napi_env env, napi_value v, char* buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a string");
    return -1;
  }
  return 0;
}

static napi_value pagegift__memfd_create(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  char name[250];
  bool seal;
  if (pagegift__string(env, argv[0], name, sizeof(name)) != 0) return NULL;
  PAGEGIFT__CHECK(env, napi_get_value_bool(env, argv[2], &seal));
  return pagegift__number(env, pagegift_memfd_create(name, (size_t) pagegift__int(env, argv[1]), seal));
}

/*
 * map(fd, offset, length, byteLength, slot) -> [ArrayBuffer, handle] or -errno. With `slot`, the
 * mapping is a slot (pagegift_map_slot), whose pages handover() moves with their page tables.
 */
static napi_value pagegift__map(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 5);
  int fd = (int) pagegift__int(env, argv[0]);
  size_t offset = (size_t) pagegift__int(env, argv[1]);
  size_t length = (size_t) pagegift__int(env, argv[2]);
  size_t byte_length = (size_t) pagegift__int(env, argv[3]);
  bool slot = false;
  if (argc >= 5) napi_get_value_bool(env, argv[4], &slot);
  void* addr;
  int r = slot ? pagegift_map_slot(fd, offset, length, &addr) : pagegift_map_shared(fd, offset, length, &addr);
  if (r < 0) return pagegift__number(env, r);
  size_t span = slot ? pagegift_slot_span(length) : length;
  pagegift__mapping* m = calloc(1, sizeof(*m));
  if (m == NULL) {
    pagegift_unmap(addr, span);
    return pagegift__number(env, -ENOMEM);
  }
  m->addr = addr;
  m->length = length;
  m->span = span;
  m->refs = 2;
  m->users = 0;
  m->wrapped = 1;
  napi_value ab = pagegift__uncounted_arraybuffer(env, addr, byte_length);
  napi_value handle, out;
  if (ab == NULL || napi_add_finalizer(env, ab, m, pagegift__finalize_buffer, m, NULL) != napi_ok) {
    pagegift_unmap(addr, span);
    free(m);
    napi_throw_error(env, "ERR_PAGEGIFT_NAPI", "could not create the ArrayBuffer of a mapping");
    return NULL;
  }
  PAGEGIFT__CHECK(env, napi_create_external(env, m, pagegift__finalize_handle, NULL, &handle));
  PAGEGIFT__CHECK(env, napi_create_array_with_length(env, 2, &out));
  napi_set_element(env, out, 0, ab);
  napi_set_element(env, out, 1, handle);
  return out;
}

/* mapFixed(handle, mapOffset, fd, fdOffset, length): replaces part of a mapping with another memfd's pages. */
static napi_value pagegift__map_fixed(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 5);
  pagegift__mapping* m = pagegift__get_mapping(env, argv[0]);
  if (m == NULL) return NULL;
  size_t at = (size_t) pagegift__int(env, argv[1]);
  size_t length = (size_t) pagegift__int(env, argv[4]);
  if (m->doomed || at + length > m->length) return pagegift__number(env, -EINVAL);
  return pagegift__number(env, pagegift_map_fixed((char*) m->addr + at, (int) pagegift__int(env, argv[2]),
      (size_t) pagegift__int(env, argv[3]), length));
}

/*
 * handover(handle) -> a new handle, or -errno (-EBUSY while a job uses the pages, or once they are
 * released): takes the pages of a mapping away from its ArrayBuffer, which the caller has detached,
 * and moves them (page tables and all, so they stay warm) to a new address. The old address is
 * left unmapped, as release() leaves it: I/O still pending on the old buffer (a socket write of it,
 * say) fails with EFAULT instead of reading whatever the pages hold next. The old buffer's finalizer
 * then does nothing; the new handle owns the pages until wrap() gives them a new ArrayBuffer or
 * unmapAsync() frees them.
 */
static napi_value pagegift__handover(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  pagegift__mapping* m = pagegift__get_mapping(env, argv[0]);
  if (m == NULL) return NULL;
  if (m->doomed || m->users > 0) return pagegift__number(env, -EBUSY);
  pagegift__mapping* n = calloc(1, sizeof(*n));
  if (n == NULL) return pagegift__number(env, -ENOMEM);
  n->refs = 1;
  napi_value handle;
  if (napi_create_external(env, n, pagegift__finalize_handle, NULL, &handle) != napi_ok) {
    free(n);
    napi_throw_error(env, "ERR_PAGEGIFT_NAPI", "could not create a mapping handle");
    return NULL;
  }
  int r = pagegift_move_mapping(m->addr, m->span, &n->addr);
  if (r < 0) return pagegift__number(env, r); /* n, empty, is freed with its unreturned handle */
  n->length = m->length;
  n->span = m->span;
  m->doomed = 1;
  return handle;
}

/*
 * wrap(handle, byteLength) -> ArrayBuffer, or -EINVAL: the one ArrayBuffer over a handed-over
 * mapping. The bytes from byteLength to the end of the last page are zeroed: a buffer's pages may
 * leave the process whole (fdOf, a move), and the bytes past its length must not be an earlier
 * buffer's.
 */
static napi_value pagegift__wrap(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  pagegift__mapping* m = pagegift__get_mapping(env, argv[0]);
  if (m == NULL) return NULL;
  size_t byte_length = (size_t) pagegift__int(env, argv[1]);
  if (m->doomed || m->wrapped || byte_length == 0 || byte_length > m->length) return pagegift__number(env, -EINVAL);
  memset((char*) m->addr + byte_length, 0, m->length - byte_length);
  napi_value ab = pagegift__uncounted_arraybuffer(env, m->addr, byte_length);
  if (ab == NULL || napi_add_finalizer(env, ab, m, pagegift__finalize_buffer, m, NULL) != napi_ok) {
    napi_throw_error(env, "ERR_PAGEGIFT_NAPI", "could not create the ArrayBuffer of a mapping");
    return NULL;
  }
  m->refs++;
  m->wrapped = 1;
  return ab;
}

static napi_value pagegift__detach(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  PAGEGIFT__CHECK(env, napi_detach_arraybuffer(env, argv[0]));
  return NULL;
}

static napi_value pagegift__fd_pair(napi_env env, int r, int fds[2], int extra) {
  if (r < 0) return pagegift__number(env, r);
  napi_value out;
  napi_create_array_with_length(env, 3, &out);
  napi_set_element(env, out, 0, pagegift__number(env, fds[0]));
  napi_set_element(env, out, 1, pagegift__number(env, fds[1]));
  napi_set_element(env, out, 2, pagegift__number(env, extra));
  return out;
}

static napi_value pagegift__seqpacket_pair(napi_env env, napi_callback_info info) {
  int fds[2];
  return pagegift__fd_pair(env, pagegift_seqpacket_pair(fds), fds, 0);
}

static napi_value pagegift__pipe(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  int fds[2];
  int r = pagegift_pipe(fds, (int) pagegift__int(env, argv[0]));
  return pagegift__fd_pair(env, r, fds, r);
}

static napi_value pagegift__listen(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  char path[256];
  if (pagegift__string(env, argv[0], path, sizeof(path)) != 0) return NULL;
  return pagegift__number(env, pagegift_listen(path, (int) pagegift__int(env, argv[1])));
}

static napi_value pagegift__connect(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  char path[256];
  if (pagegift__string(env, argv[0], path, sizeof(path)) != 0) return NULL;
  return pagegift__number(env, pagegift_connect(path));
}

static napi_value pagegift__peercred(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  int pid, uid, gid;
  int r = pagegift_peercred((int) pagegift__int(env, argv[0]), &pid, &uid, &gid);
  if (r < 0) return pagegift__number(env, r);
  napi_value out;
  napi_create_array_with_length(env, 3, &out);
  napi_set_element(env, out, 0, pagegift__number(env, pid));
  napi_set_element(env, out, 1, pagegift__number(env, uid));
  napi_set_element(env, out, 2, pagegift__number(env, gid));
  return out;
}

/* sendmsg(fd, views[], fds[]) -> bytes sent or -errno. */
static napi_value pagegift__sendmsg(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  uint32_t nviews, nfds;
  struct iovec iov[8];
  int fds[253];
  PAGEGIFT__CHECK(env, napi_get_array_length(env, argv[1], &nviews));
  PAGEGIFT__CHECK(env, napi_get_array_length(env, argv[2], &nfds));
  if (nviews > 8 || nfds > 253) return pagegift__number(env, -E2BIG);
  for (uint32_t i = 0; i < nviews; i++) {
    napi_value v;
    napi_get_element(env, argv[1], i, &v);
    iov[i].iov_base = pagegift__view_data(env, v, &iov[i].iov_len);
    if (iov[i].iov_base == NULL && iov[i].iov_len != 0) return NULL;
  }
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    napi_get_element(env, argv[2], i, &v);
    fds[i] = (int) pagegift__int(env, v);
  }
  return pagegift__number(env, (double) pagegift_sendmsg((int) pagegift__int(env, argv[0]), iov, (int) nviews, fds, (int) nfds));
}

/* recvmsg(fd, buf, out) -> bytes or -errno; out (Int32Array) receives [nfds, flags, fd0, fd1, ...]. */
static napi_value pagegift__recvmsg(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  size_t length, outlen;
  void* buf = pagegift__view_data(env, argv[1], &length);
  napi_typedarray_type type;
  void* outdata;
  if (buf == NULL) return NULL;
  PAGEGIFT__CHECK(env, napi_get_typedarray_info(env, argv[2], &type, &outlen, &outdata, NULL, NULL));
  if (type != napi_int32_array || outlen < 3) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "out must be an Int32Array of at least 3");
    return NULL;
  }
  int32_t* out = outdata;
  int nfds, flags;
  int64_t n = pagegift_recvmsg((int) pagegift__int(env, argv[0]), buf, length, out + 2, (int) outlen - 2, &nfds, &flags);
  out[0] = nfds;
  out[1] = flags;
  return pagegift__number(env, (double) n);
}

static napi_value pagegift__page_size(napi_env env, napi_callback_info info) {
  return pagegift__number(env, (double) sysconf(_SC_PAGESIZE));
}

/* sdNotify(path, message) -> bytes sent or -errno (the systemd notify datagram, sys_notify.c). */
int64_t pagegift_notify(const char* path, const char* msg, size_t len);
static napi_value pagegift__sd_notify(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  char path[256], msg[4096];
  if (pagegift__string(env, argv[0], path, sizeof(path)) != 0) return NULL;
  if (pagegift__string(env, argv[1], msg, sizeof(msg)) != 0) return NULL;
  return pagegift__number(env, (double) pagegift_notify(path, msg, strlen(msg)));
}

/* schedIdle(tid) -> 0 or -errno: the thread runs only on a CPU that has nothing else to run. */
static napi_value pagegift__sched_idle(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  return pagegift__number(env, pagegift_sched_idle((pid_t) pagegift__int(env, argv[0])));
}

static napi_value pagegift__init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
#define PAGEGIFT__FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_default, NULL }
    PAGEGIFT__FN("pageSize", pagegift__page_size),
    PAGEGIFT__FN("memfdCreate", pagegift__memfd_create),
    PAGEGIFT__FN("getSeals", pagegift__get_seals),
    PAGEGIFT__FN("fdSize", pagegift__fd_size),
    PAGEGIFT__FN("dup", pagegift__dup_fd),
    PAGEGIFT__FN("close", pagegift__close_fd),
    PAGEGIFT__FN("setPtracer", pagegift__set_ptracer),
    PAGEGIFT__FN("punchHole", pagegift__punch_hole),
    PAGEGIFT__FN("map", pagegift__map),
    PAGEGIFT__FN("mapFixed", pagegift__map_fixed),
    PAGEGIFT__FN("detach", pagegift__detach),
    PAGEGIFT__FN("handover", pagegift__handover),
    PAGEGIFT__FN("wrap", pagegift__wrap),
    PAGEGIFT__FN("addresses", pagegift__addresses),
    PAGEGIFT__FN("seqpacketPair", pagegift__seqpacket_pair),
    PAGEGIFT__FN("pipe", pagegift__pipe),
    PAGEGIFT__FN("pipeReader", pagegift__pipe_reader_fd),
    PAGEGIFT__FN("listen", pagegift__listen),
    PAGEGIFT__FN("connect", pagegift__connect),
    PAGEGIFT__FN("accept", pagegift__accept_fd),
    PAGEGIFT__FN("peerCred", pagegift__peercred),
    PAGEGIFT__FN("sendmsg", pagegift__sendmsg),
    PAGEGIFT__FN("recvmsg", pagegift__recvmsg),
    PAGEGIFT__FN("async", pagegift__async),
    PAGEGIFT__FN("unmapAsync", pagegift__unmap_async),
    PAGEGIFT__FN("pollStart", pagegift__poll_start),
    PAGEGIFT__FN("pollUpdate", pagegift__poll_update),
    PAGEGIFT__FN("pollClose", pagegift__poll_close),
    PAGEGIFT__FN("sdNotify", pagegift__sd_notify),
    PAGEGIFT__FN("schedIdle", pagegift__sched_idle),
    PAGEGIFT__FN("rxOpen", pagegift__rx_open),
    PAGEGIFT__FN("rxAdd", pagegift__rx_add),
    PAGEGIFT__FN("rxWatch", pagegift__rx_watch),
    PAGEGIFT__FN("rxDel", pagegift__rx_del),
    PAGEGIFT__FN("rxRead", pagegift__rx_read),
    PAGEGIFT__FN("rxSend", pagegift__rx_send),
#undef PAGEGIFT__FN
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_set_named_property(env, exports, "constants", pagegift__constants(env));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, pagegift__init)

/*
 * The Node-API glue for work that must not run on the event loop: one generic async-work request
 * for the calls that can take long (data movers, munmap), and uv_poll readiness for sockets and pipes.
 *
 * JS never passes a local address here: it passes the memory itself (an ArrayBuffer, a view or a
 * mapping handle) with an offset and a length, and C resolves, bounds-checks and holds it until the
 * job settles. Only the peer's addresses (process_vm_readv's remote side) travel as numbers: they
 * are checked by the kernel against the peer's address space, never dereferenced here.
 */
#include "binding.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>


enum {
  PAGEGIFT__OP_VM_READ = 1,
  PAGEGIFT__OP_VMSPLICE = 2,
  PAGEGIFT__OP_READ = 3,
  PAGEGIFT__OP_MUNMAP = 4,
  /* 5 and 6 were Pread and Memcpy, removed: their numbers stay refused. */
  PAGEGIFT__OP_POPULATE = 7,
};

#define PAGEGIFT__MAX_SPANS 1024

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int op;
  int64_t a[2];
  pagegift__spans local;
  struct iovec* remote;
  int nremote;
  pagegift__mapping* mapping;
  int64_t result;
} pagegift__request;

static void pagegift__execute(napi_env env, void* data) {
  pagegift__request* r = data;
  switch (r->op) {
    case PAGEGIFT__OP_VM_READ:
      r->result = pagegift_vm_read((pid_t) r->a[0], r->local.iov, r->local.n, r->remote, r->nremote);
      break;
    case PAGEGIFT__OP_VMSPLICE:
      r->result = pagegift_vmsplice_pass((int) r->a[0], r->local.iov, r->local.n, (unsigned int) r->a[1]);
      break;
    case PAGEGIFT__OP_READ:
      r->result = pagegift_read_pass((int) r->a[0], r->local.iov, r->local.n);
      break;
    case PAGEGIFT__OP_POPULATE:
      r->result = pagegift_populate(r->local.iov, r->local.n);
      break;
    case PAGEGIFT__OP_MUNMAP:
      r->result = pagegift_unmap(r->mapping->addr, r->mapping->span);
      break;
    default:
      r->result = -ENOSYS;
  }
}

static void pagegift__complete(napi_env env, napi_status status, void* data) {
  pagegift__request* r = data;
  if (r->deferred != NULL) {
    napi_value v;
    napi_create_double(env, status == napi_ok ? (double) r->result : -ECANCELED, &v);
    napi_resolve_deferred(env, r->deferred, v);
  }
  pagegift__spans_drop(env, &r->local);
  if (r->mapping != NULL) pagegift__mapping_unref(r->mapping);
  napi_delete_async_work(env, r->work);
  free(r->remote);
  free(r);
}

static napi_value pagegift__queue(napi_env env, pagegift__request* r, int want_promise) {
  napi_value name, promise = NULL;
  napi_create_string_utf8(env, "pagegift", NAPI_AUTO_LENGTH, &name);
  if (want_promise) napi_create_promise(env, &r->deferred, &promise);
  napi_create_async_work(env, NULL, name, pagegift__execute, pagegift__complete, r, &r->work);
  napi_queue_async_work(env, r->work);
  return promise;
}

/* Queues the munmap of a doomed mapping that no job uses any more; it runs exactly once. */
void pagegift__mapping_unmap_later(napi_env env, pagegift__mapping* m) {
  m->refs++;
  pagegift__request* r = calloc(1, sizeof(*r));
  r->op = PAGEGIFT__OP_MUNMAP;
  r->mapping = m;
  pagegift__queue(env, r, 0);
}

void pagegift__spans_drop(napi_env env, pagegift__spans* s) {
  for (int i = 0; i < s->nmappings; i++) {
    pagegift__mapping* m = s->mappings[i];
    if (--m->users == 0 && m->doomed) pagegift__mapping_unmap_later(env, m);
    pagegift__mapping_unref(m);
  }
  for (int i = 0; i < s->nstores; i++) pagegift__drop_store(s->stores[i]);
  free(s->iov);
  free(s->mappings);
  free(s->stores);
  memset(s, 0, sizeof(*s));
}

static int pagegift__spans_fail(napi_env env, pagegift__spans* s, const char* code, const char* message) {
  pagegift__spans_drop(env, s);
  napi_throw_range_error(env, code, message);
  return -1;
}

/*
 * Resolves a JS array [memory, offset, length, memory, offset, length, ...] into an iovec array,
 * where memory is a mapping handle, an ArrayBuffer or an ArrayBufferView. Each span must lie inside
 * its memory; each mapping is marked in use and each heap buffer's store held until spans_drop.
 */
int pagegift__spans_take(napi_env env, napi_value arr, pagegift__spans* s) {
  uint32_t count;
  memset(s, 0, sizeof(*s));
  if (napi_get_array_length(env, arr, &count) != napi_ok || count % 3 != 0 || count / 3 > PAGEGIFT__MAX_SPANS) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an array of [memory, offset, length] spans");
    return -1;
  }
  int n = (int) (count / 3);
  s->iov = calloc((size_t) (n > 0 ? n : 1), sizeof(*s->iov));
  s->mappings = calloc((size_t) (n > 0 ? n : 1), sizeof(*s->mappings));
  s->stores = calloc((size_t) (n > 0 ? n : 1), sizeof(*s->stores));
  for (int i = 0; i < n; i++) {
    napi_value mem, off, len;
    napi_valuetype t;
    napi_get_element(env, arr, (uint32_t) (3 * i), &mem);
    napi_get_element(env, arr, (uint32_t) (3 * i + 1), &off);
    napi_get_element(env, arr, (uint32_t) (3 * i + 2), &len);
    int64_t offset = pagegift__int(env, off);
    int64_t length = pagegift__int(env, len);
    char* base;
    size_t size;
    napi_typeof(env, mem, &t);
    if (t == napi_external) {
      pagegift__mapping* m = pagegift__get_mapping(env, mem);
      if (m == NULL) return pagegift__spans_fail(env, s, "ERR_INVALID_ARG_TYPE", "bad mapping handle");
      if (m->doomed) return pagegift__spans_fail(env, s, "ERR_PAGEGIFT_RELEASED", "a span names a mapping that was released");
      m->users++;
      m->refs++;
      s->mappings[s->nmappings++] = m;
      base = m->addr;
      size = m->length;
    } else {
      void* data = NULL;
      void* hold = t == napi_object ? pagegift__hold_store(mem, &data, &size) : NULL;
      if (hold == NULL) return pagegift__spans_fail(env, s, "ERR_INVALID_ARG_TYPE", "a span's memory is not a mapping, an ArrayBuffer or a view");
      s->stores[s->nstores++] = hold;
      base = data;
    }
    if (offset < 0 || length < 0 || (uint64_t) offset + (uint64_t) length > size) {
      return pagegift__spans_fail(env, s, "ERR_OUT_OF_RANGE", "a span lies outside its memory");
    }
    s->iov[i].iov_base = base + offset;
    s->iov[i].iov_len = (size_t) length;
  }
  s->n = n;
  return 0;
}

/*
 * async(op, a0, a1, spans, remote) -> Promise<number>: the result (>= 0) or -errno.
 * op VM_READ: pid a0, into the local spans from the peer's `remote` Float64Array of address/length pairs.
 * op VMSPLICE: one non-blocking pass of vmsplice(a0, spans, a1 | SPLICE_F_NONBLOCK); bytes moved.
 * op READ: one non-blocking pass of readv(a0, spans); bytes moved, -EPIPE at end of file.
 * op POPULATE: maps the page tables of the spans' resident pages (madvise MADV_POPULATE_READ); bytes populated.
 * A pass stops at EAGAIN, so no job ever waits on a peer; callers wait for readiness on the event loop.
 */
napi_value pagegift__async(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 5);
  pagegift__request* r = calloc(1, sizeof(*r));
  napi_valuetype t;
  r->op = (int) pagegift__int(env, argv[0]);
  if (r->op != PAGEGIFT__OP_VM_READ && r->op != PAGEGIFT__OP_VMSPLICE && r->op != PAGEGIFT__OP_READ && r->op != PAGEGIFT__OP_POPULATE) {
    free(r);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "unknown async op");
    return NULL;
  }
  r->a[0] = pagegift__int(env, argv[1]);
  r->a[1] = pagegift__int(env, argv[2]);
  if (pagegift__spans_take(env, argv[3], &r->local) != 0) goto fail;
  napi_typeof(env, argv[4], &t);
  if (r->op == PAGEGIFT__OP_VM_READ && (t != napi_object || (r->nremote = pagegift__iovs(env, argv[4], &r->remote)) < 0)) {
    pagegift__spans_drop(env, &r->local);
    if (t != napi_object) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "process_vm_readv needs the remote iovec");
    goto fail;
  }
  return pagegift__queue(env, r, 1);
fail:
  free(r);
  return NULL;
}

/* addresses(spans) -> [address, length, ...]: where the spans live, to describe them to a cma reader. */
napi_value pagegift__addresses(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  pagegift__spans s;
  napi_value out;
  if (pagegift__spans_take(env, argv[0], &s) != 0) return NULL;
  napi_create_array_with_length(env, (size_t) (2 * s.n), &out);
  for (int i = 0; i < s.n; i++) {
    napi_set_element(env, out, (uint32_t) (2 * i), pagegift__number(env, (double) (uintptr_t) s.iov[i].iov_base));
    napi_set_element(env, out, (uint32_t) (2 * i + 1), pagegift__number(env, (double) s.iov[i].iov_len));
  }
  pagegift__spans_drop(env, &s);
  return out;
}

/* unmapAsync(handle): the mapping is gone for JS at once; the munmap, O(pages touched), runs on the threadpool once no job uses it. */
napi_value pagegift__unmap_async(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  pagegift__mapping* m = pagegift__get_mapping(env, argv[0]);
  if (m == NULL || m->doomed) return NULL;
  m->doomed = 1;
  if (m->users == 0) pagegift__mapping_unmap_later(env, m);
  return NULL;
}

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int closing;
  int refs;
} pagegift__poller;

/* A poller is owned by its JS handle and by libuv until the close callback; freed when both let go. */
static void pagegift__poller_unref(pagegift__poller* p) {
  if (--p->refs == 0) free(p);
}

static void pagegift__poll_cb(uv_poll_t* handle, int status, int events) {
  pagegift__poller* p = handle->data;
  if (p->closing) return;
  napi_handle_scope scope;
  napi_open_handle_scope(p->env, &scope);
  napi_value cb, recv, args[2], result;
  napi_get_reference_value(p->env, p->callback, &cb);
  napi_get_global(p->env, &recv);
  napi_create_int32(p->env, status, &args[0]);
  napi_create_int32(p->env, events, &args[1]);
  /* make_callback drains the microtask queue afterwards, so promise reactions run at once. */
  napi_make_callback(p->env, p->context, recv, cb, 2, args, &result);
  napi_close_handle_scope(p->env, scope);
}

static void pagegift__poll_closed(uv_handle_t* handle) {
  pagegift__poller* p = handle->data;
  napi_delete_reference(p->env, p->callback);
  napi_async_destroy(p->env, p->context);
  pagegift__poller_unref(p);
}

static void pagegift__poll_finalize(napi_env env, void* data, void* hint) {
  pagegift__poller* p = data;
  /* A poller collected without pollClose() still has to stop watching its fd. */
  if (!p->closing) {
    p->closing = 1;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t*) &p->poll, pagegift__poll_closed);
  }
  pagegift__poller_unref(p);
}

/* pollStart(fd, events, callback(status, events)) -> handle; events are libuv's UV_READABLE/UV_WRITABLE (constants). */
napi_value pagegift__poll_start(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 3);
  uv_loop_t* loop;
  PAGEGIFT__CHECK(env, napi_get_uv_event_loop(env, &loop));
  pagegift__poller* p = calloc(1, sizeof(*p));
  p->env = env;
  p->refs = 2;
  int r = uv_poll_init(loop, &p->poll, (int) pagegift__int(env, argv[0]));
  if (r != 0) {
    free(p);
    return pagegift__number(env, r);
  }
  p->poll.data = p;
  napi_value name, handle;
  napi_create_string_utf8(env, "pagegift:poll", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &p->context);
  napi_create_reference(env, argv[2], 1, &p->callback);
  int events = (int) pagegift__int(env, argv[1]);
  if (events != 0) uv_poll_start(&p->poll, events, pagegift__poll_cb);
  PAGEGIFT__CHECK(env, napi_create_external(env, p, pagegift__poll_finalize, NULL, &handle));
  return handle;
}

/* pollUpdate(handle, events): 0 stops watching until the next update. */
napi_value pagegift__poll_update(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  pagegift__poller* p = NULL;
  PAGEGIFT__CHECK(env, napi_get_value_external(env, argv[0], (void**) &p));
  if (p->closing) return NULL;
  int events = (int) pagegift__int(env, argv[1]);
  if (events == 0) {
    uv_poll_stop(&p->poll);
  } else {
    uv_poll_start(&p->poll, events, pagegift__poll_cb);
  }
  return NULL;
}

napi_value pagegift__poll_close(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  pagegift__poller* p = NULL;
  PAGEGIFT__CHECK(env, napi_get_value_external(env, argv[0], (void**) &p));
  if (!p->closing) {
    p->closing = 1;
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t*) &p->poll, pagegift__poll_closed);
  }
  return NULL;
}

#define PAGEGIFT__CONST(name, value) do { napi_value v; napi_create_int32(env, (value), &v); napi_set_named_property(env, out, name, v); } while (0)

/* The numbers TypeScript must agree with C and the kernel on, taken from the headers here rather than copied by hand. */
napi_value pagegift__constants(napi_env env) {
  napi_value out;
  napi_create_object(env, &out);
  PAGEGIFT__CONST("EAGAIN", EAGAIN);
  PAGEGIFT__CONST("EPIPE", EPIPE);
  PAGEGIFT__CONST("ECONNREFUSED", ECONNREFUSED);
  PAGEGIFT__CONST("EINVAL", EINVAL);
  PAGEGIFT__CONST("EBUSY", EBUSY);
  PAGEGIFT__CONST("UV_READABLE", UV_READABLE);
  PAGEGIFT__CONST("UV_WRITABLE", UV_WRITABLE);
  PAGEGIFT__CONST("UV_DISCONNECT", UV_DISCONNECT);
  PAGEGIFT__CONST("MSG_TRUNC", PAGEGIFT_MSG_TRUNC);
  PAGEGIFT__CONST("MSG_CTRUNC", PAGEGIFT_MSG_CTRUNC);
  PAGEGIFT__CONST("SPLICE_F_GIFT", SPLICE_F_GIFT);
  PAGEGIFT__CONST("F_SEAL_SEAL", F_SEAL_SEAL);
  PAGEGIFT__CONST("F_SEAL_SHRINK", F_SEAL_SHRINK);
  PAGEGIFT__CONST("F_SEAL_GROW", F_SEAL_GROW);
  PAGEGIFT__CONST("OP_VM_READ", PAGEGIFT__OP_VM_READ);
  PAGEGIFT__CONST("OP_VMSPLICE", PAGEGIFT__OP_VMSPLICE);
  PAGEGIFT__CONST("OP_READ", PAGEGIFT__OP_READ);
  PAGEGIFT__CONST("OP_POPULATE", PAGEGIFT__OP_POPULATE);
  return out;
}

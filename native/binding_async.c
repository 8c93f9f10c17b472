/*
 * The Node-API glue for work that must not run on the event loop: one generic async-work request
 * for the calls that can block or take long (data movers, munmap), and uv_poll readiness for sockets.
 */
#include "binding.h"
#include "sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum {
  PAGEGIFT__OP_VM_READ = 1,
  PAGEGIFT__OP_VMSPLICE = 2,
  PAGEGIFT__OP_READ_ALL = 3,
  PAGEGIFT__OP_PREAD = 4,
  PAGEGIFT__OP_MEMCPY = 5,
  PAGEGIFT__OP_MUNMAP = 6,
};

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int op;
  int64_t a[4];
  struct iovec* iov1;
  int n1;
  struct iovec* iov2;
  int n2;
  pagegift__mapping* mapping;
  int64_t result;
} pagegift__request;

static void pagegift__execute(napi_env env, void* data) {
  pagegift__request* r = data;
  switch (r->op) {
    case PAGEGIFT__OP_VM_READ:
      r->result = pagegift_vm_read((pid_t) r->a[0], r->iov1, r->n1, r->iov2, r->n2);
      break;
    case PAGEGIFT__OP_VMSPLICE:
      r->result = pagegift_vmsplice_all((int) r->a[0], r->iov1, r->n1, (unsigned int) r->a[1]);
      break;
    case PAGEGIFT__OP_READ_ALL:
      r->result = pagegift_read_all((int) r->a[0], r->iov1, r->n1);
      break;
    case PAGEGIFT__OP_PREAD:
      r->result = pagegift_pread_all((int) r->a[0], (void*) (uintptr_t) r->a[1], (size_t) r->a[2], (off_t) r->a[3]);
      break;
    case PAGEGIFT__OP_MEMCPY:
      memcpy((void*) (uintptr_t) r->a[0], (void*) (uintptr_t) r->a[1], (size_t) r->a[2]);
      r->result = r->a[2];
      break;
    case PAGEGIFT__OP_MUNMAP:
      r->result = pagegift_unmap((void*) (uintptr_t) r->a[0], (size_t) r->a[1]);
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
  if (r->mapping != NULL) pagegift__mapping_unref(r->mapping);
  napi_delete_async_work(env, r->work);
  free(r->iov1);
  free(r->iov2);
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

/*
 * async(op, a0, a1, a2, a3, iov1, iov2) -> Promise<number>: the result (>= 0) or -errno.
 * The caller keeps every buffer that an address points into alive until the promise settles.
 */
napi_value pagegift__async(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 7);
  pagegift__request* r = calloc(1, sizeof(*r));
  napi_valuetype t;
  r->op = (int) pagegift__int(env, argv[0]);
  for (int i = 0; i < 4; i++) r->a[i] = pagegift__int(env, argv[1 + i]);
  napi_typeof(env, argv[5], &t);
  if (t == napi_object && (r->n1 = pagegift__iovs(env, argv[5], &r->iov1)) < 0) goto fail;
  napi_typeof(env, argv[6], &t);
  if (t == napi_object && (r->n2 = pagegift__iovs(env, argv[6], &r->iov2)) < 0) goto fail;
  return pagegift__queue(env, r, 1);
fail:
  free(r->iov1);
  free(r);
  return NULL;
}

/* unmapAsync(handle): the mapping is gone for JS at once; the munmap itself, O(pages touched), runs on the threadpool. */
napi_value pagegift__unmap_async(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 1);
  pagegift__mapping* m = NULL;
  PAGEGIFT__CHECK(env, napi_get_value_external(env, argv[0], (void**) &m));
  if (m->unmapped) return NULL;
  m->unmapped = 1;
  m->refs++;
  pagegift__request* r = calloc(1, sizeof(*r));
  r->op = PAGEGIFT__OP_MUNMAP;
  r->a[0] = (int64_t) (uintptr_t) m->addr;
  r->a[1] = (int64_t) m->length;
  r->mapping = m;
  pagegift__queue(env, r, 0);
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

static int pagegift__uv_events(int events) {
  return ((events & 1) ? UV_READABLE : 0) | ((events & 2) ? UV_WRITABLE : 0) | UV_DISCONNECT;
}

/* pollStart(fd, events, callback(status, events)) -> handle; events: 1 readable, 2 writable. */
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
  uv_poll_start(&p->poll, pagegift__uv_events((int) pagegift__int(env, argv[1])), pagegift__poll_cb);
  PAGEGIFT__CHECK(env, napi_create_external(env, p, pagegift__poll_finalize, NULL, &handle));
  return handle;
}

napi_value pagegift__poll_update(napi_env env, napi_callback_info info) {
  PAGEGIFT__ARGS(env, info, 2);
  pagegift__poller* p = NULL;
  PAGEGIFT__CHECK(env, napi_get_value_external(env, argv[0], (void**) &p));
  if (p->closing) return NULL;
  int events = (int) pagegift__int(env, argv[1]);
  if (events == 0) {
    uv_poll_stop(&p->poll);
  } else {
    uv_poll_start(&p->poll, pagegift__uv_events(events), pagegift__poll_cb);
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

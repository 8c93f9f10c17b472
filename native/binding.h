/* Shared helpers of the Node-API glue (binding.c and binding_async.c). */
#ifndef PAGEGIFT_BINDING_H
#define PAGEGIFT_BINDING_H

#include <node_api.h>
#include <stdint.h>
#include <sys/uio.h>

#define PAGEGIFT__CHECK(env, call)                                        \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error((env), "ERR_PAGEGIFT_NAPI", "Node-API call failed: " #call); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

#define PAGEGIFT__ARGS(env, info, n)                                      \
  size_t argc = (n);                                                      \
  napi_value argv[(n) > 0 ? (n) : 1];                                     \
  PAGEGIFT__CHECK((env), napi_get_cb_info((env), (info), &argc, argv, NULL, NULL))

/*
 * A mapping made by map(). `refs` counts the owners of this struct (its ArrayBuffer, its JS handle,
 * queued work); it is freed when all are gone. `users` counts async jobs reading or writing the
 * pages: a release (`doomed`) unmaps only once no job uses them, so no job ever meets unmapped memory.
 * A mapping handed over (handover) to a new handle is `doomed` for its old owners: only the new one unmaps.
 */
typedef struct {
  void* addr;
  /* The bytes a span may name; `span` is what is mapped (more for a slot: see pagegift_map_slot). */
  size_t length;
  size_t span;
  int refs;
  int users;
  int doomed;
  /* An ArrayBuffer was made over the pages (map, wrap): at most one ever is. */
  int wrapped;
} pagegift__mapping;

/* Memory an async job reads or writes, resolved from JS values in C and kept alive until it settles. */
typedef struct {
  struct iovec* iov;
  int n;
  pagegift__mapping** mappings;
  int nmappings;
  void** stores;
  int nstores;
} pagegift__spans;

napi_value pagegift__number(napi_env env, double v);
int64_t pagegift__int(napi_env env, napi_value v);
void* pagegift__view_data(napi_env env, napi_value v, size_t* length);
int pagegift__iovs(napi_env env, napi_value arr, struct iovec** out);
int pagegift__spans_take(napi_env env, napi_value arr, pagegift__spans* out);
void pagegift__spans_drop(napi_env env, pagegift__spans* s);
pagegift__mapping* pagegift__get_mapping(napi_env env, napi_value handle);
void pagegift__mapping_unref(pagegift__mapping* m);
void pagegift__mapping_unmap_later(napi_env env, pagegift__mapping* m);

napi_value pagegift__uncounted_arraybuffer(napi_env env, void* data, size_t length);
void* pagegift__hold_store(napi_value value, void** data, size_t* length);
void pagegift__drop_store(void* hold);
napi_value pagegift__addresses(napi_env env, napi_callback_info info);
napi_value pagegift__constants(napi_env env);
napi_value pagegift__async(napi_env env, napi_callback_info info);
napi_value pagegift__unmap_async(napi_env env, napi_callback_info info);
napi_value pagegift__poll_start(napi_env env, napi_callback_info info);
napi_value pagegift__poll_update(napi_env env, napi_callback_info info);
napi_value pagegift__poll_close(napi_env env, napi_callback_info info);
napi_value pagegift__rx_open(napi_env env, napi_callback_info info);
napi_value pagegift__rx_add(napi_env env, napi_callback_info info);
napi_value pagegift__rx_watch(napi_env env, napi_callback_info info);
napi_value pagegift__rx_del(napi_env env, napi_callback_info info);
napi_value pagegift__rx_read(napi_env env, napi_callback_info info);
napi_value pagegift__rx_send(napi_env env, napi_callback_info info);

#endif

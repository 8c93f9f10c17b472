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

/* A mapping made by map(); shared by its ArrayBuffer and its JS handle, freed when both are gone. */
typedef struct {
  void* addr;
  size_t length;
  int refs;
  int unmapped;
} pagegift__mapping;

napi_value pagegift__number(napi_env env, double v);
int64_t pagegift__int(napi_env env, napi_value v);
void* pagegift__view_data(napi_env env, napi_value v, size_t* length);
int pagegift__iovs(napi_env env, napi_value arr, struct iovec** out);
void pagegift__mapping_unref(pagegift__mapping* m);

napi_value pagegift__uncounted_arraybuffer(napi_env env, void* data, size_t length);
napi_value pagegift__async(napi_env env, napi_callback_info info);
napi_value pagegift__unmap_async(napi_env env, napi_callback_info info);
napi_value pagegift__poll_start(napi_env env, napi_callback_info info);
napi_value pagegift__poll_update(napi_env env, napi_callback_info info);
napi_value pagegift__poll_close(napi_env env, napi_callback_info info);

#endif

/*
 * An ArrayBuffer over memory that V8 must not account for: the one place where pagegift reaches
 * past Node-API into V8. Node-API's napi_create_external_arraybuffer counts the buffer's length as
 * external memory, and V8 answers a 1 GiB mapping with back-to-back full GCs, which made mapping a
 * gift cost milliseconds. A backing store with BackingStore::EmptyDeleter is not counted ("freeing
 * it would not free the memory"), which is exactly true of a mapping that release() or a finalizer
 * on the ArrayBuffer object unmaps.
 */
#include <node_api.h>
#include <v8.h>

#include <cstring>

extern "C" napi_value pagegift__uncounted_arraybuffer(napi_env env, void* data, size_t length) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(data, length, v8::BackingStore::EmptyDeleter, nullptr);
  v8::Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, std::move(store));
  // A napi_value is the address of a handle slot, as a v8::Local is (node's JsValueFromV8LocalValue).
  v8::Local<v8::Value> value = ab;
  napi_value out;
  static_assert(sizeof(out) == sizeof(value), "napi_value and v8::Local differ in size");
  std::memcpy(&out, &value, sizeof(out));
  return out;
}

/*
 * The two places where pagegift reaches past Node-API into V8.
 *
 * An ArrayBuffer over memory that V8 must not account for. Node-API's
 * napi_create_external_arraybuffer counts the buffer's length as external memory, and V8 answers a
 * 1 GiB mapping with back-to-back full GCs, which made mapping a gift cost milliseconds. A backing
 * store with BackingStore::EmptyDeleter is not counted ("freeing it would not free the memory"),
 * which is exactly true of a mapping that release() or a finalizer on the ArrayBuffer object unmaps.
 *
 * A hold on the backing store of a heap buffer, taken for the duration of an async job: a user who
 * transfers or detaches the buffer mid-job moves the store to another owner or drops it, and only a
 * reference on the store itself keeps the memory the threadpool writes into alive.
 */
#include <node_api.h>
#include <v8.h>

#include <cstring>
#include <memory>

template <typename T>
static v8::Local<T> pagegift__local(napi_value v) {
  // A napi_value is the address of a handle slot, as a v8::Local is (node's V8LocalValueFromJsValue).
  v8::Local<T> out;
  static_assert(sizeof(out) == sizeof(v), "napi_value and v8::Local differ in size");
  std::memcpy(static_cast<void*>(&out), &v, sizeof(v));
  return out;
}

extern "C" napi_value pagegift__uncounted_arraybuffer(napi_env env, void* data, size_t length) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(data, length, v8::BackingStore::EmptyDeleter, nullptr);
  v8::Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, std::move(store));
  v8::Local<v8::Value> value = ab;
  napi_value out;
  std::memcpy(&out, &value, sizeof(out));
  return out;
}

/*
 * Holds the backing store behind an ArrayBuffer or ArrayBufferView; sets *data and *length to the
 * bytes the value covers. Returns NULL when the value is neither.
 */
extern "C" void* pagegift__hold_store(napi_value value, void** data, size_t* length) {
  v8::Local<v8::Value> v = pagegift__local<v8::Value>(value);
  std::shared_ptr<v8::BackingStore> store;
  size_t offset = 0;
  if (v->IsArrayBuffer()) {
    v8::Local<v8::ArrayBuffer> ab = v.As<v8::ArrayBuffer>();
    store = ab->GetBackingStore();
    *length = ab->ByteLength();
  } else if (v->IsArrayBufferView()) {
    v8::Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
    store = view->Buffer()->GetBackingStore();
    offset = view->ByteOffset();
    *length = view->ByteLength();
  } else {
    return nullptr;
  }
  *data = static_cast<char*>(store->Data()) + offset;
  if (store->Data() == nullptr) *length = 0;
  return new std::shared_ptr<v8::BackingStore>(std::move(store));
}

extern "C" void pagegift__drop_store(void* hold) {
  delete static_cast<std::shared_ptr<v8::BackingStore>*>(hold);
}

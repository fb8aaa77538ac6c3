// BPF ring buffer consumer driven by the Node event loop: libbpf's epoll fd is watched by a
// uv_poll_t; when readable, all pending records are consumed and handed to JS in one call as an
// array of Buffers (copies). No thread, no busy polling.
#include "common.h"
#include <bpf/libbpf.h>
#include <uv.h>
#include <cerrno>
#include <map>
#include <memory>
#include <vector>

namespace isthmus {

struct Consumer {
  Napi::Env env;
  ring_buffer *rb = nullptr;
  uv_poll_t *poll = nullptr;
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
  std::vector<std::vector<uint8_t>> pending;
  bool delivering = false;  // inside the JS callback, which may close this consumer
  bool closed = false;
  explicit Consumer(Napi::Env e) : env(e) {}
};

static void Destroy(Consumer *c) {
  if (c->rb) ring_buffer__free(c->rb);
  c->rb = nullptr;
  c->callback.Reset();
  delete c;
}

static std::map<uint32_t, Consumer *> g_consumers;
static uint32_t g_next_consumer = 1;

static int OnSample(void *ctx, void *data, size_t size) {
  auto *c = static_cast<Consumer *>(ctx);
  auto *bytes = static_cast<uint8_t *>(data);
  c->pending.emplace_back(bytes, bytes + size);
  return 0;
}

static void Deliver(Consumer *c) {
  if (c->pending.empty()) return;
  Napi::HandleScope scope(c->env);
  Napi::Array records = Napi::Array::New(c->env, c->pending.size());
  for (size_t i = 0; i < c->pending.size(); i++)
    records.Set(i, Napi::Buffer<uint8_t>::Copy(c->env, c->pending[i].data(), c->pending[i].size()));
  c->pending.clear();
  c->delivering = true;
  try {
    c->callback.MakeCallback(c->env.Global(), {records}, *c->context);
  } catch (const Napi::Error &e) {
    napi_fatal_exception(c->env, e.Value());  // surfaces as 'uncaughtException', like any callback
  }
  c->delivering = false;
  if (c->closed) Destroy(c);  // closed from its own callback: freed only now
}

static void OnReadable(uv_poll_t *handle, int status, int events) {
  auto *c = static_cast<Consumer *>(handle->data);
  if (status < 0 || c->closed) return;
  ring_buffer__consume(c->rb);
  Deliver(c);
}

// ringbufOpen(mapFd, callback(records: Buffer[]), keepAlive) -> consumer id
static Napi::Value RingbufOpen(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "ring buffer map fd");
  if (!info[1].IsFunction()) ThrowErrno(info.Env(), "ringbufOpen", EINVAL, "callback must be a function");
  bool keep_alive = info.Length() > 2 && info[2].ToBoolean();
  auto *c = new Consumer(info.Env());
  c->rb = ring_buffer__new(fd, OnSample, c, nullptr);
  int err = libbpf_get_error(c->rb);
  if (err) {
    delete c;
    ThrowErrno(info.Env(), "ring_buffer__new", err);
  }
  uv_loop_t *loop = nullptr;
  napi_get_uv_event_loop(info.Env(), &loop);
  c->poll = new uv_poll_t;
  c->poll->data = c;
  err = uv_poll_init(loop, c->poll, ring_buffer__epoll_fd(c->rb));
  if (!err) err = uv_poll_start(c->poll, UV_READABLE, OnReadable);
  if (err) {
    ring_buffer__free(c->rb);
    delete c->poll;
    delete c;
    ThrowErrno(info.Env(), "uv_poll_start", -err);
  }
  if (!keep_alive) uv_unref(reinterpret_cast<uv_handle_t *>(c->poll));
  c->callback = Napi::Persistent(info[1].As<Napi::Function>());
  c->context = std::make_unique<Napi::AsyncContext>(info.Env(), "isthmus:ringbuf");
  uint32_t id = g_next_consumer++;
  g_consumers[id] = c;
  return Napi::Number::New(info.Env(), id);
}

// ringbufDrain(id) -> records delivered now (drains without waiting for the event loop)
static Napi::Value RingbufDrain(const Napi::CallbackInfo &info) {
  auto it = g_consumers.find(ArgUint(info, 0, "consumer id"));
  if (it == g_consumers.end()) ThrowErrno(info.Env(), "ringbufDrain", EBADF, "unknown or closed consumer");
  if (it->second->delivering) return Napi::Number::New(info.Env(), 0);  // no re-entry from a callback
  int n = ring_buffer__consume(it->second->rb);
  if (n < 0) ThrowErrno(info.Env(), "ring_buffer__consume", n);
  Deliver(it->second);
  return Napi::Number::New(info.Env(), n);
}

static void OnPollClosed(uv_handle_t *handle) { delete reinterpret_cast<uv_poll_t *>(handle); }

static Napi::Value RingbufClose(const Napi::CallbackInfo &info) {
  auto it = g_consumers.find(ArgUint(info, 0, "consumer id"));
  if (it == g_consumers.end()) return Napi::Boolean::New(info.Env(), false);
  Consumer *c = it->second;
  g_consumers.erase(it);
  uv_poll_stop(c->poll);
  uv_close(reinterpret_cast<uv_handle_t *>(c->poll), OnPollClosed);
  c->closed = true;
  if (!c->delivering) Destroy(c);
  return Napi::Boolean::New(info.Env(), true);
}

void InitRingbuf(Napi::Env env, Napi::Object exports) {
  exports.Set("ringbufOpen", Napi::Function::New(env, RingbufOpen));
  exports.Set("ringbufDrain", Napi::Function::New(env, RingbufDrain));
  exports.Set("ringbufClose", Napi::Function::New(env, RingbufClose));
}

}  // namespace isthmus

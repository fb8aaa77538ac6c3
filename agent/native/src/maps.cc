// Map element operations on raw Buffers. Sizes are checked by the kernel (EINVAL/EFAULT on
// mismatch), so the Buffers must be exactly key_size / value_size (percpu: rounded * ncpus).
#include "common.h"
#include <bpf/bpf.h>
#include <cerrno>

namespace isthmus {

// mapLookup(fd, key, valueOut) -> found
static Napi::Value MapLookup(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "map fd");
  auto key = ArgBuffer(info, 1, "key");
  auto value = ArgBuffer(info, 2, "value buffer");
  if (bpf_map_lookup_elem(fd, key.Data(), value.Data()) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), "bpf_map_lookup_elem", errno);
}

// mapUpdate(fd, key, value, flags)
static Napi::Value MapUpdate(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "map fd");
  auto key = ArgBuffer(info, 1, "key");
  auto value = ArgBuffer(info, 2, "value");
  uint32_t flags = info.Length() > 3 ? ArgUint(info, 3, "flags") : static_cast<uint32_t>(BPF_ANY);
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags)) ThrowErrno(info.Env(), "bpf_map_update_elem", errno);
  return info.Env().Undefined();
}

// mapDelete(fd, key) -> existed
static Napi::Value MapDelete(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "map fd");
  auto key = ArgBuffer(info, 1, "key");
  if (bpf_map_delete_elem(fd, key.Data()) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), "bpf_map_delete_elem", errno);
}

static bool BatchUnsupported(int err) { return err == EINVAL || err == ENOTSUP || err == 524 /* ENOTSUPP */; }

// mapUpdateBatch(fd, keys, values, count, flags) -> count. keys/values are count records back to
// back. Uses BPF_MAP_UPDATE_BATCH where the map type has it (hash, array), else one syscall per
// element without leaving C++ (LPM tries have no batch op).
static Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "map fd");
  auto keys = ArgBuffer(info, 1, "keys");
  auto values = ArgBuffer(info, 2, "values");
  uint32_t count = ArgUint(info, 3, "count");
  uint32_t flags = info.Length() > 4 ? ArgUint(info, 4, "flags") : static_cast<uint32_t>(BPF_ANY);
  if (count == 0) return Napi::Number::New(info.Env(), 0);
  if (keys.Length() % count || values.Length() % count)
    ThrowErrno(info.Env(), "bpf_map_update_batch", EINVAL, "keys/values length is not a multiple of count");
  size_t ksz = keys.Length() / count, vsz = values.Length() / count;
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
  uint32_t done = count;
  if (bpf_map_update_batch(fd, keys.Data(), values.Data(), &done, &opts) == 0)
    return Napi::Number::New(info.Env(), count);
  int err = errno;
  if (!BatchUnsupported(err) || done != 0) ThrowErrno(info.Env(), "bpf_map_update_batch", err);
  for (uint32_t i = 0; i < count; i++) {
    if (bpf_map_update_elem(fd, keys.Data() + i * ksz, values.Data() + i * vsz, flags))
      ThrowErrno(info.Env(), "bpf_map_update_elem", errno, "element " + std::to_string(i) + " of batch");
  }
  return Napi::Number::New(info.Env(), count);
}

// mapDeleteBatch(fd, keys, count) -> deleted (missing keys are skipped, not errors)
static Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "map fd");
  auto keys = ArgBuffer(info, 1, "keys");
  uint32_t count = ArgUint(info, 2, "count");
  if (count == 0) return Napi::Number::New(info.Env(), 0);
  if (keys.Length() % count) ThrowErrno(info.Env(), "mapDeleteBatch", EINVAL, "keys length is not a multiple of count");
  size_t ksz = keys.Length() / count;
  uint32_t deleted = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (bpf_map_delete_elem(fd, keys.Data() + i * ksz) == 0) deleted++;
    else if (errno != ENOENT) ThrowErrno(info.Env(), "bpf_map_delete_elem", errno);
  }
  return Napi::Number::New(info.Env(), deleted);
}

// mapNextKey(fd, key|null, nextOut) -> has next
static Napi::Value MapNextKey(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "map fd");
  const void *key = nullptr;
  if (!info[1].IsNull() && !info[1].IsUndefined()) key = ArgBuffer(info, 1, "key").Data();
  auto next = ArgBuffer(info, 2, "next key buffer");
  if (bpf_map_get_next_key(fd, key, next.Data()) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), "bpf_map_get_next_key", errno);
}

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, MapUpdateBatch));
  exports.Set("mapDeleteBatch", Napi::Function::New(env, MapDeleteBatch));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey));
}

}  // namespace isthmus

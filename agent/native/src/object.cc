// BPF objects: open + load with a pin root (maps created or reused by name), program and map fds.
#include "common.h"
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>
#include <cerrno>
#include <map>

namespace isthmus {

static std::map<uint32_t, bpf_object *> g_objects;
static uint32_t g_next_handle = 1;

static bpf_object *ObjectArg(const Napi::CallbackInfo &info) {
  uint32_t h = ArgUint(info, 0, "object handle");
  auto it = g_objects.find(h);
  if (it == g_objects.end()) ThrowErrno(info.Env(), "object lookup", EBADF, "unknown or closed object handle");
  return it->second;
}

// objectOpen(path, pinRoot) -> handle
static Napi::Value ObjectOpen(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "object path");
  std::string pin_root = ArgString(info, 1, "pin root");
  LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_root.empty() ? nullptr : pin_root.c_str());
  g_libbpf_log.clear();
  bpf_object *obj = bpf_object__open_file(path.c_str(), &opts);
  int err = libbpf_get_error(obj);
  if (err) ThrowErrno(info.Env(), "bpf_object__open_file", err, path + ": " + g_libbpf_log);
  if (pin_root.empty()) {
    // No pin root means no pinning at all (libbpf would otherwise fall back to /sys/fs/bpf).
    bpf_map *m;
    bpf_object__for_each_map(m, obj) bpf_map__set_pin_path(m, nullptr);
  }
  err = bpf_object__load(obj);
  if (err) {
    std::string log = g_libbpf_log;
    bpf_object__close(obj);
    ThrowErrno(info.Env(), "bpf_object__load", err, path + ": " + log);
  }
  uint32_t h = g_next_handle++;
  g_objects[h] = obj;
  return Napi::Number::New(info.Env(), h);
}

static Napi::Value ObjectClose(const Napi::CallbackInfo &info) {
  uint32_t h = ArgUint(info, 0, "object handle");
  auto it = g_objects.find(h);
  if (it == g_objects.end()) return Napi::Boolean::New(info.Env(), false);
  bpf_object__close(it->second);
  g_objects.erase(it);
  return Napi::Boolean::New(info.Env(), true);
}

static Napi::Value ProgramFd(const Napi::CallbackInfo &info) {
  bpf_object *obj = ObjectArg(info);
  std::string name = ArgString(info, 1, "program name");
  bpf_program *prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) ThrowErrno(info.Env(), "bpf_object__find_program_by_name", ENOENT, name);
  return Napi::Number::New(info.Env(), bpf_program__fd(prog));
}

static Napi::Value MapFd(const Napi::CallbackInfo &info) {
  bpf_object *obj = ObjectArg(info);
  std::string name = ArgString(info, 1, "map name");
  bpf_map *map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map) ThrowErrno(info.Env(), "bpf_object__find_map_by_name", ENOENT, name);
  return Napi::Number::New(info.Env(), bpf_map__fd(map));
}

// Names of the object's programs and maps (for diagnostics and tests).
static Napi::Value ObjectContents(const Napi::CallbackInfo &info) {
  bpf_object *obj = ObjectArg(info);
  Napi::Env env = info.Env();
  Napi::Array progs = Napi::Array::New(env), maps = Napi::Array::New(env);
  bpf_program *p;
  bpf_object__for_each_program(p, obj) progs.Set(progs.Length(), Napi::String::New(env, bpf_program__name(p)));
  bpf_map *m;
  bpf_object__for_each_map(m, obj) maps.Set(maps.Length(), Napi::String::New(env, bpf_map__name(m)));
  Napi::Object out = Napi::Object::New(env);
  out.Set("programs", progs);
  out.Set("maps", maps);
  return out;
}

static Napi::Value MapInfo(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "map fd");
  bpf_map_info mi = {};
  uint32_t len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(fd, &mi, &len)) ThrowErrno(info.Env(), "bpf_obj_get_info_by_fd", errno);
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", mi.id);
  out.Set("type", mi.type);
  out.Set("keySize", mi.key_size);
  out.Set("valueSize", mi.value_size);
  out.Set("maxEntries", mi.max_entries);
  out.Set("flags", mi.map_flags);
  out.Set("name", Napi::String::New(env, mi.name));
  return out;
}

static Napi::Value ProgInfo(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "program fd");
  bpf_prog_info pi = {};
  uint32_t len = sizeof(pi);
  if (bpf_obj_get_info_by_fd(fd, &pi, &len)) ThrowErrno(info.Env(), "bpf_obj_get_info_by_fd", errno);
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", pi.id);
  out.Set("type", pi.type);
  out.Set("name", Napi::String::New(env, pi.name));
  return out;
}

static Napi::Value ObjPin(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "fd");
  std::string path = ArgString(info, 1, "pin path");
  if (bpf_obj_pin(fd, path.c_str())) ThrowErrno(info.Env(), "bpf_obj_pin", errno, path);
  return info.Env().Undefined();
}

static Napi::Value ObjGet(const Napi::CallbackInfo &info) {
  std::string path = ArgString(info, 0, "pin path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(info.Env(), "bpf_obj_get", errno, path);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value CloseFd(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "fd");
  if (close(fd)) ThrowErrno(info.Env(), "close", errno);
  return info.Env().Undefined();
}

static Napi::Value PossibleCpus(const Napi::CallbackInfo &info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), "libbpf_num_possible_cpus", n);
  return Napi::Number::New(info.Env(), n);
}

void InitObject(Napi::Env env, Napi::Object exports) {
  exports.Set("objectOpen", Napi::Function::New(env, ObjectOpen));
  exports.Set("objectClose", Napi::Function::New(env, ObjectClose));
  exports.Set("objectContents", Napi::Function::New(env, ObjectContents));
  exports.Set("programFd", Napi::Function::New(env, ProgramFd));
  exports.Set("mapFd", Napi::Function::New(env, MapFd));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo));
  exports.Set("objPin", Napi::Function::New(env, ObjPin));
  exports.Set("objGet", Napi::Function::New(env, ObjGet));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  exports.Set("possibleCpus", Napi::Function::New(env, PossibleCpus));
}

}  // namespace isthmus

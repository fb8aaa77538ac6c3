// Shared helpers of the Isthmus native addon: thin libbpf/syscall wrappers, no logic.
#pragma once
#include <napi.h>
#include <cstdint>
#include <string>

namespace isthmus {

// Throws a JS Error carrying errno, code (e.g. "ENOENT") and op.
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string &op, int err, const std::string &detail = "");

// Argument helpers: throw a TypeError (code EINVAL) when the argument has the wrong type.
int32_t ArgInt(const Napi::CallbackInfo &info, size_t i, const char *what);
uint32_t ArgUint(const Napi::CallbackInfo &info, size_t i, const char *what);
std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *what);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *what);

extern std::string g_libbpf_log;

void InitObject(Napi::Env env, Napi::Object exports);
void InitMaps(Napi::Env env, Napi::Object exports);
void InitTc(Napi::Env env, Napi::Object exports);
void InitRingbuf(Napi::Env env, Napi::Object exports);

}  // namespace isthmus

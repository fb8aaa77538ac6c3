#include "common.h"
#include <uv.h>
#include <cstring>

namespace isthmus {

void ThrowErrno(Napi::Env env, const std::string &op, int err, const std::string &detail) {
  if (err < 0) err = -err;
  const char *code = err == 524 ? "ENOTSUPP" : uv_err_name(-err);
  std::string msg = op + " failed: " + (err == 524 ? "operation not supported" : std::strerror(err));
  std::string d = detail;
  while (!d.empty() && (d.back() == '\n' || d.back() == ' ')) d.pop_back();
  if (!d.empty()) msg += " (" + d + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("op", Napi::String::New(env, op));
  throw e;
}

static void ThrowArg(const Napi::CallbackInfo &info, size_t i, const char *what, const char *type) {
  Napi::TypeError e = Napi::TypeError::New(
      info.Env(), std::string("argument ") + std::to_string(i) + " (" + what + ") must be " + type);
  e.Set("code", Napi::String::New(info.Env(), "EINVAL"));
  e.Set("errno", Napi::Number::New(info.Env(), 22));
  e.Set("op", Napi::String::New(info.Env(), "argument"));
  throw e;
}

int32_t ArgInt(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (!info[i].IsNumber()) ThrowArg(info, i, what, "a number");
  return info[i].As<Napi::Number>().Int32Value();
}

uint32_t ArgUint(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (!info[i].IsNumber()) ThrowArg(info, i, what, "a number");
  return info[i].As<Napi::Number>().Uint32Value();
}

std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (!info[i].IsString()) ThrowArg(info, i, what, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (!info[i].IsBuffer()) ThrowArg(info, i, what, "a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

}  // namespace isthmus

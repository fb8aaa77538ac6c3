// Isthmus native addon: libbpf and BPF syscalls exposed to TypeScript. Logic lives in TS.
#include "common.h"
#include <bpf/libbpf.h>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

namespace isthmus {

// libbpf warnings (e.g. the verifier log) are kept, tail-bounded, so a failed load can report them.
std::string g_libbpf_log;

static int LibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args) {
  static const bool verbose = std::getenv("ISTHMUS_LIBBPF_DEBUG") != nullptr;
  char line[1024];
  va_list copy;
  va_copy(copy, args);
  vsnprintf(line, sizeof(line), fmt, copy);
  va_end(copy);
  if (verbose) fputs(line, stderr);
  if (level == LIBBPF_DEBUG) return 0;
  g_libbpf_log += line;
  if (g_libbpf_log.size() > 16384) g_libbpf_log.erase(0, g_libbpf_log.size() - 16384);
  return 0;
}

}  // namespace isthmus

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  libbpf_set_print(isthmus::LibbpfPrint);
  isthmus::InitObject(env, exports);
  isthmus::InitMaps(env, exports);
  isthmus::InitTc(env, exports);
  isthmus::InitRingbuf(env, exports);
  return exports;
}

NODE_API_MODULE(isthmus_native, Init)

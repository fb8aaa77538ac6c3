// tc clsact attachment by ifindex. A program swap reuses handle + priority with BPF_TC_F_REPLACE,
// which the kernel performs as one filter change: there is no moment without a program.
#include "common.h"
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <cerrno>

namespace isthmus {

// Runs a tc operation inside another network namespace (e.g. a node's, given as /run/netns/X):
// the calling thread enters it and returns to its own before the JS call returns. BPF objects and
// maps are not per-netns; only the netlink socket libbpf opens for tc is.
class NetnsScope {
 public:
  NetnsScope(Napi::Env env, const std::string &path) : env_(env) {
    if (path.empty()) return;
    home_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ < 0) ThrowErrno(env, "open /proc/thread-self/ns/net", errno);
    int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      int err = errno;
      close(home_);
      ThrowErrno(env, "open netns", err, path);
    }
    int rc = setns(target, CLONE_NEWNET);
    int err = errno;
    close(target);
    if (rc) {
      close(home_);
      ThrowErrno(env, "setns", err, path);
    }
  }
  ~NetnsScope() {
    if (home_ < 0) return;
    if (setns(home_, CLONE_NEWNET)) abort();  // continuing in the wrong namespace would be worse
    close(home_);
  }

 private:
  Napi::Env env_;
  int home_ = -1;
};

static std::string NetnsArg(const Napi::CallbackInfo &info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return "";
  return ArgString(info, i, "netns path");
}

static bpf_tc_attach_point PointArg(const Napi::CallbackInfo &info, size_t i) {
  std::string p = ArgString(info, i, "attach point");
  if (p == "ingress") return BPF_TC_INGRESS;
  if (p == "egress") return BPF_TC_EGRESS;
  ThrowErrno(info.Env(), "tc attach point", EINVAL, "expected 'ingress' or 'egress', got '" + p + "'");
}

// tcEnsureClsact(ifindex, netns?): creates the clsact qdisc unless present.
static Napi::Value TcEnsureClsact(const Napi::CallbackInfo &info) {
  NetnsScope ns(info.Env(), NetnsArg(info, 1));
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ArgInt(info, 0, "ifindex"), .attach_point = BPF_TC_INGRESS);
  int err = bpf_tc_hook_create(&hook);
  if (err && err != -EEXIST) ThrowErrno(info.Env(), "bpf_tc_hook_create", err);
  return Napi::Boolean::New(info.Env(), err == 0);
}

// tcAttach(ifindex, point, progFd, handle, priority, replace, netns?) -> program id now attached
static Napi::Value TcAttach(const Napi::CallbackInfo &info) {
  NetnsScope ns(info.Env(), NetnsArg(info, 6));
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ArgInt(info, 0, "ifindex"), .attach_point = PointArg(info, 1));
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = ArgInt(info, 2, "program fd"), .flags = 0,
              .handle = ArgUint(info, 3, "handle"), .priority = ArgUint(info, 4, "priority"));
  if (info.Length() > 5 && info[5].ToBoolean()) opts.flags = BPF_TC_F_REPLACE;
  int err = bpf_tc_attach(&hook, &opts);
  if (err) ThrowErrno(info.Env(), "bpf_tc_attach", err, "ifindex " + std::to_string(hook.ifindex));
  return Napi::Number::New(info.Env(), opts.prog_id);
}

// tcQuery(ifindex, point, handle, priority, netns?) -> program id, or 0 when nothing is attached
static Napi::Value TcQuery(const Napi::CallbackInfo &info) {
  NetnsScope ns(info.Env(), NetnsArg(info, 4));
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ArgInt(info, 0, "ifindex"), .attach_point = PointArg(info, 1));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = ArgUint(info, 2, "handle"), .priority = ArgUint(info, 3, "priority"));
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return Napi::Number::New(info.Env(), 0);
  if (err) ThrowErrno(info.Env(), "bpf_tc_query", err);
  return Napi::Number::New(info.Env(), opts.prog_id);
}

// tcDetach(ifindex, point, handle, priority, netns?) -> whether a filter was removed
static Napi::Value TcDetach(const Napi::CallbackInfo &info) {
  NetnsScope ns(info.Env(), NetnsArg(info, 4));
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ArgInt(info, 0, "ifindex"), .attach_point = PointArg(info, 1));
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = ArgUint(info, 2, "handle"), .priority = ArgUint(info, 3, "priority"));
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL || err == -ENODEV) return Napi::Boolean::New(info.Env(), false);
  if (err) ThrowErrno(info.Env(), "bpf_tc_detach", err);
  return Napi::Boolean::New(info.Env(), true);
}

void InitTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcEnsureClsact", Napi::Function::New(env, TcEnsureClsact));
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach));
}

}  // namespace isthmus

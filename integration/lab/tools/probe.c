// Connectivity prober for the lab. Reads probe requests on stdin, one per line:
//
//   ID NETNS_PATH DST_IP PORT tcp|udp
//
// and for each joins the source namespace (setns: a socket keeps the namespace it was created
// in), connects with a timeout, sends a marker and checks that it is echoed back. Prints one JSON
// line per probe, in completion order:
//
//   {"id":"ID","result":"allowed|dropped|refused|error","ms":1.234,"detail":"..."}
//
// "dropped" means no answer before the timeout (or an ICMP unreachable); "refused" means a TCP
// RST or an ICMP port unreachable. Probes run concurrently (--parallel N, default 64).
//
//   probe [--timeout-ms N] [--parallel N]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_NS 4096

struct probe {
  char id[128], netns[512], ip[64], proto[8];
  int port, fd, udp, connected, got, slot;
  char marker[160];
  int marker_len;
  double start;
  struct probe *next;
};

static struct { char path[512]; int fd; } ns_cache[MAX_NS];
static int ns_count;
static int timeout_ms = 1000, parallel = 64;
static struct probe **slots;  // the probes in flight, so deadline scans stay O(parallel)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int netns_fd(const char *path) {
  for (int i = 0; i < ns_count; i++)
    if (strcmp(ns_cache[i].path, path) == 0) return ns_cache[i].fd;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ns_count == MAX_NS) return -1;
  snprintf(ns_cache[ns_count].path, sizeof ns_cache[ns_count].path, "%s", path);
  ns_cache[ns_count].fd = fd;
  ns_count++;
  return fd;
}

static void json_escape_print(const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s >= 0x20) putchar(*s);
  }
}

static void finish(int ep, struct probe *p, const char *result, const char *detail, int *inflight) {
  printf("{\"id\":\"");
  json_escape_print(p->id);
  printf("\",\"result\":\"%s\",\"ms\":%.3f,\"detail\":\"", result, now_ms() - p->start);
  json_escape_print(detail);
  printf("\"}\n");
  fflush(stdout);
  if (p->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
    close(p->fd);
    p->fd = -1;
    slots[p->slot] = NULL;
    (*inflight)--;
  }
}

static const char *classify(int err) {
  if (err == ECONNREFUSED || err == ECONNRESET) return "refused";
  if (err == EHOSTUNREACH || err == ENETUNREACH || err == ETIMEDOUT) return "dropped";
  return "error";
}

// Starts a probe; returns 0 when it is in flight, -1 when it already finished.
static int launch(int ep, struct probe *p, int *inflight) {
  p->start = now_ms();
  p->fd = -1;
  int ns = netns_fd(p->netns);
  if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) { finish(ep, p, "error", "cannot enter source netns", inflight); return -1; }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p->port)};
  if (inet_pton(AF_INET, p->ip, &a.sin_addr) != 1 || p->port <= 0 || p->port > 65535) {
    finish(ep, p, "error", "bad destination", inflight);
    return -1;
  }
  p->fd = socket(AF_INET, (p->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (p->fd < 0) { finish(ep, p, "error", strerror(errno), inflight); return -1; }
  for (p->slot = 0; slots[p->slot]; p->slot++) {}
  slots[p->slot] = p;
  (*inflight)++;
  p->marker_len = snprintf(p->marker, sizeof p->marker, "isthmus-probe %s %ld\n", p->id, random());
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = p};
  epoll_ctl(ep, EPOLL_CTL_ADD, p->fd, &ev);
  if (connect(p->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    finish(ep, p, classify(errno), strerror(errno), inflight);
    return -1;
  }
  return 0;
}

static void on_event(int ep, struct probe *p, unsigned events, int *inflight) {
  if (p->fd < 0) return;
  int err = 0;
  socklen_t len = sizeof err;
  if (events & EPOLLERR) {
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { finish(ep, p, classify(err), strerror(err), inflight); return; }
  }
  if ((events & EPOLLOUT) && !p->connected) {
    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { finish(ep, p, classify(err), strerror(err), inflight); return; }
    p->connected = 1;
    if (send(p->fd, p->marker, p->marker_len, MSG_NOSIGNAL) != p->marker_len) {
      finish(ep, p, classify(errno), strerror(errno), inflight);
      return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = p};
    epoll_ctl(ep, EPOLL_CTL_MOD, p->fd, &ev);
  }
  if (events & (EPOLLIN | EPOLLHUP)) {
    char buf[256];
    ssize_t n = recv(p->fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) { finish(ep, p, classify(errno), strerror(errno), inflight); return; }
    if (n == 0) { finish(ep, p, "refused", "closed before echoing", inflight); return; }
    if (p->got + n > p->marker_len || memcmp(buf, p->marker + p->got, n) != 0) {
      finish(ep, p, "error", "echo did not match the marker", inflight);
      return;
    }
    p->got += n;
    if (p->got == p->marker_len) finish(ep, p, "allowed", "", inflight);
  }
}

static struct probe *read_probes(void) {
  struct probe *head = NULL, **tail = &head;
  char line[2048];
  while (fgets(line, sizeof line, stdin)) {
    struct probe *p = calloc(1, sizeof *p);
    if (!p) exit(1);
    if (sscanf(line, "%127s %511s %63s %d %7s", p->id, p->netns, p->ip, &p->port, p->proto) != 5) { free(p); continue; }
    p->udp = strcmp(p->proto, "udp") == 0;
    p->fd = -1;
    *tail = p;
    tail = &p->next;
  }
  return head;
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--timeout-ms") == 0) timeout_ms = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--parallel") == 0) parallel = atoi(argv[i + 1]);
  }
  if (timeout_ms <= 0 || parallel <= 0) { fprintf(stderr, "usage: probe [--timeout-ms N] [--parallel N] < requests\n"); return 2; }
  srandom(getpid() ^ (unsigned)now_ms());
  struct probe *pending = read_probes();
  slots = calloc(parallel, sizeof *slots);
  if (!slots) return 1;
  int ep = epoll_create1(EPOLL_CLOEXEC), inflight = 0;
  struct epoll_event evs[64];
  while (pending || inflight > 0) {
    while (pending && inflight < parallel) {
      launch(ep, pending, &inflight);
      pending = pending->next;
    }
    double t = now_ms(), next_deadline = t + timeout_ms;
    for (int s = 0; s < parallel; s++)
      if (slots[s] && slots[s]->start + timeout_ms < next_deadline) next_deadline = slots[s]->start + timeout_ms;
    int wait = (int)(next_deadline - t) + 1;
    int n = epoll_wait(ep, evs, 64, wait < 0 ? 0 : wait);
    for (int k = 0; k < n; k++) on_event(ep, evs[k].data.ptr, evs[k].events, &inflight);
    t = now_ms();
    for (int s = 0; s < parallel; s++)
      if (slots[s] && t - slots[s]->start >= timeout_ms) finish(ep, slots[s], "dropped", "timeout", &inflight);
  }
  return 0;
}

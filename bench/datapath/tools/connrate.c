// New TCP connections per second from inside a pod: a bounded loop of connect + abortive close
// (SO_LINGER 0, so neither side keeps TIME_WAIT and ephemeral ports cycle), `conc` connections in
// flight at once through one epoll loop.
//
//   connrate IP PORT SECONDS MAX_CONNECTIONS [CONCURRENCY=8]
//
// Runs until SECONDS have passed or MAX_CONNECTIONS completed; prints one JSON line:
//   {"connections":N,"failures":N,"seconds":S,"rate":R}
// A connection counts when its handshake completed (the connect finished without error); one that
// has not completed within 1 s counts as a failure.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONC 64

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sockaddr_in dst;
static double started_at[1 << 16];

static void abort_close(int fd) {
  struct linger l = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

static int open_one(int ep) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || fd >= (1 << 16)) return -1;
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  started_at[fd] = now();
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: connrate IP PORT SECONDS MAX_CONNECTIONS [CONCURRENCY]\n");
    return 2;
  }
  dst.sin_family = AF_INET;
  dst.sin_port = htons(atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
    fprintf(stderr, "connrate: bad address %s\n", argv[1]);
    return 2;
  }
  double seconds = atof(argv[3]);
  long max = atol(argv[4]);
  int conc = argc > 5 ? atoi(argv[5]) : 8;
  if (conc < 1 || conc > MAX_CONC) conc = 8;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int open_fds[MAX_CONC];
  int inflight = 0;
  long done = 0, failed = 0;
  double t0 = now(), end = t0 + seconds;
  while (inflight < conc) {
    int fd = open_one(ep);
    if (fd < 0) { failed++; break; }
    open_fds[inflight++] = fd;
  }
  struct epoll_event evs[MAX_CONC];
  while (inflight > 0) {
    int n = epoll_wait(ep, evs, MAX_CONC, 100);
    double t = now();
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd, err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) failed++; else done++;
      epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
      abort_close(fd);
      started_at[fd] = -1;
    }
    // slow ones (beyond 1 s) fail; then refill while time and budget remain
    int k = 0;
    for (int i = 0; i < inflight; i++) {
      int fd = open_fds[i];
      if (started_at[fd] < 0) continue;
      if (t - started_at[fd] > 1.0) {
        failed++;
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        abort_close(fd);
        continue;
      }
      open_fds[k++] = fd;
    }
    inflight = k;
    while (inflight < conc && t < end && done + failed + inflight < max) {
      int fd = open_one(ep);
      if (fd < 0) { failed++; break; }
      open_fds[inflight++] = fd;
    }
  }
  double elapsed = now() - t0;
  printf("{\"connections\":%ld,\"failures\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", done, failed,
         elapsed, done / elapsed);
  return 0;
}

// Light pod workload for the lab: echoes every TCP stream and UDP datagram on the given ports.
// One small process per pod, a single epoll loop, no threads, so a lab holds hundreds of pods.
//
//   echo [--netns PATH] tcp:PORT udp:PORT ...
//
// With --netns it joins that network namespace first (only the network namespace). It prints
// "ready" on stdout once every socket is bound and then detaches from stdout.
// A message that is exactly "whoami" is answered with the pod's IPv4 address instead of its echo,
// so a client of a Service can tell which backend answered.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTEN 64

enum kind { TCP_LISTEN = 1, TCP_CONN, UDP_SOCK };
static unsigned char kinds[1 << 16];  // fd -> kind (fds stay small)

static char me[INET_ADDRSTRLEN] = "unknown";

/* The pod's address: its first non-loopback IPv4 address. */
static void find_me(void) {
  struct ifaddrs *ifs, *i;
  if (getifaddrs(&ifs) < 0) return;
  for (i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
    if ((ntohl(a.s_addr) >> 24) == 127) continue;
    inet_ntop(AF_INET, &a, me, sizeof me);
    break;
  }
  freeifaddrs(ifs);
}

/* The answer to n bytes of buf: the echo, or the pod's address for "whoami". */
static const char *answer(const char *buf, ssize_t *n) {
  if (*n == 6 && memcmp(buf, "whoami", 6) == 0) {
    *n = (ssize_t)strlen(me);
    return me;
  }
  return buf;
}

static void die(const char *what, const char *arg) {
  fprintf(stderr, "echo: %s %s: %s\n", what, arg, strerror(errno));
  exit(1);
}

static void watch(int ep, int fd, enum kind k) {
  if (fd >= (int)sizeof(kinds)) { close(fd); return; }
  kinds[fd] = k;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl", "");
}

static int open_port(const char *spec) {
  int udp = strncmp(spec, "udp:", 4) == 0;
  if (!udp && strncmp(spec, "tcp:", 4) != 0) { errno = EINVAL; die("bad port spec", spec); }
  int port = atoi(spec + 4);
  if (port <= 0 || port > 65535) { errno = EINVAL; die("bad port", spec); }
  int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket", spec);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind", spec);
  if (!udp && listen(fd, 512) < 0) die("listen", spec);
  return fd;
}

static void on_event(int ep, int fd) {
  char buf[4096];
  if (kinds[fd] == TCP_LISTEN) {
    int c;
    while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) watch(ep, c, TCP_CONN);
  } else if (kinds[fd] == UDP_SOCK) {
    struct sockaddr_storage from;
    socklen_t len = sizeof from;
    ssize_t n;
    while ((n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len)) >= 0) {
      const char *out = answer(buf, &n);
      sendto(fd, out, n, 0, (struct sockaddr *)&from, len);
      len = sizeof from;
    }
  } else {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      const char *out = answer(buf, &n);
      (void)!write(fd, out, n);  // best effort: probes send a few bytes
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      kinds[fd] = 0;
      close(fd);
    }
  }
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  int i = 1;
  if (argc > 2 && strcmp(argv[1], "--netns") == 0) {
    int ns = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) die("cannot enter netns", argv[2]);
    close(ns);
    i = 3;
  }
  if (i >= argc) { fprintf(stderr, "usage: echo [--netns PATH] tcp:PORT|udp:PORT ...\n"); return 2; }
  find_me();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1", "");
  for (int n = 0; i < argc && n < MAX_LISTEN; i++, n++) {
    int fd = open_port(argv[i]);
    watch(ep, fd, strncmp(argv[i], "udp:", 4) == 0 ? UDP_SOCK : TCP_LISTEN);
  }
  printf("ready\n");
  fflush(stdout);
  int devnull = open("/dev/null", O_WRONLY);
  if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
  struct epoll_event evs[64];
  for (;;) {
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait", "");
    for (int k = 0; k < n; k++) on_event(ep, evs[k].data.fd);
  }
}

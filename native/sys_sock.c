/* Unix SOCK_SEQPACKET sockets: message boundaries are kept and fds travel with their message. */
#include "sys.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PAGEGIFT__MAX_FDS 253

static int pagegift__addr(const char* path, struct sockaddr_un* addr) {
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof(addr->sun_path)) return -ENAMETOOLONG;
  memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path, len);
  return 0;
}

int pagegift_seqpacket_pair(int fds[2]) {
  return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : -errno;
}

int pagegift_listen(const char* path, int backlog) {
  struct sockaddr_un addr;
  int r = pagegift__addr(path, &addr);
  if (r < 0) return r;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  /* On Linux the socket inode's mode becomes the file's mode at bind(), so the file is never world-accessible. */
  if (fchmod(fd, 0600) != 0) goto fail;
  if (bind(fd, (struct sockaddr*) &addr, sizeof(addr)) != 0) goto fail;
  if (chmod(path, 0600) != 0 || listen(fd, backlog) != 0) {
    int err = errno;
    unlink(path);
    close(fd);
    return -err;
  }
  return fd;
fail:;
  int err = errno;
  close(fd);
  return -err;
}

/*
 * A non-blocking connect. A Unix connect never waits on a network: it completes at once, or it
 * fails. A blocking one would sleep while the listener's backlog is full (a stuck listener stalls
 * us for as long as it likes); this one fails with EAGAIN then, and the caller retries later.
 */
int pagegift_connect(const char* path) {
  struct sockaddr_un addr;
  int r = pagegift__addr(path, &addr);
  if (r < 0) return r;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  while (connect(fd, (struct sockaddr*) &addr, sizeof(addr)) != 0) {
    if (errno == EINTR) continue;
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

int pagegift_accept(int fd) {
  for (;;) {
    int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) return c;
    if (errno != EINTR) return -errno;
  }
}

int pagegift_peercred(int fd, int* pid, int* uid, int* gid) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -errno;
  *pid = cred.pid;
  *uid = (int) cred.uid;
  *gid = (int) cred.gid;
  return 0;
}

int64_t pagegift_sendmsg(int fd, const struct iovec* iov, int niov, const int* fds, int nfds) {
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * PAGEGIFT__MAX_FDS)];
  } control;
  struct msghdr msg;
  if (nfds > PAGEGIFT__MAX_FDS) return -E2BIG;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = (struct iovec*) iov;
  msg.msg_iovlen = (size_t) niov;
  if (nfds > 0) {
    memset(&control, 0, sizeof(control));
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t) nfds);
    struct cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t) nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t) nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

int64_t pagegift_recvmsg(int fd, void* buf, size_t length, int* fds, int maxfds, int* nfds, int* flags) {
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int) * PAGEGIFT__MAX_FDS)];
  } control;
  struct iovec iov = { buf, length };
  struct msghdr msg;
  ssize_t n;
  memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof(control.buf);
  *nfds = 0;
  *flags = 0;
  for (;;) {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n >= 0) break;
    if (errno != EINTR) return -errno;
  }
  if (msg.msg_flags & MSG_TRUNC) *flags |= PAGEGIFT_MSG_TRUNC;
  if (msg.msg_flags & MSG_CTRUNC) *flags |= PAGEGIFT_MSG_CTRUNC;
  /* Hand every received fd to the caller, or close it: none may leak, even past maxfds. */
  for (struct cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    int count = (int) ((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    int* got = (int*) CMSG_DATA(cm);
    for (int i = 0; i < count; i++) {
      if (*nfds < maxfds) {
        fds[(*nfds)++] = got[i];
      } else {
        close(got[i]);
        *flags |= PAGEGIFT_MSG_CTRUNC;
      }
    }
  }
  return n;
}

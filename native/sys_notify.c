/*
 * The systemd notify protocol's one datagram: AF_UNIX SOCK_DGRAM to $NOTIFY_SOCKET, which is a
 * path or, when it starts with '@', a name in the abstract namespace. Node has no datagram send on
 * Unix sockets, so this is the addon's. Plain syscall code: returns the bytes sent or -errno.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sys.h"

int64_t pagegift_notify(const char* path, const char* msg, size_t len) {
  struct sockaddr_un addr;
  size_t plen = strlen(path);
  if (plen == 0 || plen >= sizeof(addr.sun_path)) return -EINVAL;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path, path, plen);
  /* An abstract address is the name after a NUL byte, and its length counts exactly. */
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t alen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ssize_t n;
  do n = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr*) &addr, alen);
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  close(fd);
  return err != 0 ? -err : (int64_t) n;
}

/*
 * Thin syscall wrappers. Every function returns >= 0 on success or -errno on failure and knows
 * nothing of Node-API; binding.c is the only file that turns these results into JS values.
 */
#ifndef PAGEGIFT_SYS_H
#define PAGEGIFT_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Memory: memfds, seals, mappings. */
int pagegift_memfd_create(const char* name, size_t size, int seal);
int pagegift_get_seals(int fd);
int64_t pagegift_fd_size(int fd);
int pagegift_map_shared(int fd, size_t offset, size_t length, void** out);
int pagegift_map_slot(int fd, size_t offset, size_t length, void** out);
size_t pagegift_slot_span(size_t length);
int pagegift_map_fixed(void* addr, int fd, size_t offset, size_t length);
int pagegift_unmap(void* addr, size_t length);
int pagegift_move_mapping(void* addr, size_t length, void** out);
int pagegift_punch_hole(int fd, size_t offset, size_t length);
int pagegift_dup(int fd);
int pagegift_close(int fd);
int pagegift_set_ptracer(pid_t pid);

/*
 * Data movers; callers run them off the event loop. vm_read loops until every byte is moved, or
 * fails. The pipe passes never wait: they move what the pipe takes (or holds) now and stop at EAGAIN.
 */
int64_t pagegift_vm_read(pid_t pid, const struct iovec* local, int nlocal, const struct iovec* remote, int nremote);
int64_t pagegift_vmsplice_pass(int fd, const struct iovec* iov, int n, unsigned int flags);
int64_t pagegift_read_pass(int fd, const struct iovec* iov, int n);
int64_t pagegift_populate(const struct iovec* iov, int n);
int pagegift_pipe(int fds[2], int size);
int pagegift_pipe_reader(int fd);

/* Sockets: AF_UNIX SOCK_SEQPACKET, non-blocking, close-on-exec. */
int pagegift_seqpacket_pair(int fds[2]);
int pagegift_listen(const char* path, int backlog);
int pagegift_connect(const char* path);
int pagegift_accept(int fd);
int pagegift_peercred(int fd, int* pid, int* uid, int* gid);
int64_t pagegift_sendmsg(int fd, const struct iovec* iov, int niov, const int* fds, int nfds);
int64_t pagegift_recvmsg(int fd, void* buf, size_t length, int* fds, int maxfds, int* nfds, int* flags);

#define PAGEGIFT_MSG_TRUNC 1
#define PAGEGIFT_MSG_CTRUNC 2

/* Scheduling (sys_sched.c). */
int pagegift_sched_idle(pid_t tid);

#endif

/* Memory syscalls: memfds with seals, shared mappings and the data movers used by the cma and splice paths. */
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

int pagegift_memfd_create(const char* name, size_t size, int seal) {
  /* MFD_NOEXEC_SEAL keeps newer kernels from logging a warning; older ones reject it, so retry without. */
  int fd = (int) syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);
  if (fd < 0 && errno == EINVAL) fd = (int) syscall(SYS_memfd_create, name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  if (ftruncate(fd, (off_t) size) != 0) goto fail;
  /* Sealing size makes a SIGBUS from a truncation impossible for every process that maps the memfd. */
  if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) goto fail;
  return fd;
fail:;
  int err = errno;
  close(fd);
  return -err;
}

int pagegift_get_seals(int fd) {
  int seals = fcntl(fd, F_GET_SEALS);
  return seals < 0 ? -errno : seals;
}

int64_t pagegift_fd_size(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  return (int64_t) st.st_size;
}

int pagegift_map_shared(int fd, size_t offset, size_t length, void** out) {
  void* addr = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t) offset);
  if (addr == MAP_FAILED) return -errno;
  *out = addr;
  return 0;
}

/*
 * Slots: a mapping that starts on a page-table boundary (2 MiB on x86-64) and spans whole page
 * tables, so that mremap moves its page tables whole (one entry a table) instead of page by page.
 * On this kind of VM (shadow paging), a page whose page-table entry was rewritten costs a trap of
 * several microseconds on its first touch even though it is resident and mapped: 1 MiB moved page
 * by page took 2.6 ms to write once, moved as a table 0.09 ms. The bytes past the memfd's end are
 * mapped but never touched (nothing hands out a pointer past the mapping's length).
 */
#define PAGEGIFT__TABLE ((size_t) 2 << 20)

size_t pagegift_slot_span(size_t length) {
  return (length + PAGEGIFT__TABLE - 1) & ~(PAGEGIFT__TABLE - 1);
}

/* A free, table-aligned range of `span` bytes, reserved PROT_NONE; its address or MAP_FAILED. */
static char* pagegift__reserve_slot(size_t span) {
  char* r = mmap(NULL, span + PAGEGIFT__TABLE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return r;
  char* a = (char*) (((uintptr_t) r + PAGEGIFT__TABLE - 1) & ~(PAGEGIFT__TABLE - 1));
  if (a > r) munmap(r, (size_t) (a - r));
  if (r + span + PAGEGIFT__TABLE > a + span) munmap(a + span, (size_t) (r + span + PAGEGIFT__TABLE - (a + span)));
  return a;
}

/* Maps `length` bytes of a memfd in a slot of pagegift_slot_span(length) bytes. */
int pagegift_map_slot(int fd, size_t offset, size_t length, void** out) {
  size_t span = pagegift_slot_span(length);
  char* a = pagegift__reserve_slot(span);
  if (a == MAP_FAILED) return -errno;
  void* addr = mmap(a, span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, (off_t) offset);
  if (addr == MAP_FAILED) {
    int err = errno;
    munmap(a, span);
    return -err;
  }
  /*
   * Where shmem may use huge pages (shmem_enabled always or force), one could back the whole slot's
   * table though the memfd holds only a part of it: up to 32 times the memory of a 64 KiB target.
   */
  if (span != length) madvise(addr, span, MADV_NOHUGEPAGE);
  *out = addr;
  return 0;
}

int pagegift_map_fixed(void* addr, int fd, size_t offset, size_t length) {
  void* got = mmap(addr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, (off_t) offset);
  return got == MAP_FAILED ? -errno : 0;
}

int pagegift_unmap(void* addr, size_t length) {
  return munmap(addr, length) == 0 ? 0 : -errno;
}

/*
 * Moves a mapping, pages and page tables, to a new address; the old range is left unmapped, so a
 * stale pointer into it faults (EFAULT in a syscall) as it would after munmap. A slot (`length` a
 * whole number of page tables) moves to another slot, its page tables whole.
 */
int pagegift_move_mapping(void* addr, size_t length, void** out) {
  int slot = (uintptr_t) addr % PAGEGIFT__TABLE == 0 && length % PAGEGIFT__TABLE == 0;
  char* dest = slot ? pagegift__reserve_slot(length)
                    : mmap(NULL, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (dest == MAP_FAILED) return -errno;
  void* moved = mremap(addr, length, length, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
  if (moved == MAP_FAILED) {
    int err = errno;
    /*
     * The kernel may have unmapped the reservation already (it clears the destination first), and
     * another thread may have mapped something there since: unmap the range only if it is still
     * free to take, else leave it (at worst a PROT_NONE reservation stays).
     */
    void* again = mmap(dest, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (again == dest) munmap(dest, length);
    else if (again != MAP_FAILED) munmap(again, length); /* a kernel before 4.17 took it as a hint */
    return -err;
  }
  *out = moved;
  return 0;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/*
 * Populates the resident runs of one page-aligned span, mincore() a window at a time; bytes populated
 * or -errno. Each madvise covers at most 2 MiB: it holds mmap_lock for reading, and the serving
 * thread's own mmap, munmap and mprotect (V8's heap and code space) wait for it.
 */
static int64_t pagegift__populate_span(char* base, size_t length) {
  enum { WINDOW = 16384, MAX_RUN = 512 };
  static __thread unsigned char vec[WINDOW];
  const size_t page = (size_t) sysconf(_SC_PAGESIZE);
  int64_t done = 0;
  if ((uintptr_t) base % page != 0) return -EINVAL;
  for (size_t at = 0; at < length; at += WINDOW * page) {
    size_t len = length - at < WINDOW * page ? length - at : WINDOW * page;
    size_t pages = (len + page - 1) / page;
    if (mincore(base + at, len, vec) != 0) return -errno;
    for (size_t i = 0; i < pages;) {
      size_t j = i;
      while (j < pages && j - i < MAX_RUN && (vec[j] & 1)) j++;
      if (j > i) {
        if (madvise(base + at + i * page, (j - i) * page, MADV_POPULATE_READ) != 0) return -errno;
        done += (int64_t) ((j - i) * page);
      }
      for (i = j; i < pages && !(vec[i] & 1); i++) {}
    }
  }
  return done;
}

/*
 * Maps the page tables of a fresh mapping's pages ahead of use, so that the first touch of each
 * page does not take a fault. Only resident pages: a read fault on a hole of a memfd would
 * allocate a page. Kernels before 5.14 have no MADV_POPULATE_READ: -EINVAL, nothing done.
 */
int64_t pagegift_populate(const struct iovec* iov, int n) {
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    int64_t r = pagegift__populate_span(iov[i].iov_base, iov[i].iov_len);
    if (r < 0) return r;
    total += r;
  }
  return total;
}

int pagegift_punch_hole(int fd, size_t offset, size_t length) {
  int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t) offset, (off_t) length);
  return r == 0 ? 0 : -errno;
}

int pagegift_dup(int fd) {
  int r = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return r < 0 ? -errno : r;
}

int pagegift_close(int fd) {
  /* On Linux the fd is gone even when close() reports EINTR, so never retry it. */
  int r = close(fd);
  return (r == 0 || errno == EINTR) ? 0 : -errno;
}

int pagegift_set_ptracer(pid_t pid) {
#ifdef PR_SET_PTRACER
  /* Without Yama this fails with EINVAL, which only means no permission is needed. */
  if (prctl(PR_SET_PTRACER, (unsigned long) pid, 0, 0, 0) != 0) return -errno;
#endif
  return 0;
}

/* Advances an iovec array past n bytes; returns the new start index. */
static int pagegift__iov_advance(struct iovec* iov, int n, int i, size_t done) {
  while (i < n && done >= iov[i].iov_len) {
    done -= iov[i].iov_len;
    i++;
  }
  if (i < n) {
    iov[i].iov_base = (char*) iov[i].iov_base + done;
    iov[i].iov_len -= done;
  }
  return i;
}

int64_t pagegift_vm_read(pid_t pid, const struct iovec* local, int nlocal, const struct iovec* remote, int nremote) {
  /* The kernel may stop short at an iovec boundary or at IOV_MAX; loop over whole requests. */
  struct iovec l[IOV_MAX > 1024 ? 1024 : IOV_MAX];
  struct iovec r[IOV_MAX > 1024 ? 1024 : IOV_MAX];
  if (nlocal > (int) (sizeof(l) / sizeof(l[0])) || nremote > (int) (sizeof(r) / sizeof(r[0]))) return -E2BIG;
  for (int i = 0; i < nlocal; i++) l[i] = local[i];
  for (int i = 0; i < nremote; i++) r[i] = remote[i];
  int li = 0, ri = 0;
  int64_t total = 0;
  while (li < nlocal && ri < nremote) {
    ssize_t n = syscall(SYS_process_vm_readv, pid, l + li, (unsigned long) (nlocal - li), r + ri, (unsigned long) (nremote - ri), 0UL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) return -EFAULT;
    total += n;
    li = pagegift__iov_advance(l, nlocal, li, (size_t) n);
    ri = pagegift__iov_advance(r, nremote, ri, (size_t) n);
  }
  return total;
}

typedef ssize_t (*pagegift__iov_op)(int fd, const struct iovec* iov, int n, unsigned int flags);

static ssize_t pagegift__vmsplice(int fd, const struct iovec* iov, int n, unsigned int flags) {
  return vmsplice(fd, iov, (unsigned long) n, flags | SPLICE_F_NONBLOCK);
}

static ssize_t pagegift__readv(int fd, const struct iovec* iov, int n, unsigned int flags) {
  return readv(fd, iov, n);
}

/*
 * Runs `op` until every byte of the iovec array has moved or the pipe would block. Pipes move at
 * most their capacity per call, so short transfers are the rule here, not an error. Returns the
 * bytes moved (0 when the pipe was not ready); a zero-byte read means the writer went away.
 */
static int64_t pagegift__iov_pass(int fd, const struct iovec* iov, int n, unsigned int flags, pagegift__iov_op op) {
  struct iovec v[1024];
  if (n > 1024) return -E2BIG;
  for (int i = 0; i < n; i++) v[i] = iov[i];
  int i = 0;
  int64_t total = 0;
  while (i < n) {
    ssize_t r = op(fd, v + i, n - i, flags);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return total > 0 ? total : -errno;
    }
    if (r == 0) return total > 0 ? total : -EPIPE;
    total += r;
    i = pagegift__iov_advance(v, n, i, (size_t) r);
  }
  return total;
}

int64_t pagegift_vmsplice_pass(int fd, const struct iovec* iov, int n, unsigned int flags) {
  return pagegift__iov_pass(fd, iov, n, flags, pagegift__vmsplice);
}

int64_t pagegift_read_pass(int fd, const struct iovec* iov, int n) {
  return pagegift__iov_pass(fd, iov, n, 0, pagegift__readv);
}

/* Makes a received fd safe to read in passes: it must be a pipe, and reads on it must never block. */
int pagegift_pipe_reader(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  if (!S_ISFIFO(st.st_mode)) return -EINVAL;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return -errno;
  return 0;
}

int pagegift_pipe(int fds[2], int size) {
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return -errno;
  /* A larger pipe means fewer wakeups per gift; the kernel caps unprivileged callers at pipe-max-size. */
  int got = fcntl(fds[1], F_SETPIPE_SZ, size);
  if (got < 0) got = fcntl(fds[1], F_GETPIPE_SZ);
  return got < 0 ? 0 : got;
}

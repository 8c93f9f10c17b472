/*
 * Scheduling of a process that is winding down. Node's os.setPriority() sets the nice value of one
 * thread (Linux keeps it per thread), and a CPU running a nice 19 task is still busy to the
 * scheduler: a task woken there waits for its turn or goes elsewhere. A SCHED_IDLE thread runs
 * only where nothing else wants the CPU, and a CPU running one counts as idle when the scheduler
 * places woken tasks. Plain syscall code: returns 0 or -errno.
 */
#include <errno.h>
#include <sched.h>

#include "sys.h"

int pagegift_sched_idle(pid_t tid) {
  struct sched_param param = { .sched_priority = 0 };
  return sched_setscheduler(tid, SCHED_IDLE, &param) == 0 ? 0 : -errno;
}

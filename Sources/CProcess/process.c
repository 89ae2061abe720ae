#include "cprocess.h"
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
int cprocess_set_parent_death_signal(int signal, int expected_parent) {
    if (prctl(PR_SET_PDEATHSIG, signal) != 0) return -1;
    /* Checked after prctl: a parent that dies later is covered by the signal, one that died
       before is seen here. */
    if (expected_parent > 0 && getppid() != (pid_t)expected_parent) return 1;
    return 0;
}
#else
int cprocess_set_parent_death_signal(int signal, int expected_parent) {
    (void)signal;
    if (expected_parent > 0 && getppid() != (pid_t)expected_parent) return 1;
    return 0;
}
#endif

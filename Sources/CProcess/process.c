#include "cprocess.h"
#ifdef __linux__
#include <sys/prctl.h>
int cprocess_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, signal); }
#else
int cprocess_set_parent_death_signal(int signal) { (void)signal; return 0; }
#endif

#ifndef CPROCESS_H
#define CPROCESS_H
/* prctl is C-variadic, which Swift cannot call. */

/** Asks the kernel to send `signal` to this process when its parent dies (Linux; 0 elsewhere). */
int cprocess_set_parent_death_signal(int signal);

#endif

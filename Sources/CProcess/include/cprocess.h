#ifndef CPROCESS_H
#define CPROCESS_H
/* prctl is C-variadic, which Swift cannot call. */

/**
 * Asks the kernel to send `signal` to this process when its parent dies (Linux; a no-op elsewhere).
 * The request covers only a parent alive at the call: when `expected_parent` > 0 and the parent is
 * no longer that process (it died before the call and this one was adopted), returns 1.
 * Returns 0 when armed, -1 when prctl failed.
 */
int cprocess_set_parent_death_signal(int signal, int expected_parent);

#endif

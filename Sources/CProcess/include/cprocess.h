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

/**
 * Opens a new pseudo-terminal pair (posix_openpt, grantpt, unlockpt, then the replica by name; the
 * Swift Glibc module does not export the first three). Returns 0 with both descriptors set, or -1.
 * The tests run `polyak` on the replica to see what a person at a terminal sees.
 */
int cprocess_open_pseudo_terminal(int *primary, int *replica);

#endif

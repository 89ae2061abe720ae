#define _GNU_SOURCE
#include "cprocess.h"
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int cprocess_open_pseudo_terminal(int *primary, int *replica) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0) return -1;
    char name[256];
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, sizeof name) != 0) {
        close(m);
        return -1;
    }
    int s = open(name, O_RDWR | O_NOCTTY);
    if (s < 0) {
        close(m);
        return -1;
    }
    *primary = m;
    *replica = s;
    return 0;
}

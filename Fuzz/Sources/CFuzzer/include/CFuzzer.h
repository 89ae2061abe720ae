#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver (compiler-rt, FuzzerDriver.cpp). SwiftPM gives every executable its own
// `main`, so the harness calls the driver from there instead of linking libFuzzer's `main`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

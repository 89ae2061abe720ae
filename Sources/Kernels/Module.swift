// Kernels module

// The header is the point of this target; SwiftPM wants one source file.
#include "CFuzzer.h"

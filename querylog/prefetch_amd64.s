// SPDX-License-Identifier: MIT

#include "textflag.h"

// func prefetchWrite(p unsafe.Pointer)
//
// PREFETCHT0, which every amd64 processor has: the line arrives in the
// exclusive state when no other core holds it, as a ring slot's lines
// usually are, so the store that follows needs no second trip. PREFETCHW
// would ask for ownership outright, but processors without it (no
// PRFCHW/3DNowPrefetch flag) may not take its opcode.
TEXT ·prefetchWrite(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ p+0(FP), AX
	PREFETCHT0 (AX)
	RET

#include "textflag.h"

// func prefetchWrite(p unsafe.Pointer)
TEXT ·prefetchWrite(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ p+0(FP), AX
	// PREFETCHW (AX): 0F 0D /1. Go's assembler has no mnemonic for it;
	// processors without it (no 3DNowPrefetch flag) execute it as a NOP.
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08
	RET

// SPDX-License-Identifier: MIT

package attrib

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// macOS's net.inet.{udp,tcp}.pcblist_n sysctls, parsed without a build tag
// so that the parser is tested and fuzzed on Linux.
//
// Layout (xnu bsd/netinet/in_pcblist.c get_pcblist_n; structs from
// bsd/netinet/in_pcb.h and bsd/sys/socketvar.h, both declared inside
// "#pragma pack(4)", so 64-bit fields are 4-byte aligned): a struct
// xinpgen (24 bytes), then per PCB an xinpcb_n, an xsocket_n, two
// xsockbuf_n, an xsockstat_n and, for TCP, an xtcpcb_n, each starting with
// u32 length and u32 kind and padded to 8 bytes (ROUNDUP64); then a
// trailing xinpgen. netstat (network_cmds inet.c protopr) walks it the
// same way: a record of at most sizeof(struct xinpgen) ends the list.
// Numbers are in the host's order (little-endian on every Mac), ports and
// addresses in network order.
const (
	xinpgenLen = 24

	xsoSocket = 0x001 // XSO_SOCKET: struct xsocket_n
	xsoInpcb  = 0x010 // XSO_INPCB: struct xinpcb_n

	// struct xinpcb_n
	inpFport     = 16 // u_short inp_fport
	inpLport     = 18 // u_short inp_lport
	inpVflag     = 44 // u_char inp_vflag
	inpFaddr     = 48 // inp_dependfaddr: in6_addr, or in_addr_4in6 (IPv4 at +12)
	inpLaddr     = 64 // inp_dependladdr
	inpMinLen    = 80 // through inp_dependladdr
	inpVflagIPv4 = 0x1
	inpVflagIPv6 = 0x2

	// struct xsocket_n
	soProtocol = 36 // int xso_protocol
	soUID      = 64 // uid_t so_uid
	soLastPID  = 68 // pid_t so_last_pid
	soEPID     = 72 // pid_t so_e_pid
	soMinLen   = 76 // through so_e_pid
)

// pcb is one protocol control block of a pcblist_n.
type pcb struct {
	Local, Remote netip.AddrPort // IPv4 sockets with 4-byte addresses
	Protocol      int32          // xso_protocol; 0 if the PCB has no socket
	UID           uint32
	LastPID       int32 // so_last_pid: the last process that used the socket
	EffectivePID  int32 // so_e_pid: on whose behalf (a delegated socket)
}

// parsePcblist appends the PCBs of a pcblist_n reply to out. It fails on
// a record that runs past the end or is too short for the fields read.
func parsePcblist(b []byte, out []pcb) ([]pcb, error) {
	if len(b) == 0 {
		return out, nil
	}
	if len(b) < xinpgenLen {
		return out, fmt.Errorf("pcblist_n: %d bytes, shorter than struct xinpgen (%d)", len(b), xinpgenLen)
	}
	first := int(binary.LittleEndian.Uint32(b))
	if first < xinpgenLen || first > len(b) {
		return out, fmt.Errorf("pcblist_n: xinpgen length %d out of range (%d bytes)", first, len(b))
	}
	haveSocket := true // whether the last PCB got its xsocket_n
	for off := roundup8(first); off+8 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		kind := binary.LittleEndian.Uint32(b[off+4:])
		if n <= xinpgenLen {
			break // the trailing xinpgen
		}
		if n > len(b)-off {
			return out, fmt.Errorf("pcblist_n: record of kind %#x at offset %d claims %d bytes, %d left", kind, off, n, len(b)-off)
		}
		rec := b[off : off+n]
		switch kind {
		case xsoInpcb:
			if n < inpMinLen {
				return out, fmt.Errorf("pcblist_n: xinpcb_n at offset %d has %d bytes, want at least %d", off, n, inpMinLen)
			}
			out = append(out, decodeInpcb(rec))
			haveSocket = false
		case xsoSocket:
			if len(out) == 0 || haveSocket {
				break // no PCB to belong to
			}
			if n < soMinLen {
				return out, fmt.Errorf("pcblist_n: xsocket_n at offset %d has %d bytes, want at least %d", off, n, soMinLen)
			}
			p := &out[len(out)-1]
			p.Protocol = int32(binary.LittleEndian.Uint32(rec[soProtocol:]))
			p.UID = binary.LittleEndian.Uint32(rec[soUID:])
			p.LastPID = int32(binary.LittleEndian.Uint32(rec[soLastPID:]))
			p.EffectivePID = int32(binary.LittleEndian.Uint32(rec[soEPID:]))
			haveSocket = true
		}
		off += roundup8(n)
	}
	return out, nil
}

func roundup8(n int) int { return (n + 7) &^ 7 }

func decodeInpcb(rec []byte) pcb {
	vflag := rec[inpVflag]
	addr := func(at int) netip.Addr {
		if vflag&inpVflagIPv6 == 0 && vflag&inpVflagIPv4 != 0 {
			return netip.AddrFrom4([4]byte(rec[at+12 : at+16]))
		}
		return netip.AddrFrom16([16]byte(rec[at : at+16]))
	}
	return pcb{
		Local:  netip.AddrPortFrom(addr(inpLaddr), binary.BigEndian.Uint16(rec[inpLport:])),
		Remote: netip.AddrPortFrom(addr(inpFaddr), binary.BigEndian.Uint16(rec[inpFport:])),
	}
}

// matchPcb returns the PCB that best fits k (see matchScore) and has a
// socket with a recorded process.
func matchPcb(pcbs []pcb, k Key) (pcb, bool) {
	best, at := -1, -1
	for i := range pcbs {
		p := &pcbs[i]
		if p.LastPID <= 0 && p.EffectivePID <= 0 {
			continue
		}
		if s := matchScore(p.Local, p.Remote, k.Local, k.Remote); s > best {
			best, at = s, i
		}
	}
	if at < 0 {
		return pcb{}, false
	}
	return pcbs[at], true
}

// parseCSIdentity returns the identifier csops(CS_OPS_IDENTITY) wrote:
// an 8-byte header whose second word is the big-endian length of header
// and NUL-terminated identifier (xnu bsd/kern/kern_proc.c csops_internal),
// then the identifier.
func parseCSIdentity(b []byte) (string, error) {
	if len(b) < 8 {
		return "", fmt.Errorf("csops identity: %d bytes, shorter than its header", len(b))
	}
	n := int(binary.BigEndian.Uint32(b[4:]))
	if n < 8 || n > len(b) {
		return "", fmt.Errorf("csops identity: length %d out of range (%d bytes)", n, len(b))
	}
	id := b[8:n]
	for i, c := range id {
		if c == 0 {
			id = id[:i]
			break
		}
	}
	return string(id), nil
}

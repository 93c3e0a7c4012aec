// SPDX-License-Identifier: MIT

package attrib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// Linux sock_diag wire format (include/uapi/linux/netlink.h,
// sock_diag.h, inet_diag.h). Kept here, without a build tag, so that the
// request builder and the reply parser are tested and fuzzed everywhere.
const (
	nlmsgHdrLen      = 16 // struct nlmsghdr
	nlmsgError       = 2  // NLMSG_ERROR
	nlmsgDone        = 3  // NLMSG_DONE
	nlmFRequest      = 0x1
	nlmFDump         = 0x300 // NLM_F_ROOT | NLM_F_MATCH
	sockDiagByFamily = 20    // SOCK_DIAG_BY_FAMILY

	inetDiagReqV2Len = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
	inetDiagNoCookie = 0xffffffff

	inetDiagReqBytecode = 1 // INET_DIAG_REQ_BYTECODE, an attribute of the request
	inetDiagBCSGE       = 2 // INET_DIAG_BC_S_GE: local port >= the next op's "no"
	inetDiagBCSLE       = 3 // INET_DIAG_BC_S_LE

	afInet  = 2
	afInet6 = 10
)

// diagMsg is the part of a struct inet_diag_msg a lookup uses.
type diagMsg struct {
	Family uint8
	State  uint8
	Local  netip.AddrPort // idiag_src, idiag_sport: the socket's own end
	Remote netip.AddrPort // idiag_dst, idiag_dport
	UID    uint32
	Inode  uint64
}

// diagRequest appends a SOCK_DIAG_BY_FAMILY request to b.
//
// Exact (dump false): the kernel finds one socket by its id. TCP's
// inet_diag_find_one_icsk takes idiag_src/sport as the socket's local end;
// UDP's udp_dump_one passes the id to __udp4_lib_lookup as a received
// packet's source and destination ("src and dst are swapped for
// historical reasons", net/ipv4/udp_diag.c), so for UDP local goes to
// dst/dport and remote to src/sport. A UDP lookup by a received packet's
// addresses also finds an unconnected socket bound to the local port.
//
// Dump (dump true): every socket of the family and protocol whose local
// port is port (a bytecode filter: S_GE port, S_LE port).
func diagRequest(b []byte, seq uint32, family, proto uint8, local, remote netip.AddrPort, dump bool) []byte {
	start := len(b)
	flags := uint16(nlmFRequest)
	if dump {
		flags |= nlmFDump
	}
	b = binary.NativeEndian.AppendUint32(b, 0) // length, set below
	b = binary.NativeEndian.AppendUint16(b, sockDiagByFamily)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	// struct inet_diag_req_v2
	b = append(b, family, proto, 0, 0)                  // sdiag_family, sdiag_protocol, idiag_ext, pad
	b = binary.NativeEndian.AppendUint32(b, ^uint32(0)) // idiag_states: all
	src, dst := local, remote
	if proto == ProtoUDP && !dump {
		src, dst = remote, local
	}
	if dump {
		src, dst = netip.AddrPort{}, netip.AddrPort{}
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = appendDiagAddr(b, family, src.Addr())
	b = appendDiagAddr(b, family, dst.Addr())
	b = binary.NativeEndian.AppendUint32(b, 0)                // idiag_if
	b = binary.NativeEndian.AppendUint32(b, inetDiagNoCookie) // idiag_cookie[0]
	b = binary.NativeEndian.AppendUint32(b, inetDiagNoCookie) // idiag_cookie[1]
	if dump {
		// struct nlattr + two struct inet_diag_bc_op pairs. An op
		// jumps by "yes" bytes when its condition holds and by "no"
		// bytes otherwise; the filter accepts a socket when the jumps
		// end exactly at the end (len+4 rejects).
		port := local.Port()
		b = binary.NativeEndian.AppendUint16(b, 4+16)
		b = binary.NativeEndian.AppendUint16(b, inetDiagReqBytecode)
		b = append(b, inetDiagBCSGE, 8)
		b = binary.NativeEndian.AppendUint16(b, 16+4)
		b = append(b, 0, 0)
		b = binary.NativeEndian.AppendUint16(b, port)
		b = append(b, inetDiagBCSLE, 8)
		b = binary.NativeEndian.AppendUint16(b, 8+4)
		b = append(b, 0, 0)
		b = binary.NativeEndian.AppendUint16(b, port)
	}
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendDiagAddr appends a __be32[4] address: an IPv4 address in the first
// word for AF_INET, the 16 bytes (IPv4 as ::ffff:a.b.c.d) for AF_INET6.
func appendDiagAddr(b []byte, family uint8, a netip.Addr) []byte {
	var w [16]byte
	if a.IsValid() {
		if family == afInet {
			if a4 := a.Unmap(); a4.Is4() {
				v := a4.As4()
				copy(w[:], v[:])
			}
		} else {
			w = a.As16()
		}
	}
	return append(b, w[:]...)
}

// errDiagDone ends parseDiag's caller's receive loop: the reply is complete.
var errDiagDone = errors.New("sock_diag reply complete")

// parseDiag walks the netlink messages of one received datagram, calling
// fn for each inet_diag_msg of request seq. It returns errDiagDone when
// the reply is complete (NLMSG_DONE, an acknowledgement, or the single
// message of an exact request), the kernel's error (a syscall.Errno, e.g.
// ENOENT: no such socket) for NLMSG_ERROR, nil when more datagrams
// follow, and a descriptive error for malformed input. Messages of other
// sequence numbers (a late reply to a timed-out request) are skipped.
func parseDiag(b []byte, seq uint32, dump bool, fn func(diagMsg)) error {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return fmt.Errorf("sock_diag reply: %d bytes left, shorter than a netlink header", len(b))
		}
		n := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		mseq := binary.NativeEndian.Uint32(b[8:])
		if n < nlmsgHdrLen || n > len(b) {
			return fmt.Errorf("sock_diag reply: message length %d out of range (%d bytes left)", n, len(b))
		}
		body := b[nlmsgHdrLen:n]
		if adv := (n + 3) &^ 3; adv < len(b) {
			b = b[adv:]
		} else {
			b = nil
		}
		if mseq != seq {
			continue
		}
		switch typ {
		case nlmsgDone:
			return errDiagDone
		case nlmsgError:
			if len(body) < 4 {
				return fmt.Errorf("sock_diag reply: NLMSG_ERROR of %d bytes", len(body))
			}
			if e := int32(binary.NativeEndian.Uint32(body)); e < 0 {
				return syscall.Errno(-e)
			}
			return errDiagDone
		case sockDiagByFamily:
			m, err := parseDiagMsg(body)
			if err != nil {
				return err
			}
			fn(m)
			if !dump {
				return errDiagDone
			}
		}
	}
	return nil
}

// parseDiagMsg decodes a struct inet_diag_msg.
func parseDiagMsg(b []byte) (diagMsg, error) {
	if len(b) < inetDiagMsgLen {
		return diagMsg{}, fmt.Errorf("sock_diag reply: inet_diag_msg of %d bytes, want %d", len(b), inetDiagMsgLen)
	}
	m := diagMsg{
		Family: b[0],
		State:  b[1],
		UID:    binary.NativeEndian.Uint32(b[64:]),
		Inode:  uint64(binary.NativeEndian.Uint32(b[68:])),
	}
	sport := binary.BigEndian.Uint16(b[4:])
	dport := binary.BigEndian.Uint16(b[6:])
	var src, dst netip.Addr
	switch m.Family {
	case afInet:
		src = netip.AddrFrom4([4]byte(b[8:12]))
		dst = netip.AddrFrom4([4]byte(b[24:28]))
	case afInet6:
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return diagMsg{}, fmt.Errorf("sock_diag reply: address family %d is neither AF_INET nor AF_INET6", m.Family)
	}
	m.Local = netip.AddrPortFrom(src, sport)
	m.Remote = netip.AddrPortFrom(dst, dport)
	return m, nil
}

// matchScore rates how well a socket (local, remote) fits a query sent from
// klocal to kremote: -1 not at all (another port, or a bound address or
// peer that differs), higher is closer (an exact local address +1, an
// exact peer +2). IPv4-mapped addresses compare as IPv4.
func matchScore(local, remote, klocal, kremote netip.AddrPort) int {
	if local.Port() != klocal.Port() {
		return -1
	}
	score := 0
	switch la := local.Addr().Unmap(); {
	case la == klocal.Addr().Unmap():
		score++
	case !la.IsUnspecified() && la.IsValid():
		return -1
	}
	switch ra := remote.Addr().Unmap(); {
	case ra == kremote.Addr().Unmap() && remote.Port() == kremote.Port():
		score += 2
	case (ra.IsValid() && !ra.IsUnspecified()) || remote.Port() != 0:
		return -1
	}
	return score
}

// SPDX-License-Identifier: MIT

package attrib

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

// cfield is a C struct member: its size and natural alignment.
type cfield struct {
	name        string
	size, align int
}

// clayout computes member offsets the way clang does under
// "#pragma pack(pack)": each member aligned to min(its alignment, pack),
// the size rounded up to the largest such alignment. The pcblist fixtures
// are built from the xnu declarations transcribed below, not from the
// parser's constants, which the test then compares.
func clayout(pack int, fields ...cfield) (map[string]int, int) {
	off, maxAlign := 0, 1
	m := make(map[string]int, len(fields))
	for _, f := range fields {
		a := min(f.align, pack)
		maxAlign = max(maxAlign, a)
		off = (off + a - 1) / a * a
		m[f.name] = off
		off += f.size
	}
	return m, (off + maxAlign - 1) / maxAlign * maxAlign
}

var (
	u8  = func(n string) cfield { return cfield{n, 1, 1} }
	u16 = func(n string) cfield { return cfield{n, 2, 2} }
	u32 = func(n string) cfield { return cfield{n, 4, 4} }
	u64 = func(n string) cfield { return cfield{n, 8, 8} }
)

// struct xinpcb_n, xnu bsd/netinet/in_pcb.h (inside #pragma pack(4)).
var inpcbOff, inpcbSize = clayout(4,
	u32("xi_len"), u32("xi_kind"), u64("xi_inpp"), u16("inp_fport"), u16("inp_lport"),
	u64("inp_ppcb"), u64("inp_gencnt"), u32("inp_flags"), u32("inp_flow"),
	u8("inp_vflag"), u8("inp_ip_ttl"), u8("inp_ip_p"),
	cfield{"inp_dependfaddr", 16, 4}, cfield{"inp_dependladdr", 16, 4},
	cfield{"inp_depend4", 1, 1}, cfield{"inp_depend6", 12, 4}, // {u8; int; u_short; short}
	u32("inp_flowhash"), u32("inp_flags2"))

// struct xsocket_n, xnu bsd/sys/socketvar.h (inside #pragma pack(4)); the
// fields from so_gencnt on were added in later releases.
var socketOff, socketSize = clayout(4,
	u32("xso_len"), u32("xso_kind"), u64("xso_so"), u16("so_type"), u32("so_options"),
	u16("so_linger"), u16("so_state"), u64("so_pcb"), u32("xso_protocol"), u32("xso_family"),
	u16("so_qlen"), u16("so_incqlen"), u16("so_qlimit"), u16("so_timeo"), u16("so_error"),
	u32("so_pgid"), u32("so_oobmark"), u32("so_uid"), u32("so_last_pid"), u32("so_e_pid"),
	u64("so_gencnt"), u32("so_flags"), u32("so_flags1"), u32("so_usecount"), u32("so_retaincnt"),
	u32("xso_filter_flags"))

func TestPcblistLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"inp_fport", inpFport, inpcbOff["inp_fport"]},
		{"inp_lport", inpLport, inpcbOff["inp_lport"]},
		{"inp_vflag", inpVflag, inpcbOff["inp_vflag"]},
		{"inp_dependfaddr", inpFaddr, inpcbOff["inp_dependfaddr"]},
		{"inp_dependladdr", inpLaddr, inpcbOff["inp_dependladdr"]},
		{"xso_protocol", soProtocol, socketOff["xso_protocol"]},
		{"so_uid", soUID, socketOff["so_uid"]},
		{"so_last_pid", soLastPID, socketOff["so_last_pid"]},
		{"so_e_pid", soEPID, socketOff["so_e_pid"]},
		{"sizeof xinpcb_n", 104, inpcbSize},
		{"sizeof xsocket_n", 104, socketSize},
	} {
		if c.got != c.want {
			t.Errorf("%s: parser uses %d, the declaration gives %d", c.name, c.got, c.want)
		}
	}
}

// pcbFixture is one PCB of a fixture.
type pcbFixture struct {
	local, remote netip.AddrPort
	vflag         byte
	uid           uint32
	lastPID, ePID int32
	noSocket      bool // the xsocket_n of a PCB without socket: length and kind only
	oldSocket     bool // a 76-byte xsocket_n (before so_gencnt was added)
}

func record(b []byte, size int, kind uint32, fill func(r []byte)) []byte {
	r := make([]byte, (size+7)&^7)
	binary.LittleEndian.PutUint32(r, uint32(size))
	binary.LittleEndian.PutUint32(r[4:], kind)
	if fill != nil {
		fill(r)
	}
	return append(b, r...)
}

func putAddr(r []byte, at int, a netip.Addr, vflag byte) {
	if vflag&inpVflagIPv6 == 0 && a.Is4() {
		v := a.As4()
		copy(r[at+12:], v[:]) // in_addr_4in6: ia46_pad32[3], then the address
		return
	}
	v := a.As16()
	copy(r[at:], v[:])
}

// pcblistFixture builds a pcblist_n reply as get_pcblist_n writes it.
func pcblistFixture(tcp bool, pcbs ...pcbFixture) []byte {
	b := record(nil, xinpgenLen, uint32(len(pcbs)), nil) // xig_len, xig_count
	for _, p := range pcbs {
		b = record(b, inpcbSize, xsoInpcb, func(r []byte) {
			binary.BigEndian.PutUint16(r[inpcbOff["inp_fport"]:], p.remote.Port())
			binary.BigEndian.PutUint16(r[inpcbOff["inp_lport"]:], p.local.Port())
			r[inpcbOff["inp_vflag"]] = p.vflag
			putAddr(r, inpcbOff["inp_dependfaddr"], p.remote.Addr(), p.vflag)
			putAddr(r, inpcbOff["inp_dependladdr"], p.local.Addr(), p.vflag)
		})
		size := socketSize
		if p.oldSocket {
			size = socketOff["so_gencnt"]
		}
		b = record(b, size, xsoSocket, func(r []byte) {
			if p.noSocket {
				return
			}
			proto := uint32(ProtoUDP)
			if tcp {
				proto = ProtoTCP
			}
			binary.LittleEndian.PutUint32(r[socketOff["xso_protocol"]:], proto)
			binary.LittleEndian.PutUint32(r[socketOff["so_uid"]:], p.uid)
			binary.LittleEndian.PutUint32(r[socketOff["so_last_pid"]:], uint32(p.lastPID))
			binary.LittleEndian.PutUint32(r[socketOff["so_e_pid"]:], uint32(p.ePID))
		})
		b = record(b, 32, 0x002, nil)  // xsockbuf_n XSO_RCVBUF
		b = record(b, 32, 0x004, nil)  // xsockbuf_n XSO_SNDBUF
		b = record(b, 136, 0x008, nil) // xsockstat_n XSO_STATS
		if tcp {
			b = record(b, 236, 0x020, nil) // xtcpcb_n XSO_TCPCB (length as given)
		}
	}
	return record(b, xinpgenLen, uint32(len(pcbs)), nil)
}

var ap = netip.MustParseAddrPort

var udpFixture = []pcbFixture{
	{local: ap("10.0.0.2:5353"), remote: ap("10.0.0.1:53"), vflag: inpVflagIPv4, uid: 501, lastPID: 100, ePID: 100},
	{local: ap("0.0.0.0:6000"), remote: ap("0.0.0.0:0"), vflag: inpVflagIPv4, uid: 0, lastPID: 101, ePID: 101},
	{local: ap("[::1]:7000"), remote: ap("[::]:0"), vflag: inpVflagIPv6, uid: 501, lastPID: 102, ePID: 300},
	{local: ap("10.0.0.2:8000"), remote: ap("10.0.0.1:53"), vflag: inpVflagIPv4, uid: 501, lastPID: 103, ePID: 103, oldSocket: true},
	{local: ap("[::]:9000"), remote: ap("[::]:0"), vflag: inpVflagIPv4 | inpVflagIPv6, uid: 501, lastPID: 104, ePID: 104},
	{local: ap("10.0.0.2:9999"), remote: ap("10.0.0.1:53"), vflag: inpVflagIPv4, noSocket: true},
}

func TestParsePcblist(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		b := pcblistFixture(tcp, udpFixture...)
		pcbs, err := parsePcblist(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(pcbs) != len(udpFixture) {
			t.Fatalf("tcp %v: %d PCBs, want %d", tcp, len(pcbs), len(udpFixture))
		}
		for i, p := range pcbs {
			f := udpFixture[i]
			if p.Local != f.local || p.Remote != f.remote || p.UID != f.uid || p.LastPID != f.lastPID || p.EffectivePID != f.ePID {
				t.Errorf("tcp %v PCB %d: %+v, want %+v", tcp, i, p, f)
			}
		}
		for _, c := range []struct {
			local, remote string
			pid           int32 // 0: not found
		}{
			{"10.0.0.2:5353", "10.0.0.1:53", 100},
			{"10.0.0.2:6000", "10.0.0.1:53", 101}, // a wildcard-bound socket
			{"[::1]:7000", "[::1]:53", 102},       // IPv6
			{"10.0.0.2:8000", "10.0.0.1:53", 103}, // old xsocket_n
			{"10.0.0.2:9000", "10.0.0.1:53", 104}, // dual-stack socket, IPv4 query
			{"10.0.0.2:5353", "10.0.0.9:53", 0},   // another peer
			{"10.0.0.3:5353", "10.0.0.1:53", 0},   // another local address
			{"10.0.0.2:9999", "10.0.0.1:53", 0},   // a PCB without socket
			{"10.0.0.2:1", "10.0.0.1:53", 0},      // no such port
		} {
			k := Key{Proto: ProtoUDP, Local: ap(c.local), Remote: ap(c.remote)}
			p, ok := matchPcb(pcbs, k)
			if got := map[bool]int32{true: p.LastPID}[ok]; got != c.pid {
				t.Errorf("tcp %v: %v matched pid %d (%v), want %d", tcp, k, got, ok, c.pid)
			}
		}
	}
}

func TestParsePcblistErrors(t *testing.T) {
	good := pcblistFixture(false, udpFixture[0])
	if p, err := parsePcblist(nil, nil); err != nil || len(p) != 0 {
		t.Errorf("empty: %v %v", p, err)
	}
	if p, err := parsePcblist(good[:xinpgenLen], nil); err != nil || len(p) != 0 {
		t.Errorf("header only: %v %v", p, err)
	}
	for _, b := range [][]byte{good[:10], good[:40], good[:xinpgenLen+inpcbSize-8]} {
		if _, err := parsePcblist(b, nil); err == nil {
			t.Errorf("%d bytes of %d: no error", len(b), len(good))
		}
	}
	short := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(short[xinpgenLen:], 40) // an xinpcb_n of 40 bytes
	if _, err := parsePcblist(short, nil); err == nil {
		t.Error("short xinpcb_n: no error")
	}
}

func TestParseCSIdentity(t *testing.T) {
	b := make([]byte, 64)
	id := "com.apple.mDNSResponder"
	binary.BigEndian.PutUint32(b[4:], uint32(8+len(id)+1))
	copy(b[8:], id)
	if got, err := parseCSIdentity(b); err != nil || got != id {
		t.Errorf("%q %v", got, err)
	}
	for _, bad := range [][]byte{nil, b[:7], {0, 0, 0, 0, 0, 0, 1, 0}} {
		if _, err := parseCSIdentity(bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}

// diagReply builds a netlink datagram of inet_diag_msg replies (struct
// inet_diag_msg, include/uapi/linux/inet_diag.h: family, state, timer,
// retrans, the 48-byte sockid, expires, rqueue, wqueue, uid, inode).
func diagReply(seq uint32, msgs []diagMsg, done bool) []byte {
	var b []byte
	for _, m := range msgs {
		r := make([]byte, nlmsgHdrLen+inetDiagMsgLen)
		binary.NativeEndian.PutUint32(r, uint32(len(r)))
		binary.NativeEndian.PutUint16(r[4:], sockDiagByFamily)
		binary.NativeEndian.PutUint32(r[8:], seq)
		d := r[nlmsgHdrLen:]
		d[0], d[1] = m.Family, m.State
		binary.BigEndian.PutUint16(d[4:], m.Local.Port())
		binary.BigEndian.PutUint16(d[6:], m.Remote.Port())
		l, rm := m.Local.Addr().AsSlice(), m.Remote.Addr().AsSlice()
		copy(d[8:], l)
		copy(d[24:], rm)
		binary.NativeEndian.PutUint32(d[64:], m.UID)
		binary.NativeEndian.PutUint32(d[68:], uint32(m.Inode))
		b = append(b, r...)
	}
	if done {
		r := make([]byte, nlmsgHdrLen+4)
		binary.NativeEndian.PutUint32(r, uint32(len(r)))
		binary.NativeEndian.PutUint16(r[4:], nlmsgDone)
		binary.NativeEndian.PutUint32(r[8:], seq)
		b = append(b, r...)
	}
	return b
}

func diagError(seq uint32, errno syscall.Errno) []byte {
	r := make([]byte, nlmsgHdrLen+4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(r, uint32(len(r)))
	binary.NativeEndian.PutUint16(r[4:], nlmsgError)
	binary.NativeEndian.PutUint32(r[8:], seq)
	binary.NativeEndian.PutUint32(r[nlmsgHdrLen:], uint32(-int32(errno)))
	return r
}

func TestParseDiag(t *testing.T) {
	msgs := []diagMsg{
		{Family: afInet, State: 7, Local: ap("127.0.0.1:5353"), Remote: ap("0.0.0.0:0"), UID: 1000, Inode: 4242},
		{Family: afInet6, State: 1, Local: ap("[::1]:6000"), Remote: ap("[::1]:53"), UID: 0, Inode: 77},
	}
	var got []diagMsg
	collect := func(m diagMsg) { got = append(got, m) }
	// A dump: both, then DONE; a stale message of another request first.
	b := append(diagReply(6, msgs[:1], false), diagReply(7, msgs, true)...)
	if err := parseDiag(b, 7, true, collect); err != errDiagDone {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != msgs[0] || got[1] != msgs[1] {
		t.Errorf("got %+v", got)
	}
	// A dump spread over datagrams: nil until DONE.
	got = nil
	if err := parseDiag(diagReply(8, msgs, false), 8, true, collect); err != nil || len(got) != 2 {
		t.Errorf("%v %d", err, len(got))
	}
	// An exact request: the one message completes it.
	if err := parseDiag(diagReply(9, msgs[:1], false), 9, false, func(diagMsg) {}); err != errDiagDone {
		t.Errorf("exact: %v", err)
	}
	if err := parseDiag(diagError(10, syscall.ENOENT), 10, false, collect); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("NLMSG_ERROR: %v", err)
	}
	if err := parseDiag(diagError(11, 0), 11, false, collect); err != errDiagDone {
		t.Errorf("ack: %v", err)
	}
	bad := diagReply(12, msgs[:1], false)
	bad[nlmsgHdrLen] = 99 // family
	if err := parseDiag(bad, 12, false, collect); err == nil || err == errDiagDone {
		t.Errorf("bad family: %v", err)
	}
	for _, n := range []int{3, nlmsgHdrLen, nlmsgHdrLen + 10} {
		if err := parseDiag(diagReply(13, msgs[:1], false)[:n], 13, false, collect); err == nil || err == errDiagDone {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
}

func TestDiagRequest(t *testing.T) {
	local, remote := ap("10.0.0.2:5353"), ap("10.0.0.1:53")
	for _, c := range []struct {
		proto            uint8
		dump             bool
		size             int
		sport, dport     uint16
		src              string
		filterPort, want uint16
	}{
		{ProtoTCP, false, 72, 5353, 53, "10.0.0.2", 0, 0},
		{ProtoUDP, false, 72, 53, 5353, "10.0.0.1", 0, 0}, // UDP's swapped orientation
		{ProtoUDP, true, 92, 0, 0, "0.0.0.0", 5353, 5353},
	} {
		b := diagRequest(nil, 3, afInet, c.proto, local, remote, c.dump)
		if len(b) != c.size || int(binary.NativeEndian.Uint32(b)) != c.size {
			t.Fatalf("%+v: %d bytes", c, len(b))
		}
		req := b[nlmsgHdrLen:]
		if req[0] != afInet || req[1] != c.proto {
			t.Errorf("%+v: family/proto %d/%d", c, req[0], req[1])
		}
		if sp, dp := binary.BigEndian.Uint16(req[8:]), binary.BigEndian.Uint16(req[10:]); sp != c.sport || dp != c.dport {
			t.Errorf("%+v: ports %d %d", c, sp, dp)
		}
		if src := netip.AddrFrom4([4]byte(req[12:16])); src.String() != c.src {
			t.Errorf("%+v: src %v", c, src)
		}
		if c.dump {
			bc := req[inetDiagReqV2Len:]
			if binary.NativeEndian.Uint16(bc[8:]) != 0 || binary.NativeEndian.Uint16(bc[10:]) != c.want || binary.NativeEndian.Uint16(bc[18:]) != c.want {
				t.Errorf("%+v: bytecode %x", c, bc)
			}
		}
	}
}

func TestMatchScore(t *testing.T) {
	k := [2]netip.AddrPort{ap("10.0.0.2:5353"), ap("10.0.0.1:53")}
	for _, c := range []struct {
		local, remote string
		want          int
	}{
		{"10.0.0.2:5353", "10.0.0.1:53", 3},
		{"[::ffff:10.0.0.2]:5353", "[::ffff:10.0.0.1]:53", 3},
		{"0.0.0.0:5353", "0.0.0.0:0", 0},
		{"[::]:5353", "[::]:0", 0},
		{"10.0.0.2:5353", "0.0.0.0:0", 1},
		{"10.0.0.2:5354", "10.0.0.1:53", -1},
		{"10.0.0.3:5353", "0.0.0.0:0", -1},
		{"10.0.0.2:5353", "10.0.0.1:54", -1},
	} {
		if got := matchScore(ap(c.local), ap(c.remote), k[0], k[1]); got != c.want {
			t.Errorf("%s -> %s: %d, want %d", c.local, c.remote, got, c.want)
		}
	}
}

func TestProcParsers(t *testing.T) {
	for in, want := range map[string]uint64{"socket:[1]": 1, "socket:[4026531993]": 4026531993} {
		if got, ok := parseSocketLink([]byte(in)); !ok || got != want {
			t.Errorf("%q: %d %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "socket:[]", "socket:[12", "pipe:[12]", "socket:[1x]", "/dev/null", "socket:[99999999999999999999]"} {
		if _, ok := parseSocketLink([]byte(in)); ok {
			t.Errorf("%q accepted", in)
		}
	}
	var names []string
	if err := parseDirents(dirents(".", "..", "3", "10"), func(n []byte) { names = append(names, string(n)) }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 4 || names[2] != "3" || names[3] != "10" {
		t.Errorf("names %q", names)
	}
	if err := parseDirents(dirents("3")[:10], func([]byte) {}); err == nil {
		t.Error("truncated dirent: no error")
	}
	if trimComm([]byte("curl\n")) != "curl" {
		t.Error("trimComm")
	}
}

// dirents builds struct linux_dirent64 records as getdents64 returns them.
func dirents(names ...string) []byte {
	var b []byte
	for i, n := range names {
		size := (19 + len(n) + 1 + 7) &^ 7
		r := make([]byte, size)
		binary.NativeEndian.PutUint64(r, uint64(i+1))
		binary.NativeEndian.PutUint16(r[16:], uint16(size))
		r[18] = 10 // DT_LNK
		copy(r[19:], n)
		b = append(b, r...)
	}
	return b
}

func FuzzParsePcblist(f *testing.F) {
	f.Add(pcblistFixture(false, udpFixture...))
	f.Add(pcblistFixture(true, udpFixture[:2]...))
	f.Add([]byte{24, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pcbs, _ := parsePcblist(b, nil)
		matchPcb(pcbs, Key{Proto: ProtoUDP, Local: ap("10.0.0.2:5353"), Remote: ap("10.0.0.1:53")})
	})
}

func FuzzParseDiag(f *testing.F) {
	f.Add(diagReply(1, []diagMsg{{Family: afInet, Local: ap("127.0.0.1:1"), Remote: ap("0.0.0.0:0"), Inode: 1}}, true), true)
	f.Add(diagReply(1, []diagMsg{{Family: afInet6, Local: ap("[::1]:1"), Remote: ap("[::1]:53"), Inode: 1}}, false), false)
	f.Add(diagError(1, syscall.ENOENT), false)
	f.Fuzz(func(t *testing.T, b []byte, dump bool) {
		parseDiag(b, 1, dump, func(m diagMsg) {
			if m.Family != afInet && m.Family != afInet6 {
				t.Fatalf("family %d passed", m.Family)
			}
		})
	})
}

func FuzzParseCSIdentity(f *testing.F) {
	f.Add([]byte("\xfa\xde\x0c\x00\x00\x00\x00\x0ecom.x\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { parseCSIdentity(b) })
}

func FuzzParseProc(f *testing.F) {
	f.Add(dirents(".", "..", "0", "1"), []byte("socket:[12345]"))
	f.Add([]byte{}, []byte("anon_inode:[eventfd]"))
	f.Fuzz(func(t *testing.T, d, link []byte) {
		parseDirents(d, func(n []byte) { parseUint(n) })
		parseSocketLink(link)
		trimComm(link)
	})
}

// SPDX-License-Identifier: MIT

package tlstest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnstun/dnstun/internal/privtest"
)

// UnboundConfig is what unbound serves, and where.
type UnboundConfig struct {
	// Dir is unbound's directory: the configuration, the pid file.
	Dir string
	// DNS lists the addresses of plain DNS (UDP and TCP), TLS those of
	// DNS over TLS, HTTPS those of DNS over HTTPS (HTTP/2). unbound takes
	// one port for all TLS addresses and one for all HTTPS addresses.
	DNS, TLS, HTTPS []netip.AddrPort
	// CertFile and KeyFile are the server's certificate and key (PEM),
	// needed with TLS or HTTPS addresses.
	CertFile, KeyFile string
	// HTTPEndpoint is the DoH path; "/dns-query" when empty.
	HTTPEndpoint string
	// Zones are local-zone values ("test. static"); Data are local-data
	// records in presentation format ("a.test. 300 IN A 192.0.2.1").
	Zones, Data []string
	// Extra are further lines of the server: clause, as written.
	Extra []string
}

// Text is the configuration file for c.
func (c UnboundConfig) Text() (string, error) {
	if c.Dir == "" {
		return "", errors.New("unbound config: no directory")
	}
	if len(c.DNS)+len(c.TLS)+len(c.HTTPS) == 0 {
		return "", errors.New("unbound config: no address to listen on")
	}
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, "\t"+format+"\n", args...) }
	b.WriteString("server:\n")
	line("verbosity: 1")
	line("do-daemonize: no")
	line("use-syslog: no")
	line(`logfile: ""`)
	line(`chroot: ""`)
	line(`username: ""`)
	line("directory: %q", c.Dir)
	line("pidfile: %q", filepath.Join(c.Dir, "unbound.pid"))
	line("num-threads: 1")
	line("so-reuseport: no")
	line("interface-automatic: no")
	// Pipelining tests keep many connections and queries in flight.
	line("incoming-num-tcp: 128")
	line("module-config: \"iterator\"")
	line("minimal-responses: yes")
	// The listening addresses are the caller's choice (loopback or a test
	// namespace): every client that reaches them may ask.
	line("access-control: 0.0.0.0/0 allow")
	line("access-control: ::/0 allow")
	for _, a := range c.DNS {
		line("interface: %s@%d", a.Addr(), a.Port())
	}
	tlsPort, err := onePort("TLS", c.TLS)
	if err != nil {
		return "", err
	}
	httpsPort, err := onePort("HTTPS", c.HTTPS)
	if err != nil {
		return "", err
	}
	if tlsPort != 0 || httpsPort != 0 {
		if c.CertFile == "" || c.KeyFile == "" {
			return "", errors.New("unbound config: TLS and HTTPS need CertFile and KeyFile")
		}
		line("tls-service-pem: %q", c.CertFile)
		line("tls-service-key: %q", c.KeyFile)
	}
	for _, a := range c.TLS {
		line("interface: %s@%d", a.Addr(), a.Port())
	}
	if tlsPort != 0 {
		line("tls-port: %d", tlsPort)
	}
	for _, a := range c.HTTPS {
		line("interface: %s@%d", a.Addr(), a.Port())
	}
	if httpsPort != 0 {
		ep := c.HTTPEndpoint
		if ep == "" {
			ep = "/dns-query"
		}
		line("https-port: %d", httpsPort)
		line("http-endpoint: %q", ep)
		line("http-notls-downstream: no")
	}
	for _, z := range c.Zones {
		name, typ, ok := strings.Cut(z, " ")
		if !ok || strings.ContainsAny(z, "\n\r\"") {
			return "", fmt.Errorf("unbound config: local zone %q: want NAME TYPE, e.g. \"test. static\"", z)
		}
		line("local-zone: %q %s", name, strings.TrimSpace(typ))
	}
	for _, d := range c.Data {
		v, err := quote(d)
		if err != nil {
			return "", err
		}
		line("local-data: %s", v)
	}
	for _, x := range c.Extra {
		line("%s", x)
	}
	b.WriteString("remote-control:\n\tcontrol-enable: no\n")
	return b.String(), nil
}

// onePort returns the one port of addrs (0 when empty).
func onePort(what string, addrs []netip.AddrPort) (uint16, error) {
	var port uint16
	for _, a := range addrs {
		if port != 0 && a.Port() != port {
			return 0, fmt.Errorf("unbound config: %s addresses %v: unbound serves %s on one port", what, addrs, what)
		}
		port = a.Port()
	}
	return port, nil
}

// quote writes v as an unbound string: double quotes, or single quotes
// around a record that holds double quotes (TXT).
func quote(v string) (string, error) {
	switch {
	case strings.ContainsAny(v, "\n\r"):
		return "", fmt.Errorf("unbound config: %q: one line per value", v)
	case !strings.Contains(v, `"`):
		return `"` + v + `"`, nil
	case !strings.Contains(v, "'"):
		return "'" + v + "'", nil
	}
	return "", fmt.Errorf("unbound config: %q holds both quote characters", v)
}

// Write writes the configuration to Dir/unbound.conf and returns its path.
func (c UnboundConfig) Write() (string, error) {
	text, err := c.Text()
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("unbound config: %w", err)
	}
	return path, nil
}

// Unbound is a running unbound process.
type Unbound struct {
	Config   UnboundConfig
	ConfFile string
	cmd      *exec.Cmd
	out      *lockedBuffer
	done     chan struct{}
	once     sync.Once
}

// StartUnbound writes c's configuration, starts the program at path on it
// and returns once unbound answers plain DNS over TCP on c.DNS[0] (which
// must be set), or fails when it exits or ctx ends first (10 s when ctx
// has no deadline). Stop it with Kill.
func StartUnbound(ctx context.Context, path string, c UnboundConfig) (*Unbound, error) {
	if len(c.DNS) == 0 {
		return nil, errors.New("unbound: StartUnbound waits on a plain DNS address: give UnboundConfig.DNS")
	}
	conf, err := c.Write()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	u := &Unbound{Config: c, ConfFile: conf, out: &lockedBuffer{}, done: make(chan struct{})}
	// -d: stay in the foreground and log to stderr from the start.
	u.cmd = exec.Command(path, "-d", "-c", conf)
	u.cmd.Dir = c.Dir
	u.cmd.Stdout, u.cmd.Stderr = u.out, u.out
	if err := u.cmd.Start(); err != nil {
		return nil, fmt.Errorf("unbound: start %s: %w", path, err)
	}
	go func() {
		u.cmd.Wait()
		close(u.done)
	}()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-u.done:
			cancel()
		case <-rctx.Done():
		}
	}()
	var d net.Dialer
	if err := Ready(rctx, d.DialContext, c.DNS[0]); err != nil {
		u.Kill()
		return nil, fmt.Errorf("unbound on %v did not answer: %w; its log:\n%s", c.DNS[0], err, u.Log())
	}
	return u, nil
}

// Pid is the process's id.
func (u *Unbound) Pid() int { return u.cmd.Process.Pid }

// Log is what unbound wrote so far.
func (u *Unbound) Log() string { return u.out.String() }

// Kill stops the process (SIGKILL to its PID) and waits for it; once.
func (u *Unbound) Kill() {
	u.once.Do(func() {
		u.cmd.Process.Kill()
		select {
		case <-u.done:
		case <-time.After(5 * time.Second):
		}
	})
}

// Ready asks addr for ready.invalid. over DNS over TCP, through dial, every
// 50 ms until any answer comes back (unbound answers the RFC 6761 name
// from its built-in zone), or ctx ends.
func Ready(ctx context.Context, dial func(ctx context.Context, network, address string) (net.Conn, error), addr netip.AddrPort) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for id := uint16(1); ; id++ {
		if last = probe(ctx, dial, addr, id); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last try: %v)", ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func probe(ctx context.Context, dial func(ctx context.Context, network, address string) (net.Conn, error), addr netip.AddrPort, id uint16) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr.String())
	if err != nil {
		return err
	}
	defer c.Close()
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	q := Query(id, "ready.invalid.", 1)
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	if _, err := c.Write(append(frame, q...)); err != nil {
		return err
	}
	var hdr [2 + 12]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	if got := binary.BigEndian.Uint16(hdr[2:]); got != id || hdr[4]&0x80 == 0 {
		return fmt.Errorf("reply with ID %d and flags %#x to query %d", got, hdr[4], id)
	}
	return nil
}

// Query builds a DNS query (RD set, class IN) for name, a dotted FQDN.
func Query(id uint16, name string, qtype uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0)
	for label := range strings.SplitSeq(strings.TrimSuffix(name, "."), ".") {
		b = append(b, byte(len(label)))
		b = append(b, label...)
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Bound the log: unbound at verbosity 1 writes little, but a test
	// must not grow without limit if it does not.
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Loopback is an unbound on 127.0.0.1 serving plain DNS, DoT and DoH with
// a certificate for ServerName and 127.0.0.1 from a fresh CA.
type Loopback struct {
	*Unbound
	CA              *CA
	Leaf            *Leaf
	ServerName      string
	DNS, TLS, HTTPS netip.AddrPort
}

// StartLoopback starts unbound on free ports of 127.0.0.1 with the given
// local zones and records, and stops it when t ends. Without unbound
// installed it skips t (fails it under DNSTUN_REQUIRE_PRIV=1).
func StartLoopback(t testing.TB, serverName string, zones, data []string) *Loopback {
	t.Helper()
	path := privtest.RequireTool(t, "unbound", "unbound")
	dir := t.TempDir()
	ca, err := NewCA(dir, "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	leaf, err := ca.Issue(dir, "server", []string{serverName}, []netip.Addr{lo})
	if err != nil {
		t.Fatal(err)
	}
	// A port found free may be taken before unbound binds it: try again
	// with new ports, a few times.
	var errs []error
	for try := 0; try < 3; try++ {
		ports, err := FreePorts(lo, 3)
		if err != nil {
			t.Fatal(err)
		}
		l := &Loopback{
			CA: ca, Leaf: leaf, ServerName: serverName,
			DNS:   netip.AddrPortFrom(lo, ports[0]),
			TLS:   netip.AddrPortFrom(lo, ports[1]),
			HTTPS: netip.AddrPortFrom(lo, ports[2]),
		}
		c := UnboundConfig{
			Dir: dir,
			DNS: []netip.AddrPort{l.DNS}, TLS: []netip.AddrPort{l.TLS}, HTTPS: []netip.AddrPort{l.HTTPS},
			CertFile: leaf.CertFile, KeyFile: leaf.KeyFile,
			Zones: zones, Data: data,
		}
		u, err := StartUnbound(context.Background(), path, c)
		if err != nil {
			errs = append(errs, err)
			if strings.Contains(err.Error(), "bind") {
				continue
			}
			break
		}
		l.Unbound = u
		t.Cleanup(u.Kill)
		return l
	}
	t.Fatalf("unbound did not start: %v", errors.Join(errs...))
	return nil
}

// FreePorts returns n distinct ports free for both TCP and UDP on addr
// when asked (the kernel may hand them out again later).
func FreePorts(addr netip.Addr, n int) ([]uint16, error) {
	var ports []uint16
	for tries := 0; len(ports) < n; tries++ {
		if tries == 100 {
			return nil, fmt.Errorf("no %d free ports on %v in 100 tries", n, addr)
		}
		l, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		if err != nil {
			return nil, err
		}
		ap := netip.MustParseAddrPort(l.Addr().String())
		u, err := net.ListenPacket("udp", ap.String())
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if !slices.Contains(ports, ap.Port()) {
			ports = append(ports, ap.Port())
		}
	}
	return ports, nil
}

// String describes the server for test logs.
func (l *Loopback) String() string {
	return "unbound pid " + strconv.Itoa(l.Pid()) + " dns " + l.DNS.String() + " tls " + l.TLS.String() + " https " + l.HTTPS.String()
}

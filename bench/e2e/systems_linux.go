// SPDX-License-Identifier: MIT

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dnstun/dnstun/internal/lab"
)

// system is one system under test.
type system struct {
	name   string // id used in flags and output
	label  string // what it is, for the tables
	target netip.AddrPort
	blocks bool // has the block list (everything but direct)
	fwd    bool // forwards (everything but the ceiling)
	tcp    bool // answers DNS over TCP: measured in TCPPhases
	// lookups: measured in the lookup phase (Options.Lookups).
	lookups bool
	// avail returns why the system cannot run here, or "".
	avail func(e *env) string
	// start starts it with the block list of n names; nil for direct.
	start func(e *env, n int) (*lab.Proc, error)
	// reloads: SIGHUP re-reads the block list (measured for dnstun).
	reloads bool
	// version describes the build under test.
	version func(e *env) string
}

// Addresses of the lab (internal/lab: documentation and benchmarking
// ranges only).
var (
	upstreamAddr = lab.Upstream4 // bench/cmd/upstream, in the upstream namespace
	localAddr    = lab.Loopback4 // socket resolvers, on the SUT namespace's loopback
	tunResolver  = lab.Resolver4 // dnstun's and the ceiling's TUN
)

// cpus says where the client (and the upstream) and the system under test
// run; -1 means not pinned.
type cpus struct{ client, sut int }

// env is what systems need to start.
type env struct {
	// lab is the two namespaces: the system under test and the client
	// run in lab.Host (the SUT namespace), the upstream in lab.Up.
	lab       *lab.Lab
	upstream  *lab.Proc // bench/cmd/upstream on upstreamAddr
	dial      *nsDialer // TCP connections from lab.Host
	cpus      cpus
	dir       string
	moduleDir string
	bins      map[string]string // dnstun, ceiling, upstream, golookup
	// lists[n][format] is the path of the list of n names in format.
	lists map[int]map[listFormat]string
	// lookupNames[phase] is the names file of a lookup phase.
	lookupNames map[string]string
}

// newLab builds the namespaces (no IPv6, no default route: the SUT
// namespace reaches only the veth's 192.0.2.0/24 and its own loopback) and
// starts the upstream responder on the client's core.
func newLab(ctx context.Context, upstreamBin string, c cpus) (_ *lab.Lab, _ *lab.Proc, err error) {
	l, err := lab.New(lab.Config{Prefix: "dnb", HostLoopback: []netip.Addr{localAddr.Addr()}})
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	// DNS over TCP with one query per connection leaves a socket in
	// TIME_WAIT per query on the client's side: reuse them (RFC 7323
	// timestamps make it safe) and widen the port range, in the SUT
	// namespace only.
	sysctl := l.Host.Command(ctx, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1")
	if out, serr := sysctl.CombinedOutput(); serr != nil {
		return nil, nil, fmt.Errorf("sysctl in %s: %w: %s", l.Host.Name, serr, strings.TrimSpace(string(out)))
	}
	upstream, err := l.Start(l.Up, lab.Cmd{Args: []string{upstreamBin, "-listen", upstreamAddr.String()}, CPUs: cpuList(c.client), LogLimit: logLimit})
	if err != nil {
		return nil, nil, err
	}
	e := &env{lab: l}
	if _, err = e.firstAnswer(ctx, upstream, upstreamAddr, "ready.allowed.example", lab.RcodeNoError, 10*time.Second); err != nil {
		return nil, nil, fmt.Errorf("upstream responder: %w\n%s", err, upstream.Log())
	}
	return l, upstream, nil
}

// logLimit is how much of each process's output is kept.
const logLimit = 1 << 20

// cpuList is cpu for taskset, "" for -1 (not pinned).
func cpuList(cpu int) string {
	if cpu < 0 {
		return ""
	}
	return strconv.Itoa(cpu)
}

// start runs bin in the SUT namespace, pinned to cpu (-1: not pinned).
func (e *env) start(cpu int, bin string, args ...string) (*lab.Proc, error) {
	return e.lab.Start(e.lab.Host, lab.Cmd{Args: append([]string{bin}, args...), CPUs: cpuList(cpu), LogLimit: logLimit})
}

// firstAnswer polls target from the SUT namespace for name (type A) until
// an answer with rcode arrives, and returns the time from p's start (or
// from the call, p nil) to it; see lab.NS.FirstAnswer.
func (e *env) firstAnswer(ctx context.Context, p *lab.Proc, target netip.AddrPort, name string, rcode int, limit time.Duration) (time.Duration, error) {
	return e.lab.Host.FirstAnswer(ctx, lab.Probe{Target: target, Name: name, Rcode: rcode, Limit: limit, Proc: p})
}

// readyPinned waits for the system p, just started, to answer name with
// rcode (within limit), then checks that it runs on the system-under-test
// core alone; it returns the time to its first answer.
func (e *env) readyPinned(ctx context.Context, p *lab.Proc, target netip.AddrPort, name string, rcode int, limit time.Duration, sutCPU int) (time.Duration, error) {
	start, err := e.firstAnswer(ctx, p, target, name, rcode, limit)
	if err != nil {
		return 0, fmt.Errorf("start: %w\n%s", err, p.Log())
	}
	return start, checkPinned(p.Pid(), sutCPU)
}

// lookPeer finds a peer's binary in PATH or /usr/sbin.
func lookPeer(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func peerAvail(bin, pkg string) func(*env) string {
	return func(*env) string {
		if lookPeer(bin) == "" {
			return "not installed (Debian package " + pkg + "; scripts/bench.sh installs it)"
		}
		return ""
	}
}

func firstLine(argv ...string) string {
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	s, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(s)
}

// flowModeAvailable reports whether this dnstun has `run --mode flow
// --listen`.
func flowModeAvailable(dnstun string) bool {
	out, _ := exec.Command(dnstun, "run", "-h").CombinedOutput()
	s := string(out)
	return strings.Contains(s, "-listen") && strings.Contains(s, "-mode")
}

// clientRateOff turns off the per-client rate bound of a dnstun that has
// one: the load generator is one client sending at saturation on purpose.
func clientRateOff(e *env) []string {
	out, _ := exec.Command(e.bins["dnstun"], "run", "-h").CombinedOutput()
	if strings.Contains(string(out), "-client-rate") {
		return []string{"--client-rate", "0"}
	}
	return nil
}

func allSystems() []*system {
	return []*system{
		{
			name: "direct", label: "direct to upstream (baseline)", target: upstreamAddr,
			fwd: true, tcp: true, lookups: true,
			avail:   func(*env) string { return "" },
			version: func(*env) string { return "bench/cmd/upstream" },
		},
		{
			name: "dnstun", label: "dnstun, packet path (TUN)", target: tunResolver,
			blocks: true, fwd: true, reloads: true, tcp: true, lookups: true,
			avail: func(*env) string { return "" },
			start: func(e *env, n int) (*lab.Proc, error) {
				return startDnstun(e, n, noCache)
			},
			version: func(e *env) string { return checkout(e) },
		},
		{
			name: "dnstun-flow", label: "dnstun, flow mode (UDP socket)", target: localAddr,
			blocks: true, fwd: true, lookups: true,
			avail: func(e *env) string {
				if !flowModeAvailable(e.bins["dnstun"]) {
					return "not available: this dnstun has no `run --mode flow --listen`"
				}
				return ""
			},
			start: func(e *env, n int) (*lab.Proc, error) {
				return e.start(e.cpus.sut, e.bins["dnstun"], append([]string{"run",
					"--mode", "flow", "--listen", localAddr.String(),
					"--upstream", upstreamAddr.String(),
					"--blocklist", e.lists[n][fmtPlain],
					"--control", "", "--state-file", filepath.Join(e.dir, "state.json"),
					"--log-level", "warn"}, clientRateOff(e)...)...)
			},
			version: func(e *env) string { return checkout(e) },
		},
		{
			name: "dnsmasq", label: "dnsmasq (address=/d/, cache-size=0)", target: localAddr,
			blocks: true, fwd: true, tcp: true,
			avail: peerAvail("dnsmasq", "dnsmasq-base"),
			start: func(e *env, n int) (*lab.Proc, error) {
				return startDnsmasq(e, n, noCache)
			},
			version: func(*env) string { return firstLine(lookPeer("dnsmasq"), "--version") },
		},
		{
			name: "unbound", label: "unbound (local-zone always_nxdomain, forward-zone)", target: localAddr,
			blocks: true, fwd: true, tcp: true,
			avail: peerAvail("unbound", "unbound"),
			start: func(e *env, n int) (*lab.Proc, error) {
				return startUnbound(e, n, noCache)
			},
			version: func(*env) string { return unboundVersion() },
		},
		{
			name: "dnsdist", label: "dnsdist (SuffixMatchNodeRule + RCodeAction, no packet cache)", target: localAddr,
			blocks: true, fwd: true, tcp: true, lookups: true,
			avail: peerAvail("dnsdist", "dnsdist"),
			start: func(e *env, n int) (*lab.Proc, error) {
				return startDnsdist(e, n, noCache)
			},
			version: func(*env) string { return firstLine(lookPeer("dnsdist"), "--version") },
		},
		{
			name: "ceiling", label: "ceiling (TUN, NXDOMAIN in place, nothing else)", target: tunResolver,
			blocks: true, lookups: true,
			avail: func(*env) string { return "" },
			start: func(e *env, n int) (*lab.Proc, error) {
				return e.start(e.cpus.sut, e.bins["ceiling"], "-resolver", tunResolver.Addr().String())
			},
			version: func(*env) string { return "bench/cmd/ceiling" },
		},
	}
}

// checkout names the dnstun source under test: commit, and whether the
// work tree had uncommitted changes (read-only git calls, no index lock).
func checkout(e *env) string {
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = e.moduleDir
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		out, err := cmd.Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	rev := run("rev-parse", "--short", "HEAD")
	if rev == "" {
		return "this checkout"
	}
	if run("status", "--porcelain", "--untracked-files=no") != "" {
		rev += " + uncommitted changes"
	}
	return "dnstun " + rev
}

func firstLineAll(argv ...string) string {
	out, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	return string(out)
}

// setup is what a system's configuration changes between phases: the
// upstream it forwards to, and whether its cache is on (the cache phase)
// or off (every other phase, whose upstream answers with TTL 0 anyway).
type setup struct {
	upstream netip.AddrPort
	cache    bool
	// tag names the configuration files of this setup.
	tag string
}

// noCache is the setup of the load, TCP and memory phases.
var noCache = setup{upstream: upstreamAddr}

// Cache sizes of the cache phase: dnstun's default, and for the peers
// room for twice the forwarded mix (forwardQueries names, one A record
// each) in their own units.
const (
	dnstunCacheSize  = "64MiB"
	peerCacheEntries = 2 * forwardQueries // dnsmasq cache-size, dnsdist newPacketCache
	unboundCacheSize = "16m"              // msg-cache-size and rrset-cache-size
)

// cacheConfig says how the cache phase sets system's cache up, for the
// tables.
func cacheConfig(system string) string {
	switch system {
	case "dnstun":
		return fmt.Sprintf("`--cache %s` (the default)", dnstunCacheSize)
	case "dnsmasq":
		return fmt.Sprintf("`cache-size=%d`", peerCacheEntries)
	case "unbound":
		return fmt.Sprintf("`msg-cache-size: %s`, `rrset-cache-size: %s`", unboundCacheSize, unboundCacheSize)
	case "dnsdist":
		return fmt.Sprintf("`getPool(\"\"):setCache(newPacketCache(%d))`", peerCacheEntries)
	}
	return ""
}

// startDnstun starts dnstun on the TUN with the list of n names; extra
// flags go last.
func startDnstun(e *env, n int, s setup, extra ...string) (*lab.Proc, error) {
	args := []string{"run",
		"--upstream", s.upstream.String(),
		"--blocklist", e.lists[n][fmtPlain],
		"--resolver", tunResolver.Addr().String(),
		"--control", "", "--state-file", filepath.Join(e.dir, "state.json"),
		"--log-level", "warn"}
	// Off outside the cache phase, as every peer's is: dnstun's cache is on
	// by default, and its lookup and the scan of each answer for its TTLs
	// (which finds TTL 0 here and stores nothing) are work dnsdist, with no
	// packet cache, does not do.
	cacheSize := "0"
	if s.cache {
		cacheSize = dnstunCacheSize
	}
	args = append(args, "--cache", cacheSize)
	args = append(args, clientRateOff(e)...)
	return e.start(e.cpus.sut, e.bins["dnstun"], append(args, extra...)...)
}

func startDnsmasq(e *env, n int, s setup) (*lab.Proc, error) {
	conf := filepath.Join(e.dir, "dnsmasq-"+s.tag+strconv.Itoa(n)+".conf")
	what, size := "no cache", 0
	if s.cache {
		what, size = "cache on", peerCacheEntries
	}
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`# dnstun benchmark: blocking forwarder, %s
no-resolv
no-hosts
no-poll
no-negcache
cache-size=%d
server=%s#%d
listen-address=%s
bind-interfaces
dns-forward-max=10000
max-tcp-connections=%d
user=root
group=root
pid-file=
log-facility=-
conf-file=%s
`, what, size, s.upstream.Addr(), s.upstream.Port(), localAddr.Addr(), tcpConns, e.lists[n][fmtDnsmasq])), 0o644)
	if err != nil {
		return nil, err
	}
	return e.start(e.cpus.sut, lookPeer("dnsmasq"), "--keep-in-foreground", "--conf-file="+conf)
}

func startUnbound(e *env, n int, s setup) (*lab.Proc, error) {
	conf := filepath.Join(e.dir, "unbound-"+s.tag+strconv.Itoa(n)+".conf")
	what, size := "caches minimal, upstream TTL 0", "0"
	if s.cache {
		what, size = "caches on", unboundCacheSize
	}
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`# dnstun benchmark: blocking forwarder; %s
server:
	interface: %s
	port: 53
	do-daemonize: no
	username: ""
	chroot: ""
	directory: "%s"
	pidfile: ""
	use-syslog: no
	logfile: ""
	verbosity: 0
	num-threads: 1
	do-ip6: no
	access-control: 0.0.0.0/0 allow
	module-config: "iterator"
	msg-cache-size: %s
	rrset-cache-size: %s
	key-cache-size: 0
	neg-cache-size: 0
	msg-cache-slabs: 1
	rrset-cache-slabs: 1
	infra-cache-slabs: 1
	key-cache-slabs: 1
	num-queries-per-thread: 4096
	outgoing-range: 8192
	incoming-num-tcp: %d
	prefetch: no
	minimal-responses: yes
	do-not-query-localhost: no
	include: "%s"
forward-zone:
	name: "."
	forward-addr: %s@%d
`, what, localAddr.Addr(), e.dir, size, size, tcpConns, e.lists[n][fmtUnbound], s.upstream.Addr(), s.upstream.Port())), 0o644)
	if err != nil {
		return nil, err
	}
	return e.start(e.cpus.sut, lookPeer("unbound"), "-d", "-c", conf)
}

func startDnsdist(e *env, n int, s setup) (*lab.Proc, error) {
	conf := filepath.Join(e.dir, "dnsdist-"+s.tag+strconv.Itoa(n)+".lua")
	what, cache := "no packet cache", ""
	if s.cache {
		what = "packet cache on the default pool"
		cache = fmt.Sprintf("getPool(\"\"):setCache(newPacketCache(%d))\n", peerCacheEntries)
	}
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`-- dnstun benchmark: blocking forwarder, %s
setSecurityPollSuffix("")
setACL({"0.0.0.0/0"})
setLocal("%s")
newServer({address="%s", checkInterval=3600})
setServerPolicy(firstAvailable)
%slocal smn = newSuffixMatchNode()
for line in io.lines("%s") do smn:add(line) end
addAction(SuffixMatchNodeRule(smn, true), RCodeAction(DNSRCode.NXDOMAIN))
`, what, localAddr, s.upstream, cache, e.lists[n][fmtPlain])), 0o644)
	if err != nil {
		return nil, err
	}
	return e.start(e.cpus.sut, lookPeer("dnsdist"), "--supervised", "--disable-syslog", "-C", conf)
}

// SPDX-License-Identifier: MIT

// Package attrib finds the local process that owns the socket a DNS query
// came from (per-process attribution).
//
// A query reaches dnstun as a packet (or a TCP segment) whose source
// address and port are the asking program's socket, in dnstun's network
// namespace. A Key names that socket: the protocol, the query's source
// (Local) and destination (Remote). An Owner is the process: PID, the
// socket's UID, Name, Exe and, on macOS, the code-signing identifier.
//
// # API
//
//	t, err := attrib.New(attrib.Config{OnResolved: release}) // errors.ErrUnsupported off Linux and macOS
//	go t.Run(ctx)                  // the lookup goroutine(s) and Lookup's coarse clock
//	o := t.Lookup(k)               // packet path: cached owner or nil
//	if o == nil { t.Request(k) }   // packet path: queue a lookup; false if the queue is full
//	o, err := t.Resolve(ctx, k)    // slow path (TCP connection goroutines, control plane)
//	o := t.Wait(k, 50*time.Millisecond)
//	t.Stats(); t.Close()
//
// Config.OnResolved(k, o) is called after each lookup (o nil if no owner
// was found) and for each queued key the cache answers already, after the
// cache is updated, so that the engine can release the queries it held
// for their owner. It must not block.
//
// # Invariants (tested, measured)
//
//   - Lookup and Request do not allocate (AllocsPerRun tests), lock or make
//     system calls; both are safe for any number of goroutines. Lookup hashes
//     the key with a per-table seed, loads up to four atomic pointers of one
//     bucket and compares whole keys. While Run runs, Lookup reads Run's
//     coarse clock (a twentieth of the shorter TTL, at most 100 ms) instead
//     of the time; without Run it reads the monotonic clock. Counters are
//     striped across cache lines. Request is a non-blocking send on a
//     bounded channel; a full queue is counted (Stats.Drops).
//   - The cache is bounded: Config.Entries slots (rounded up to a power of
//     two, four per bucket) allocated once; a new entry replaces the key's
//     old one, a free slot, or the bucket's oldest.
//   - Expiry. An owner is kept for Config.TTL (10 s) after its lookup. The
//     first hit after TTL/2 queues one refresh. So when a socket closes and
//     another process reuses its port, queries from the new socket are
//     attributed to the old owner until that refresh or, at the latest,
//     until TTL (plus a tick) after the old lookup; TestPortReuse shows it.
//     "No owner" (and a failed lookup) is kept for Config.NegativeTTL
//     (2 s): a burst of queries from a socket that cannot be attributed
//     costs one lookup. Lookup misses on a negative entry.
//   - Run dedups the keys of each batch it drains and skips keys the cache
//     already holds fresh. Each lookup is bounded by Config.Timeout (500
//     ms) and by Resolve's context; Resolve runs at most Config.Resolvers
//     lookups at once.
//   - The returned *Owner is shared and must not be modified.
//
// # Linux
//
// 1. The socket: NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY with struct
// inet_diag_req_v2 naming the exact socket (cookie INET_DIAG_NOCOOKIE, no
// dump). TCP's lookup takes the socket's local end as idiag_src/sport; UDP's
// udp_dump_one passes the id to __udp4_lib_lookup as a received packet's
// addresses ("src and dst are swapped for historical reasons",
// net/ipv4/udp_diag.c), so the request carries the remote end in src/sport;
// being a receive-path lookup it also finds unconnected sockets and sockets
// bound to the wildcard address. An IPv4 key is tried as AF_INET, then as a
// dual-stack AF_INET6 socket with IPv4-mapped addresses. If neither finds
// it, a dump filtered in the kernel by the local port (inet_diag bytecode
// S_GE/S_LE) of both families is matched in Go (the exact peer, then the
// exact local address, then wildcards). The reply gives the socket's inode
// and uid. Each lookup goroutine keeps one netlink socket (and an fd of
// /proc). sock_diag needs no privilege.
//
// 2. The process: the fd whose link is "socket:[INODE]". The resolvers
// share an index inode → (pid, fd) of every socket seen in earlier scans
// (verified with one readlink before use; at most 65536 entries) and the 16
// most recent owners. On an index miss the scan reads the fd tables of the
// recent owners, then of the processes whose /proc/PID belongs to the
// socket's uid, then of the others, each newest PID first (a short-lived
// client such as dig or curl has a high PID), indexing every socket it
// passes; at most Config.MaxScan processes and within the timeout. Then
// Name is /proc/PID/comm and Exe readlink /proc/PID/exe (empty if it cannot
// be read). A socket shared by several processes (inherited across fork)
// is attributed to the first one found. Processes in another PID namespace
// are not visible: dnstun must see the /proc of the clients' PID namespace.
//
// Privileges. Listing another user's /proc/PID/fd (a directory of mode
// 0500 owned by the process's uid; fs/proc/fd.c proc_fd_permission is
// generic_permission) needs CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE);
// reading its links and /proc/PID/exe (proc_fd_access_allowed:
// ptrace_may_access with PTRACE_MODE_READ_FSCREDS) needs CAP_SYS_PTRACE.
// So a daemon that drops root needs both CAP_SYS_PTRACE and
// CAP_DAC_READ_SEARCH to attribute processes of other users; one of them
// alone is not enough. TestCapabilities verifies this: run as uid 65534
// with no capability, with either one, and with both, against a root
// process's socket, only both succeed. The same holds for non-dumpable
// processes of the daemon's own uid (their /proc/PID/fd is root's).
// Yama's ptrace_scope does not apply (it restricts PTRACE_MODE_ATTACH
// only); an LSM policy (AppArmor, SELinux) may still deny ptrace read
// access. Without the capabilities lookups of other users' processes end
// in an error wrapping both ErrNotFound and fs.ErrPermission, and the
// Table logs one warning.
//
// Cost (2-vCPU VM shared with other work, 73-80 processes, go test
// -bench): with Run running a Lookup hit takes 37-41 ns and a miss 32-37
// ns (67-100 ns without Run, which reads the clock), Request 80-85 ns, all
// with 0 allocations; a Resolve cache miss on a fresh socket of a recent
// owner 30-41 µs (sock_diag, one fd table, comm, exe); when the owner is
// neither indexed nor recent, each fd table read costs about 13 µs until
// the process is found: 67 µs for a new child process (found among the
// first few, newest first), 1 ms when the scan read all 74 fd tables.
//
// # macOS
//
// The PCB list of the protocol, sysctl net.inet.udp.pcblist_n or
// net.inet.tcp.pcblist_n (what netstat and lsof read), parsed by
// parsePcblist (no build tag, tested and fuzzed on Linux): per PCB an
// xinpcb_n (ports, addresses, inp_vflag) and an xsocket_n whose
// so_last_pid is the last process that used the socket and so_e_pid the
// one it acted for (a delegated socket; Owner.EffectivePID when it
// differs). The best match is chosen as on Linux. Name is kinfo_proc
// p_comm (sysctl kern.proc.pid.PID), Exe proc_pidpath (the proc_info
// system call, PROC_PIDPATHINFO), SigningID csops(CS_OPS_IDENTITY). No cgo:
// x/sys/unix's SysctlRaw and SysctlKinfoProc, and unix.Syscall6 for
// proc_info (336) and csops (169), the calls libproc and libsystem make.
//
// Sources of the layouts: xnu bsd/netinet/in_pcblist.c (get_pcblist_n: the
// record sequence, ROUNDUP64 padding, the trailing xinpgen),
// bsd/netinet/in_pcb.h (struct xinpcb_n, struct xinpgen) and
// bsd/sys/socketvar.h (struct xsocket_n), both inside #pragma pack(4);
// network_cmds netstat.tproj/inet.c for the walk; bsd/sys/proc_info.h and
// Libc's libproc.c for proc_pidpath; bsd/kern/kern_proc.c csops_internal
// for the identity blob. The offsets were computed from the declarations
// by a pack(4) layout calculator in parse_test.go, which builds the
// fixtures and checks the parser's constants. Records are read by their
// own length and kind, so fields appended in later releases (xsocket_n
// grew from 76 to 104 bytes) do not matter.
//
// Verified here: the darwin code compiles and vets (amd64, arm64); the
// parser and matcher pass fixture tests (IPv4, IPv6, dual-stack, old and
// new xsocket_n, a PCB without socket, TCP's extra record) and fuzzing.
// Not verified (no Mac here): the live sysctl output; that so_last_pid is
// set for a socket that has only sent (xnu sets it in sosend and the
// socket calls); the proc_info and csops calls and their permissions for
// other users' processes (the daemon runs as root); which process
// mDNSResponder's queries carry in so_e_pid.
//
// To verify on a Mac (as root, so that other users' processes resolve):
//
//	go test ./attrib                     # the OS-neutral tests: cache, parsers, fixtures
//	go test -c -o /tmp/attrib.test ./attrib
//	sudo /tmp/attrib.test -test.run Darwin -test.v
//	                                     # TestDarwinOwnSockets: own UDP (v4 connected and
//	                                     # not, v6) and TCP sockets → our pid, uid, name
//	                                     # "attrib.test", exe /tmp/attrib.test; it logs
//	                                     # each owner with its signing id
//	netstat -anv -p udp | head           # its pid and epid columns are so_last_pid and
//	                                     # so_e_pid: compare with what the test logs
//	codesign -dv /tmp/attrib.test 2>&1 | grep Identifier
//	                                     # must equal the logged signing id (Go's linker
//	                                     # signs ad hoc; on amd64 it may be unsigned: "")
//
// then run dnstun with attribution, `dig example.com` and check that the
// query log shows dig (or mDNSResponder for getaddrinfo's queries, whose
// EffectivePID, if set, names the app).
//
// # Other systems
//
// New returns an error wrapping errors.ErrUnsupported.
package attrib

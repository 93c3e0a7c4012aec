// SPDX-License-Identifier: MIT

package route

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Steering is capture applied on Linux. Withdraw undoes it; Monitor keeps
// it in place while others (systemd-networkd) delete parts of it.
type Steering struct {
	cfg  Config
	plan LinuxPlan
	dir  string
	log  *slog.Logger

	mu        sync.Mutex
	withdrawn bool
	nft       *exec.Cmd
	nftIn     io.WriteCloser
	nftDone   chan struct{}
	resolved  []string // the TUN name when registered with resolved
}

// Apply steers port-53 traffic into cfg.Tun: it writes the journal to dir,
// then the per-device sysctls, routes, rules and (when cfg.NFT and nftables
// are available) the owner table. If a step fails, what was applied is
// withdrawn and the error says which step failed.
func Apply(cfg Config, dir string, log *slog.Logger) (*Steering, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.Default()
	}
	s := &Steering{cfg: cfg, dir: dir, log: log}
	if cfg.NFT {
		if _, err := exec.LookPath("nft"); err != nil {
			log.Warn("nftables (the nft command) is not available: sockets pinned to an interface with IP_UNICAST_IF are not captured", "err", err)
			s.cfg.NFT = false
		}
	}
	s.plan = PlanLinux(s.cfg)
	j := &Journal{PID: os.Getpid(), BootID: BootID(), Started: time.Now().UTC(), Phase: "applying", OS: "linux", Linux: &s.plan, Tun: cfg.Tun}
	if err := WriteJournal(dir, j); err != nil {
		return nil, err
	}
	if err := s.apply(); err != nil {
		s.Withdraw()
		return nil, err
	}
	j.Phase = "active"
	if err := WriteJournal(dir, j); err != nil {
		s.Withdraw()
		return nil, err
	}
	log.Info("capture on", "tun", cfg.Tun, "table", s.cfg.Table, "rules", len(s.plan.Rules), "nftables", len(s.plan.NFT) > 0)
	return s, nil
}

func (s *Steering) apply() error {
	for _, sc := range s.plan.Sysctls {
		if err := writeSysctl(sc); err != nil {
			return err
		}
	}
	link, err := netlink.LinkByName(s.cfg.Tun)
	if err != nil {
		return fmt.Errorf("capture: find %s: %w", s.cfg.Tun, err)
	}
	for _, r := range s.plan.Routes {
		if err := netlink.RouteReplace(nlRoute(r, link.Attrs().Index)); err != nil {
			return fmt.Errorf("capture: %v: %w", r, err)
		}
	}
	for _, r := range s.plan.Rules {
		if err := netlink.RuleAdd(nlRule(r)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("capture: %v: %w (the kernel needs ipproto/dport rule support, Linux 4.17+)", r, err)
		}
	}
	if len(s.plan.NFT) > 0 {
		if err := s.startNFT(); err != nil {
			return err
		}
	}
	return nil
}

func writeSysctl(sc Sysctl) error {
	p := "/proc/sys/" + strings.ReplaceAll(sc.Key, ".", "/")
	if err := os.WriteFile(p, []byte(sc.Value), 0); err != nil {
		return fmt.Errorf("capture: sysctl %s=%s: %w", sc.Key, sc.Value, err)
	}
	return nil
}

func family(f int) int {
	if f == 6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

func nlRule(r Rule) *netlink.Rule {
	nr := netlink.NewRule()
	nr.Family = family(r.Family)
	nr.Priority = r.Pref
	nr.Table = r.Table
	nr.Mark = r.Mark
	mask := r.Mask
	nr.Mask = &mask
	if r.IifLo {
		nr.IifName = "lo"
	}
	switch r.IPProto {
	case "udp":
		nr.IPProto = unix.IPPROTO_UDP
	case "tcp":
		nr.IPProto = unix.IPPROTO_TCP
	}
	if r.Dport != 0 {
		nr.Dport = netlink.NewRulePortRange(r.Dport, r.Dport)
	}
	nr.Protocol = Protocol
	return nr
}

func nlRoute(r Route, ifindex int) *netlink.Route {
	dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	if r.Family == 6 {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	return &netlink.Route{
		LinkIndex: ifindex,
		Dst:       dst,
		Table:     r.Table,
		Scope:     netlink.SCOPE_LINK,
		Protocol:  Protocol,
		Family:    family(r.Family),
	}
}

// startNFT runs `nft -i` as a child that holds the owner table: the table
// belongs to the child's netlink socket, so it disappears when the child
// exits, and the child exits when dnstun dies (stdin EOF, and a parent-death
// signal).
func (s *Steering) startNFT() error {
	cmd := exec.Command("nft", "-i")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("capture: start nft -i: %w", err)
	}
	s.nft, s.nftIn, s.nftDone = cmd, in, make(chan struct{})
	var outMu sync.Mutex
	var output strings.Builder
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			outMu.Lock()
			output.WriteString(sc.Text() + "\n")
			outMu.Unlock()
		}
		cmd.Wait()
		close(s.nftDone)
	}()
	if _, err := io.WriteString(in, strings.Join(s.plan.NFT, "\n")+"\n"); err != nil {
		return fmt.Errorf("capture: feed nft: %w", err)
	}
	// The table is there once the last rule is: poll briefly.
	for range 50 {
		if o, err := exec.Command("nft", "list", "chain", "inet", NFTTable, "prerouting").CombinedOutput(); err == nil && strings.Contains(string(o), "iifname") {
			return nil
		}
		select {
		case <-s.nftDone:
			outMu.Lock()
			defer outMu.Unlock()
			return fmt.Errorf("capture: nft -i exited: %s", output.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	outMu.Lock()
	defer outMu.Unlock()
	return fmt.Errorf("capture: the nftables table did not appear within 1 s: %s", output.String())
}

// Withdraw removes what Apply added, in reverse order, and the journal.
// Each step is fail-open on its own; errors are collected. Idempotent.
func (s *Steering) Withdraw() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.withdrawn {
		return nil
	}
	s.withdrawn = true
	var errs []error
	if s.nft != nil {
		s.nftIn.Close() // nft -i exits on EOF; its table goes with it
		select {
		case <-s.nftDone:
		case <-time.After(2 * time.Second):
			s.nft.Process.Kill()
			<-s.nftDone
		}
		exec.Command("nft", "delete", "table", "inet", NFTTable).Run() // in case it outlived the child
	}
	for i := len(s.plan.Rules) - 1; i >= 0; i-- {
		if err := netlink.RuleDel(nlRule(s.plan.Rules[i])); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete %v: %w", s.plan.Rules[i], err))
		}
	}
	if link, err := netlink.LinkByName(s.cfg.Tun); err == nil {
		for _, r := range s.plan.Routes {
			if err := netlink.RouteDel(nlRoute(r, link.Attrs().Index)); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete %v: %w", r, err))
			}
		}
	}
	// Routes of a vanished TUN are already gone with it.
	if err := RemoveJournal(s.dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		s.log.Info("capture off", "tun", s.cfg.Tun)
	}
	return errors.Join(errs...)
}

// Monitor watches rtnetlink for deleted rules and routes and puts dnstun's
// back, at most once per 250 ms and 10 times per 5 s (a fight with another
// daemon is logged, not won by brute force). It returns when done closes.
func (s *Steering) Monitor(done <-chan struct{}) error {
	sock, err := nl.Subscribe(unix.NETLINK_ROUTE, unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE)
	if err != nil {
		return fmt.Errorf("capture: subscribe to rtnetlink: %w", err)
	}
	events := make(chan struct{}, 1)
	go func() {
		<-done
		sock.Close()
	}()
	go func() {
		defer close(events)
		for {
			msgs, _, err := sock.Receive()
			if err != nil {
				return
			}
			for _, m := range msgs {
				if m.Header.Type == unix.RTM_DELRULE || m.Header.Type == unix.RTM_DELROUTE {
					select {
					case events <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	var recent []time.Time
	for {
		select {
		case <-done:
			return nil
		case _, ok := <-events:
			if !ok {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond) // let a burst of deletions finish
		now := time.Now()
		for len(recent) > 0 && now.Sub(recent[0]) > 5*time.Second {
			recent = recent[1:]
		}
		if len(recent) >= 10 {
			s.log.Warn("capture rules keep being deleted by someone else; not re-adding for now (systemd-networkd: set ManageForeignRoutingPolicyRules=no)")
			continue
		}
		if n := s.restore(); n > 0 {
			recent = append(recent, now)
			s.log.Warn("capture rules or routes were deleted from outside; put back", "count", n)
		}
	}
}

// restore re-adds whatever of the plan is missing; it returns how many
// rules and routes it added. Every rule of the plan (UDP/53, TCP/53 and
// the nftables mark rule, per family) is offered again: RuleAdd asks for
// NLM_F_EXCL, so the kernel refuses one equal in every selector to a rule
// still in place (EEXIST, not counted), and the plan gives each rule a
// priority of its own, so a rule still there never stands in for a
// deleted one.
func (s *Steering) restore() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.withdrawn {
		return 0
	}
	n := 0
	for _, r := range s.plan.Rules {
		if err := netlink.RuleAdd(nlRule(r)); err == nil {
			n++
		}
	}
	if link, err := netlink.LinkByName(s.cfg.Tun); err == nil {
		for _, r := range s.plan.Routes {
			nr := nlRoute(r, link.Attrs().Index)
			existing, _ := netlink.RouteListFiltered(nr.Family, &netlink.Route{Table: r.Table}, netlink.RT_FILTER_TABLE)
			if len(existing) == 0 && netlink.RouteReplace(nr) == nil {
				n++
			}
		}
	}
	return n
}

// Sweep removes every rule tagged with dnstun's protocol and every route of
// its table, of both families, and dnstun's nftables table: what a dead
// instance may have left (stale rules are harmless on their own once the
// table is empty, but are not left behind). The caller holds the lock, so
// no live instance owns them. It returns what it removed.
func Sweep(table int, log *slog.Logger) ([]string, error) {
	if table == 0 {
		table = DefaultTable
	}
	var removed []string
	var errs []error
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := netlink.RuleList(fam)
		if err != nil {
			errs = append(errs, fmt.Errorf("list rules: %w", err))
			continue
		}
		for _, r := range rules {
			if r.Protocol != Protocol {
				continue
			}
			r := r
			if err := netlink.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("delete rule pref %d: %w", r.Priority, err))
				continue
			}
			removed = append(removed, fmt.Sprintf("rule pref %d table %d (family %d)", r.Priority, r.Table, fam))
		}
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, fmt.Errorf("list routes: %w", err))
			continue
		}
		for _, r := range routes {
			r := r
			if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route %v: %w", r, err))
				continue
			}
			removed = append(removed, fmt.Sprintf("route %v table %d", r.Dst, table))
		}
	}
	if _, err := exec.LookPath("nft"); err == nil {
		if r, err := sweepNFT(nftOwnerGrace); err != nil {
			errs = append(errs, err)
		} else if r != "" {
			removed = append(removed, r)
		}
	}
	for _, r := range removed {
		log.Info("cleanup removed a leftover", "what", r)
	}
	return removed, errors.Join(errs...)
}

// nftOwnerGrace is how long a sweep waits for the owner of the nftables
// table to die: the table carries the owner flag, so only the `nft -i`
// child that made it may delete it, and the kernel removes it when that
// child's netlink socket closes. Right after a kill -9 the child may still
// be finishing a netlink request before the death signal it was given
// (PR_SET_PDEATHSIG) takes it.
const nftOwnerGrace = 2 * time.Second

// sweepNFT deletes the leftover nftables table; one still held by its
// owner is waited for (up to grace), as it goes away with the owner. It
// returns what it removed ("" for nothing).
func sweepNFT(grace time.Duration) (string, error) {
	exists := func() bool { return exec.Command("nft", "list", "table", "inet", NFTTable).Run() == nil }
	if !exists() {
		return "", nil
	}
	deadline := time.Now().Add(grace)
	for {
		out, err := exec.Command("nft", "delete", "table", "inet", NFTTable).CombinedOutput()
		if err == nil {
			return "nftables table inet " + NFTTable, nil
		}
		if !exists() {
			// Its owner died meanwhile, and the kernel removed it.
			return "nftables table inet " + NFTTable + " (with its owner)", nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("nft delete table inet %s: %v: %s (its owner, an `nft -i` of the dead instance, still holds it after %v: kill that process and run cleanup again)", NFTTable, err, out, grace)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SweepOwned is Sweep: on Linux every leftover is proven ours by its tag
// (protocol 83, the table), whichever instance left it.
func SweepOwned(table, journalPID int, log *slog.Logger) ([]string, error) {
	return Sweep(table, log)
}

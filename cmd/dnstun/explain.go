// SPDX-License-Identifier: MIT

package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dnstun/dnstun/filter"
	"github.com/miekg/dns"
)

// cmdExplain is `dnstun explain [--blocklist PATH ... | --config FILE]
// [--client IP] [--process NAME] NAME [TYPE]`: the decision for a query and
// every rule that matched it, with list, line and text.
func cmdExplain(args []string, stdout, stderr io.Writer) error {
	// The settings of `run` (lists, rules, block mode, --config), then
	// the query.
	fs, fl := settingsFlags("explain", stderr)
	client := fs.String("client", "", "the client's IP address (for $client rules)")
	process := fs.String("process", "", "the asking process's name, as both its name and its executable (for $process rules)")
	o, rest, err := options(fs, fl, args, true)
	if err != nil {
		return err
	}
	if len(rest) == 0 || len(rest) > 2 {
		return usageError{errors.New("want NAME [TYPE] after the flags")}
	}
	set, err := buildSet(o, stderr)
	if err != nil {
		return err
	}
	q := filter.Query{Name: []byte(strings.ToLower(strings.TrimSuffix(rest[0], ".")))}
	q.QType = dns.TypeA
	if len(rest) == 2 {
		t, ok := dns.StringToType[strings.ToUpper(rest[1])]
		if !ok {
			return usageError{fmt.Errorf("unknown type %q", rest[1])}
		}
		q.QType = t
	}
	if *client != "" {
		a, err := netip.ParseAddr(*client)
		if err != nil {
			return usageError{fmt.Errorf("--client %q: not an IP address", *client)}
		}
		q.Client = a
	}
	if *process != "" {
		q.Proc, q.Exe = []byte(*process), []byte(*process)
	}
	d, matches := set.Explain(&q)
	fmt.Fprintf(stdout, "%s %s: %s", rest[0], dns.TypeToString[q.QType], d.Action)
	if d.Action == filter.Block {
		mode := d.Mode
		if mode == filter.ModeDefault {
			mode = o.BlockMode
		}
		fmt.Fprintf(stdout, " (%s)", mode)
	}
	if d.Action == filter.Answer {
		fmt.Fprintf(stdout, " (%s)", answerSummary(d, q.QType))
	}
	fmt.Fprintln(stdout)
	if len(matches) == 0 {
		fmt.Fprintln(stdout, "  no rule matched")
	}
	for _, m := range matches {
		mark := " "
		if m.Won {
			mark = "*"
		}
		fmt.Fprintf(stdout, "%s %s:%d: %s  [%s] %s\n", mark, m.Source.List, m.Source.Line, m.Source.Text, m.Class, m.Why)
	}
	return nil
}

// answerSummary says what a local answer holds: its rcode, and the
// records the query's type gets (none: NODATA).
func answerSummary(d filter.Decision, qtype uint16) string {
	if d.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[int(d.Rcode)]
	}
	var rrs []string
	if len(d.CNAME) > 0 && qtype != dns.TypePTR {
		if name, _, err := dns.UnpackDomainName(d.CNAME, 0); err == nil {
			rrs = append(rrs, "CNAME "+name)
		}
	}
	for _, a := range d.Addrs {
		// As the engine answers (packet.AnswerInPlace): IPv4 addresses in
		// A records, every IPv6 address, v4-mapped ones too, in AAAA.
		if a.Is4() && qtype == dns.TypeA || a.Is6() && qtype == dns.TypeAAAA {
			rrs = append(rrs, a.String())
		}
	}
	if qtype == dns.TypeTXT {
		for _, t := range d.TXT {
			rrs = append(rrs, strconv.Quote(string(t)))
		}
	}
	if qtype == dns.TypePTR && len(d.PTR) > 0 {
		if name, _, err := dns.UnpackDomainName(d.PTR, 0); err == nil {
			rrs = append(rrs, "PTR "+name)
		}
	}
	if len(rrs) == 0 {
		return "NODATA"
	}
	return strings.Join(rrs, ", ")
}

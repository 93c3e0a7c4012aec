// SPDX-License-Identifier: MIT

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/dnstun/dnstun/filter"
	"github.com/miekg/dns"
)

// cmdExplain is `dnstun explain [--blocklist PATH ... | --config FILE]
// [--client IP] NAME [TYPE]`: the decision for a query and every rule that
// matched it, with list, line and text.
func cmdExplain(args []string, stdout, stderr io.Writer) error {
	// The run flags give the same list options as `run`; the query comes
	// after them.
	var rest []string
	for i, a := range args {
		if !strings.HasPrefix(a, "-") && (i == 0 || !takesValue(args[i-1])) {
			rest = args[i:]
			args = args[:i]
			break
		}
	}
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := fs.String("client", "", "the client's IP address (for $client rules)")
	var runArgs []string
	fs.Func("blocklist", "block list file (repeatable)", func(s string) error { runArgs = append(runArgs, "--blocklist", s); return nil })
	fs.Func("config", "configuration file whose lists to use", func(s string) error { runArgs = append(runArgs, "--config", s); return nil })
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if len(rest) == 0 || len(rest) > 2 {
		return usageError{errors.New("want NAME [TYPE] after the flags")}
	}
	c, err := parseRunFlags(append(runArgs, "--upstream", "192.0.2.1"), stderr)
	if err != nil {
		return err
	}
	set, warnings, err := loadListsQuiet(c)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
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
	d, matches := set.Explain(&q)
	fmt.Fprintf(stdout, "%s %s: %s", rest[0], dns.TypeToString[q.QType], d.Action)
	if d.Action == filter.Block {
		mode := d.Mode
		if mode == filter.ModeDefault {
			mode = c.engine.BlockMode
		}
		fmt.Fprintf(stdout, " (%s)", mode)
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

func takesValue(flagArg string) bool {
	if strings.Contains(flagArg, "=") {
		return false
	}
	switch strings.TrimLeft(flagArg, "-") {
	case "blocklist", "config", "client":
		return true
	}
	return false
}

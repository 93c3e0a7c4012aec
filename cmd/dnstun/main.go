// SPDX-License-Identifier: MIT

// Command dnstun blocks, answers and forwards DNS at the packet level on a
// TUN device.
//
//	dnstun run   [flags]   serve the virtual resolver on a TUN
//	dnstun demo            run the whole path in throw-away namespaces (root)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dnstun/dnstun/daemon"
)

const usage = `dnstun: a packet-level DNS filter on a TUN device.

Usage:
  dnstun run [flags]     serve dnstun's virtual resolver on a TUN (root)
  dnstun status|enable|disable|reload|stats|querylog|stop [--control PATH] [--json]
                         talk to a running dnstun over its control socket
  dnstun cache flush [NAME]   empty the response cache, or drop NAME and the names under it
  dnstun explain [--blocklist PATH ... | --config FILE] [--client IP] NAME [TYPE]
                         the decision for a query and the rules behind it
  dnstun check [flags]   validate a configuration (--config FILE) and its lists
  dnstun install [-n] [--root DIR]   install the systemd unit / launchd daemon
  dnstun uninstall [--purge]         stop, clean up and remove it
  dnstun cleanup         remove what a killed dnstun left (rules, routes, nft table)
  dnstun bench [flags]   load-test a resolver address: closed-loop qps or open-loop latency
  dnstun demo            run the real engine on a real TUN inside throw-away
                         network namespaces, send real queries, print a table
                         and remove everything (root)
  dnstun help            this text

Run 'dnstun COMMAND -h' for the flags of a command.
`

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs dnstun with args and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "status", "enable", "disable", "reload", "stats", "querylog", "stop":
		err = cmdControl(args[0], args[1:], stdout, stderr)
	case "cache":
		if len(args) < 2 || args[1] != "flush" {
			err = usageError{fmt.Errorf("want: dnstun cache flush [NAME]")}
			break
		}
		err = cmdControl("cache-flush", args[2:], stdout, stderr)
	case "explain":
		err = cmdExplain(args[1:], stdout, stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "install":
		err = cmdInstall(false, args[1:], stdout, stderr)
	case "uninstall":
		err = cmdInstall(true, args[1:], stdout, stderr)
	case "cleanup":
		err = cmdCleanup(args[1:], stdout, stderr)
	case "bench":
		err = cmdBench(args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "dnstun: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee daemon.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "dnstun %s: %v\n", args[0], err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "dnstun %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// usageError is a bad command line (exit status 2).
type usageError struct{ error }

// parseFlags parses args into fs: -h gives flag.ErrHelp (exit 0), any
// other error a usageError (exit 2).
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err}
}

// SPDX-License-Identifier: MIT

package service

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"text/template"

	"github.com/dnstun/dnstun/config"
)

// ExitDisabled is the exit status of `dnstun run --exit-when-disabled`
// when dnstun is disabled, on Linux (see ExitDisabledStatus).
const ExitDisabled = 75

// ExitDisabledStatus is that exit status on goos: ExitDisabled under
// systemd, 0 under launchd (which restarts any other).
func ExitDisabledStatus(goos string) int {
	if goos == "darwin" {
		return 0
	}
	return ExitDisabled
}

// Options say where things go. Zero fields take Defaults(goos).
type Options struct {
	Binary     string // where the binary is installed
	Source     string // the binary to copy there (usually os.Executable())
	Config     string // the config file
	RunDir     string // runtime state (capture.state_dir), writable by the service
	Label      string // launchd label / systemd unit name without .service
	LogFile    string // darwin: StandardErrorPath
	ConfigData []byte // the default config written when Config is absent (nil: config.Example)
	// StopTimeoutSec is how long the service manager waits after SIGTERM
	// before SIGKILL: time for the clean stop (answer what is in flight,
	// withdraw steering, close the TUN).
	StopTimeoutSec int
}

// Defaults returns the options for goos.
func Defaults(goos string) Options {
	if goos == "darwin" {
		return Options{
			Binary:         "/Library/PrivilegedHelperTools/dnstun",
			Config:         "/Library/Application Support/dnstun/dnstun.yaml",
			RunDir:         config.RunDir(goos),
			Label:          "com.github.dnstun",
			LogFile:        "/Library/Logs/dnstun.log",
			StopTimeoutSec: 30,
		}
	}
	return Options{
		Binary:         "/usr/local/bin/dnstun",
		Config:         "/etc/dnstun/dnstun.yaml",
		RunDir:         config.RunDir(goos),
		Label:          "dnstun",
		StopTimeoutSec: 30,
	}
}

func (o Options) withDefaults(goos string) Options {
	d := Defaults(goos)
	set := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	set(&o.Binary, d.Binary)
	set(&o.Config, d.Config)
	set(&o.RunDir, d.RunDir)
	set(&o.Label, d.Label)
	set(&o.LogFile, d.LogFile)
	if o.Source == "" {
		o.Source = o.Binary
	}
	if o.StopTimeoutSec <= 0 {
		o.StopTimeoutSec = d.StopTimeoutSec
	}
	if o.ConfigData == nil {
		o.ConfigData = config.Example
	}
	return o
}

func (o Options) check(goos string) error {
	var errs []error
	for _, p := range []struct{ name, v string }{{"binary", o.Binary}, {"config", o.Config}, {"run dir", o.RunDir}, {"log file", o.LogFile}, {"source", o.Source}} {
		if p.v == "" && p.name == "log file" && goos != "darwin" {
			continue
		}
		if !path.IsAbs(p.v) {
			errs = append(errs, fmt.Errorf("%s %q: want an absolute path", p.name, p.v))
		}
		if strings.ContainsAny(p.v, "\x00\n\r") {
			errs = append(errs, fmt.Errorf("%s %q: control characters", p.name, p.v))
		}
		// systemd unit lines: no quoting, no specifiers, no variables.
		if goos != "darwin" && p.name != "source" && strings.ContainsAny(p.v, " \t\"'\\%$;") {
			errs = append(errs, fmt.Errorf("%s %q: a systemd unit path cannot hold spaces, quotes, '%%', '$', ';' or '\\'", p.name, p.v))
		}
	}
	if o.Label == "" || strings.ContainsAny(o.Label, "/ \t\n\\%$\"'") {
		errs = append(errs, fmt.Errorf("label %q: want letters, digits, dots, dashes", o.Label))
	}
	return errors.Join(errs...)
}

// File is one file of a plan.
type File struct {
	Path     string
	Mode     fs.FileMode
	Content  []byte
	Source   string // when set, the content is this file's (the binary)
	IfAbsent bool   // never overwrite: the user's config
}

// Plan is what install or uninstall does, in Apply's order: write Files,
// run Commands, remove Remove, run After.
type Plan struct {
	Files    []File
	Commands [][]string
	Remove   []string
	After    [][]string
}

// UnitPath is where the service definition goes on goos.
func UnitPath(o Options, goos string) string {
	o = o.withDefaults(goos)
	if goos == "darwin" {
		return "/Library/LaunchDaemons/" + o.Label + ".plist"
	}
	return "/etc/systemd/system/" + o.Label + ".service"
}

// Unit renders the systemd unit (goos linux) or the launchd plist (darwin).
func Unit(o Options, goos string) ([]byte, error) {
	o = o.withDefaults(goos)
	if err := o.check(goos); err != nil {
		return nil, err
	}
	t := systemdTmpl
	if goos == "darwin" {
		t = launchdTmpl
	} else if goos != "linux" {
		return nil, fmt.Errorf("dnstun install: %s is not supported (linux and darwin are)", goos)
	}
	var b bytes.Buffer
	err := t.Execute(&b, struct {
		Options
		ExitDisabled int
	}{o, ExitDisabled})
	return b.Bytes(), err
}

// InstallPlan returns what `dnstun install` does on goos.
func InstallPlan(o Options, goos string) (Plan, error) {
	o = o.withDefaults(goos)
	unit, err := Unit(o, goos)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Files: []File{
		{Path: o.Binary, Mode: 0o755, Source: o.Source},
		{Path: o.Config, Mode: 0o644, Content: o.ConfigData, IfAbsent: true},
		{Path: UnitPath(o, goos), Mode: 0o644, Content: unit},
	}}
	if goos == "darwin" {
		p.Commands = [][]string{
			// A reinstall replaces a loaded job; the first install has none.
			{"-launchctl", "bootout", "system/" + o.Label},
			{"launchctl", "bootstrap", "system", UnitPath(o, goos)},
		}
	} else {
		p.Commands = [][]string{
			{"systemctl", "daemon-reload"},
			{"systemctl", "enable", o.Label + ".service"},
			// Starts it, or restarts it on the new binary after a reinstall.
			{"systemctl", "restart", o.Label + ".service"},
		}
	}
	return p, nil
}

// UninstallPlan returns what `dnstun uninstall` does on goos: stop, clean
// up, remove the unit and the binary; the config stays unless purge.
func UninstallPlan(o Options, goos string, purge bool) (Plan, error) {
	o = o.withDefaults(goos)
	if err := o.check(goos); err != nil {
		return Plan{}, err
	}
	var p Plan
	if goos == "darwin" {
		p.Commands = [][]string{
			{"-launchctl", "bootout", "system/" + o.Label},
			{"-" + o.Binary, "cleanup", "--state-dir", o.RunDir},
		}
		p.Remove = []string{UnitPath(o, goos), o.Binary}
	} else {
		p.Commands = [][]string{
			{"-systemctl", "disable", "--now", o.Label + ".service"},
			{"-" + o.Binary, "cleanup", "--state-dir", o.RunDir},
		}
		p.Remove = []string{UnitPath(o, goos), o.Binary}
		p.After = [][]string{{"systemctl", "daemon-reload"}}
	}
	if purge {
		p.Remove = append(p.Remove, o.Config, path.Dir(o.Config))
		if goos == "darwin" {
			p.Remove = append(p.Remove, o.LogFile)
		}
	}
	return p, nil
}

// String renders p for golden files and for `dnstun install -n`.
func (p Plan) String() string {
	var b strings.Builder
	for _, f := range p.Files {
		what := fmt.Sprintf("%d bytes", len(f.Content))
		if f.Source != "" {
			what = "copy of " + f.Source
		}
		keep := ""
		if f.IfAbsent {
			keep = " (only if absent)"
		}
		fmt.Fprintf(&b, "write %s %04o %s%s\n", f.Path, f.Mode, what, keep)
	}
	for _, c := range p.Commands {
		fmt.Fprintf(&b, "run %s\n", strings.Join(c, " "))
	}
	for _, r := range p.Remove {
		fmt.Fprintf(&b, "remove %s\n", r)
	}
	for _, c := range p.After {
		fmt.Fprintf(&b, "run %s\n", strings.Join(c, " "))
	}
	return b.String()
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

var systemdTmpl = template.Must(template.New("unit").Parse(`# Written by dnstun install; dnstun uninstall removes it.
[Unit]
Description=dnstun packet-level DNS filter
Documentation=https://github.com/dnstun/dnstun
After=network-pre.target systemd-resolved.service NetworkManager.service
Wants=network-pre.target

[Service]
Type=simple
# Sweep what a crashed instance left, before start and after every stop.
ExecStartPre={{.Binary}} cleanup --state-dir {{.RunDir}}
ExecStart={{.Binary}} run --config {{.Config}}
ExecStopPost={{.Binary}} cleanup --state-dir {{.RunDir}}
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=1
# --exit-when-disabled exits {{.ExitDisabled}} while disabled: a clean end,
# not restarted.
SuccessExitStatus={{.ExitDisabled}}
RestartPreventExitStatus={{.ExitDisabled}}
# SIGTERM starts the clean stop (in-flight queries answered, steering
# withdrawn, TUN closed); SIGKILL only after this.
TimeoutStopSec={{.StopTimeoutSec}}
KillMode=mixed
RuntimeDirectory=dnstun
RuntimeDirectoryMode=0755
StateDirectory=dnstun

# Hardening. dnstun runs as root; after set-up it drops to what its
# options need (daemon/privs.go; /proc/PID/status shows it). The bounding
# set is what any configuration may keep, plus what set-up needs:
#   CAP_NET_ADMIN        TUN, addresses, routes, policy rules, nftables,
#                        per-device sysctls, SO_MARK on upstream sockets
#   CAP_NET_BIND_SERVICE flow mode on port 53; a metrics port below 1024
#   CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH
#                        attribution: other users' /proc/PID/fd and exe
#   CAP_DAC_OVERRIDE     reconnecting to a dnstap collector's socket
#   CAP_CHOWN            the control socket's group (set-up only)
# Without CAP_SETPCAP dnstun cannot shrink this set further: it stays as
# listed here, and NoNewPrivileges= keeps what dnstun runs (nft,
# resolvectl) within what dnstun kept.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_BIND_SERVICE CAP_SYS_PTRACE CAP_DAC_READ_SEARCH CAP_DAC_OVERRIDE CAP_CHOWN
NoNewPrivileges=yes
# The whole file system read-only but the run and state directories; a
# query log or dnstap file elsewhere needs ReadWritePaths= in a drop-in.
ProtectSystem=strict
ReadWritePaths=-{{.RunDir}}
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
# /dev/net/tun only (PrivateDevices= would hide it).
DevicePolicy=closed
DeviceAllow=/dev/net/tun rw
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# Not set, each for a reason: ProtectKernelTunables= (dnstun writes the
# TUN's sysctls under /proc/sys/net), ProtectProc= and ProcSubset=
# (attribution reads other processes' /proc/PID; sysctls), PrivateNetwork=
# and IPAddressDeny= (it steers the host's DNS to any upstream),
# PrivateUsers= (it needs capabilities in the host's namespaces).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
# @system-service without @privileged and @resources, but for capset (the
# drop) and @chown (the control socket's group); a call outside fails with
# EPERM rather than killing dnstun.
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallFilter=capset @chown
SystemCallErrorNumber=EPERM
UMask=0027

[Install]
WantedBy=multi-user.target
`))

var launchdTmpl = template.Must(template.New("plist").Funcs(template.FuncMap{"x": xmlEscape}).Parse(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by dnstun install; dnstun uninstall removes it. Only the keys
     dnstun needs: it runs as root (launchd's default for a daemon; the utun,
     routes and DNS settings need it; macOS has no capabilities to drop),
     with no sockets, environment or resource keys of its own. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{x .Label}}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{x .Binary}}</string>
		<string>run</string>
		<string>--config</string>
		<string>{{x .Config}}</string>
	</array>
	<!-- Started at boot and at bootstrap. -->
	<key>RunAtLoad</key>
	<true/>
	<!-- Restarted after a crash; a clean exit (stop, or disabled with
	     exit_when_disabled, status 0) stays down. -->
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>5</integer>
	<!-- SIGTERM starts the clean stop; SIGKILL only after this. -->
	<key>ExitTimeOut</key>
	<integer>{{.StopTimeoutSec}}</integer>
	<!-- dnstun logs to stderr; launchd has no journal to catch it. -->
	<key>StandardErrorPath</key>
	<string>{{x .LogFile}}</string>
	<key>StandardOutPath</key>
	<string>{{x .LogFile}}</string>
</dict>
</plist>
`))

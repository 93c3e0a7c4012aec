// SPDX-License-Identifier: MIT

package daemon

import "testing"

func TestParseCapStatus(t *testing.T) {
	status := "Name:\tdnstun\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t0000000000081004\nCapEff:\t0000000000081004\nCapBnd:\t0000000000081004\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\nSeccomp:\t0\n"
	got, err := parseCapStatus(status)
	want := threadCaps{Prm: 0x81004, Eff: 0x81004, Bnd: 0x81004, NoNewPrivs: true}
	if err != nil || got != want {
		t.Errorf("got %+v, %v; want %+v", got, err, want)
	}
	if _, err := parseCapStatus("Name:\tx\nCapEff:\t0\n"); err == nil {
		t.Error("a status without the capability lines accepted")
	}
	if _, err := parseCapStatus("CapInh:\tzz\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\nNoNewPrivs:\t0\n"); err == nil {
		t.Error("a bad number accepted")
	}
}

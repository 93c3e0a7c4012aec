// SPDX-License-Identifier: MIT

//go:build !linux

package tun

// thinWrites returns dev as it is: the thin writer (thin_linux.go) is for
// Linux's virtio-net headers and GRO; darwin's Write has neither.
func thinWrites(dev Device, name string, cfg Config) Device {
	return dev
}

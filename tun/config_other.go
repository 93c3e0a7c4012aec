// SPDX-License-Identifier: MIT

//go:build !linux && !darwin

package tun

func configure(name string, cfg Config) error {
	return ErrUnsupported
}

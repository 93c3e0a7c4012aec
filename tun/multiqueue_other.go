// SPDX-License-Identifier: MIT

//go:build !linux

package tun

import "fmt"

// MaxQueues is the most queues a TUN may have (Config.Queues): darwin's
// utun has one.
const MaxQueues = 1

// queuesHint ends the error for a Config.Queues out of range.
const queuesHint = ": only Linux's TUN has several queues (IFF_MULTI_QUEUE); darwin's utun has one"

// openQueues is never reached: Open refuses Queues above MaxQueues.
func openQueues(cfg Config) (Device, string, error) {
	return nil, "", fmt.Errorf("tun %q: %d queues%s: %w", cfg.Name, cfg.Queues, queuesHint, ErrUnsupported)
}

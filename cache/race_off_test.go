// SPDX-License-Identifier: MIT

//go:build !race

package cache_test

const raceEnabled = false

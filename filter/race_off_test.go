// SPDX-License-Identifier: MIT

//go:build !race

package filter

const raceEnabled = false

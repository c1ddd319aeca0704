// SPDX-License-Identifier: GPL-3.0-only

//go:build !race

package h3

const raceEnabled = false

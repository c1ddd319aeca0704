#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-only
#
# Fails when the committed bpf2go output in xdp/ (lb_bpfel.{go,o},
# reflect_bpfel.{go,o}) does not match what `go generate ./xdp/...` makes
# from bpf/*.c and bpf/*.h now. Regenerates into a scratch copy of the
# module, so the work tree is never touched.
#
# Usage (from anywhere in the repo): bpf/check-fresh.sh
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Only what generation needs: the module files, the BPF sources and the
# xdp package (bpf2go runs in its directory and writes next to gen.go).
cp "$root/go.mod" "$root/go.sum" "$tmp/"
mkdir -p "$tmp/bpf" "$tmp/xdp"
cp "$root"/bpf/*.c "$root"/bpf/*.h "$tmp/bpf/"
cp "$root/xdp/gen.go" "$tmp/xdp/"

(cd "$tmp" && go generate ./xdp/ >/dev/null)

status=0
for f in lb_bpfel.go lb_bpfel.o reflect_bpfel.go reflect_bpfel.o; do
	if ! cmp -s "$root/xdp/$f" "$tmp/xdp/$f"; then
		echo "stale: xdp/$f (run: go generate ./xdp/...)" >&2
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "bpf: generated files are fresh"
exit "$status"

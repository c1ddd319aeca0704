// SPDX-License-Identifier: GPL-3.0-only

package xdp

// Regenerate the committed BPF objects and their Go bindings with
// `go generate ./xdp/...` (needs clang, llvm and libbpf-dev);
// bpf/check-fresh.sh verifies the committed files match the sources.
//
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" lb ../bpf/lb.c
//go:generate go tool bpf2go -tags linux -target bpfel -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" reflect ../bpf/reflect.c

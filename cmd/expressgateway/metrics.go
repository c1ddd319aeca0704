// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/expressgateway/expressgateway/engine"
	"github.com/expressgateway/expressgateway/lb"
	"github.com/expressgateway/expressgateway/xdp"
)

// The admin listener's /metrics carries a HELP and a TYPE line for every
// family. VictoriaMetrics/metrics writes the TYPE lines (with
// metrics.ExposeMetadata) but has no HELP text to give, so the scrape is
// written to a buffer and each "# HELP family" line gets the family's text:
// the packages' MetricsHelp for ours, runtimeHelp for the library's Go
// runtime and process families. METRICS.md says the same words; a test
// scrapes the binary and checks both ways.

// runtimeHelp is the HELP text of the Go runtime and process families the
// library writes (metrics.WriteProcessMetrics, metrics.WriteFDMetrics).
var runtimeHelp = map[string]string{
	"go_sched_latencies_seconds":             "time goroutines spent runnable before they ran.",
	"go_mutex_wait_seconds_total":            "time goroutines spent blocked on a mutex.",
	"go_gc_mark_assist_cpu_seconds_total":    "CPU time goroutines spent helping the garbage collector mark.",
	"go_gc_cpu_seconds_total":                "CPU time the garbage collector spent.",
	"go_gc_pauses_seconds":                   "stop-the-world pauses of the garbage collector.",
	"go_scavenge_cpu_seconds_total":          "CPU time spent returning unused memory to the OS.",
	"go_memlimit_bytes":                      "the Go runtime's soft memory limit (GOMEMLIMIT).",
	"go_memstats_alloc_bytes":                "bytes of allocated heap objects.",
	"go_memstats_alloc_bytes_total":          "bytes allocated for heap objects since the process started.",
	"go_memstats_buck_hash_sys_bytes":        "bytes of the profiling bucket hash table.",
	"go_memstats_frees_total":                "heap objects freed since the process started.",
	"go_memstats_gc_cpu_fraction":            "fraction of the CPU time the garbage collector used since the process started.",
	"go_memstats_gc_sys_bytes":               "bytes of garbage collection metadata.",
	"go_memstats_heap_alloc_bytes":           "bytes of allocated heap objects, as go_memstats_alloc_bytes.",
	"go_memstats_heap_idle_bytes":            "bytes in idle heap spans.",
	"go_memstats_heap_inuse_bytes":           "bytes in in-use heap spans.",
	"go_memstats_heap_objects":               "allocated heap objects.",
	"go_memstats_heap_released_bytes":        "bytes of heap memory returned to the OS.",
	"go_memstats_heap_sys_bytes":             "bytes of heap memory obtained from the OS.",
	"go_memstats_last_gc_time_seconds":       "when the last garbage collection finished, in seconds since the Unix epoch.",
	"go_memstats_lookups_total":              "pointer lookups the runtime performed.",
	"go_memstats_mallocs_total":              "heap objects allocated since the process started.",
	"go_memstats_mcache_inuse_bytes":         "bytes of allocated mcache structures.",
	"go_memstats_mcache_sys_bytes":           "bytes of memory obtained from the OS for mcache structures.",
	"go_memstats_mspan_inuse_bytes":          "bytes of allocated mspan structures.",
	"go_memstats_mspan_sys_bytes":            "bytes of memory obtained from the OS for mspan structures.",
	"go_memstats_next_gc_bytes":              "heap size at which the next garbage collection starts.",
	"go_memstats_other_sys_bytes":            "bytes of other off-heap runtime allocations.",
	"go_memstats_stack_inuse_bytes":          "bytes in stack spans.",
	"go_memstats_stack_sys_bytes":            "bytes of stack memory obtained from the OS.",
	"go_memstats_sys_bytes":                  "bytes of memory obtained from the OS in all.",
	"go_gc_duration_seconds":                 "stop-the-world pauses of the last 256 garbage collections, with their sum and count since the process started.",
	"go_gomaxprocs":                          "OS threads that may run Go code at once (GOMAXPROCS).",
	"go_goroutines":                          "goroutines that exist.",
	"go_threads":                             "OS threads the Go runtime created.",
	"go_info":                                "1, with the Go version the binary was built with in label version.",
	"go_info_ext":                            "1, with the compiler, GOARCH, GOOS and GOROOT the binary was built with in labels.",
	"process_cpu_seconds_system_total":       "CPU time the process spent in the kernel.",
	"process_cpu_seconds_total":              "CPU time the process spent, user and kernel.",
	"process_cpu_seconds_user_total":         "CPU time the process spent in user space.",
	"process_major_pagefaults_total":         "page faults that needed a disk read.",
	"process_minor_pagefaults_total":         "page faults served without a disk read.",
	"process_num_threads":                    "OS threads in the process.",
	"process_resident_memory_bytes":          "resident set size (RSS).",
	"process_start_time_seconds":             "when the process started, in seconds since the Unix epoch.",
	"process_virtual_memory_bytes":           "virtual memory size.",
	"process_virtual_memory_peak_bytes":      "peak virtual memory size.",
	"process_resident_memory_peak_bytes":     "peak resident set size.",
	"process_resident_memory_anon_bytes":     "resident anonymous memory (heap, stacks).",
	"process_resident_memory_file_bytes":     "resident file-backed memory (the binary, mapped files).",
	"process_resident_memory_shared_bytes":   "resident shared memory.",
	"process_io_read_bytes_total":            "bytes the process read through syscalls (rchar).",
	"process_io_written_bytes_total":         "bytes the process wrote through syscalls (wchar).",
	"process_io_read_syscalls_total":         "read syscalls.",
	"process_io_write_syscalls_total":        "write syscalls.",
	"process_io_storage_read_bytes_total":    "bytes the process caused to be read from storage.",
	"process_io_storage_written_bytes_total": "bytes the process caused to be written to storage.",
	"process_max_fds":                        "the limit on open file descriptors (RLIMIT_NOFILE).",
	"process_open_fds":                       "open file descriptors.",

	"process_pressure_cpu_waiting_seconds_total":    "time some task of the process's cgroup waited for CPU (PSI some) since the process started.",
	"process_pressure_cpu_stalled_seconds_total":    "time every task of the process's cgroup waited for CPU at once (PSI full) since the process started.",
	"process_pressure_io_waiting_seconds_total":     "time some task of the process's cgroup waited for I/O (PSI some) since the process started.",
	"process_pressure_io_stalled_seconds_total":     "time every task of the process's cgroup waited for I/O at once (PSI full) since the process started.",
	"process_pressure_memory_waiting_seconds_total": "time some task of the process's cgroup waited for memory (PSI some) since the process started.",
	"process_pressure_memory_stalled_seconds_total": "time every task of the process's cgroup waited for memory at once (PSI full) since the process started.",
	"process_cgroup_cpu_throttled_seconds_total":    "time the process's cgroup was throttled by its CPU quota since the process started.",
}

// runtimeLeftOut are library families whose names break the Prometheus
// naming rules (a counter without _total, a gauge ending in _count) that
// promtool checks; none is worth an exception: the gateway makes no cgo
// calls and forces no collections, and go_gomaxprocs says how many CPUs the
// runtime uses.
var runtimeLeftOut = map[string]bool{
	"go_cgo_calls_count": true,
	"go_gc_forced_count": true,
	"go_cpu_count":       true,
}

// runtimeRetyped are library families typed gauge that only ever grow
// (read from /proc/self/io): they are counters, as their _total says.
var runtimeRetyped = map[string]string{
	"process_io_read_bytes_total":            "counter",
	"process_io_written_bytes_total":         "counter",
	"process_io_read_syscalls_total":         "counter",
	"process_io_write_syscalls_total":        "counter",
	"process_io_storage_read_bytes_total":    "counter",
	"process_io_storage_written_bytes_total": "counter",
}

// haHelp is the HELP text of the control-plane families of an HA node
// (ha.go).
var haHelp = map[string]string{
	"expressgateway_control_plane_connected":           "1 while the etcd control plane answers (a quorum read every second), 0 while it is unreachable.",
	"expressgateway_control_plane_errors_total":        "control-plane requests that failed, by op.",
	"expressgateway_shared_health_peer_down_endpoints": "endpoints this node's own checks pass but routes around because another live node reports them down.",
}

// metricsHelp is the HELP text of every family the binary can export.
func metricsHelp() map[string]string {
	help := map[string]string{}
	for _, m := range []map[string]string{engine.MetricsHelp(), lb.MetricsHelp(), xdp.MetricsHelp(), haHelp, runtimeHelp} {
		for k, v := range m {
			help[k] = v
		}
	}
	return help
}

// writeMetrics writes set, then the Go runtime and process families, in
// the Prometheus text format with a HELP and a TYPE line per family.
// Call metrics.ExposeMetadata(true) first.
func writeMetrics(w io.Writer, set *metrics.Set, help map[string]string) error {
	var raw bytes.Buffer
	set.WritePrometheus(&raw)
	metrics.WriteProcessMetrics(&raw)
	metrics.WriteFDMetrics(&raw)

	out := bufio.NewWriterSize(w, 64<<10)
	skip := false
	for line := range strings.Lines(raw.String()) {
		if fam, ok := strings.CutPrefix(line, "# HELP "); ok {
			fam = strings.TrimSpace(fam)
			if skip = runtimeLeftOut[fam]; skip {
				continue
			}
			if h := help[fam]; h != "" {
				line = "# HELP " + fam + " " + escapeHelp(h) + "\n"
			}
		} else if skip {
			continue // the TYPE line and samples of a family left out
		} else if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if fam, _, ok := strings.Cut(strings.TrimSpace(rest), " "); ok && runtimeRetyped[fam] != "" {
				line = "# TYPE " + fam + " " + runtimeRetyped[fam] + "\n"
			}
		}
		if _, err := out.WriteString(line); err != nil {
			return err
		}
	}
	return out.Flush()
}

// escapeHelp escapes a HELP text as the text format asks: backslash and
// line feed.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

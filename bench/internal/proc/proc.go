// SPDX-License-Identifier: GPL-3.0-only

// Package proc reads CPU time and memory of a process tree from /proc, and
// describes the machine a run happens on.
package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. Linux
// fixes it at 100 on every architecture we run on (getconf CLK_TCK).
const ClockTicks = 100

// ErrNoProcess is returned when the process is gone.
var ErrNoProcess = errors.New("no such process")

// Stat is the part of /proc/PID/stat the harness needs.
type Stat struct {
	PID   int
	PPID  int
	Utime uint64 // clock ticks in user mode
	Stime uint64 // clock ticks in kernel mode
}

// CPU returns utime+stime as a duration.
func (s Stat) CPU() time.Duration {
	return time.Duration(s.Utime+s.Stime) * time.Second / ClockTicks
}

// ParseStat parses the content of /proc/PID/stat. The command name (field 2)
// may contain spaces and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return s, fmt.Errorf("parse stat: no command field")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("parse stat: pid: %w", err)
	}
	s.PID = pid
	// Fields after ')' start at field 3 (state).
	rest := strings.Fields(string(b[end+1:]))
	const utimeIdx, stimeIdx, ppidIdx = 14 - 3, 15 - 3, 4 - 3
	if len(rest) <= stimeIdx {
		return s, fmt.Errorf("parse stat: %d fields", len(rest)+2)
	}
	if s.PPID, err = strconv.Atoi(rest[ppidIdx]); err != nil {
		return s, fmt.Errorf("parse stat: ppid: %w", err)
	}
	if s.Utime, err = strconv.ParseUint(rest[utimeIdx], 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: utime: %w", err)
	}
	if s.Stime, err = strconv.ParseUint(rest[stimeIdx], 10, 64); err != nil {
		return s, fmt.Errorf("parse stat: stime: %w", err)
	}
	return s, nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Stat{}, ErrNoProcess
		}
		return Stat{}, err
	}
	return ParseStat(b)
}

// Tree returns pid and all its living descendants (nginx runs a master and
// workers; the figures of a target are the sum over its tree).
func Tree(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pid}
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadStat(p)
		if err != nil {
			continue
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// TreeCPU returns utime+stime summed over pid and its living descendants.
func TreeCPU(pid int) (time.Duration, error) {
	var total time.Duration
	for i, p := range Tree(pid) {
		st, err := ReadStat(p)
		if err != nil {
			if i == 0 {
				return 0, err
			}
			continue
		}
		total += st.CPU()
	}
	return total, nil
}

// Memory is the part of /proc/PID/status the harness needs, in bytes.
type Memory struct {
	RSS  uint64 // VmRSS: resident now
	Peak uint64 // VmHWM: peak resident since the process started
}

// ParseStatus parses VmRSS and VmHWM out of /proc/PID/status.
func ParseStatus(b []byte) (Memory, error) {
	var m Memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		var dst *uint64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &m.RSS
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &m.Peak
		default:
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return m, fmt.Errorf("parse status: %q", line)
		}
		kb, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parse status: %w", err)
		}
		*dst = kb * 1024
		seen++
	}
	if seen < 2 {
		return m, fmt.Errorf("parse status: VmRSS/VmHWM missing")
	}
	return m, nil
}

// ReadMemory reads /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Memory{}, ErrNoProcess
		}
		return Memory{}, err
	}
	return ParseStatus(b)
}

// TreeMemory sums Memory over pid and its living descendants.
func TreeMemory(pid int) (Memory, error) {
	var total Memory
	for i, p := range Tree(pid) {
		m, err := ReadMemory(p)
		if err != nil {
			if i == 0 {
				return total, err
			}
			continue
		}
		total.RSS += m.RSS
		total.Peak += m.Peak
	}
	return total, nil
}

// ParseSystemBusy returns the busy CPU time of all CPUs (everything but
// idle and iowait) from the first line of /proc/stat.
func ParseSystemBusy(b []byte) (time.Duration, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: %q", line)
	}
	var busy uint64
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		// Fields: user nice system idle iowait irq softirq steal guest guest_nice.
		// guest time is already counted in user; skip idle, iowait and guest.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / ClockTicks, nil
}

// SystemBusy reads the busy CPU time of the whole machine.
func SystemBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return ParseSystemBusy(b)
}

// LoadAvg returns the 1, 5 and 15 minute load averages.
func LoadAvg() [3]float64 {
	var l [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return l
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		l[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return l
}

// SPDX-License-Identifier: GPL-3.0-only

package proc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
)

const busyEnv = "BENCH_PROC_TEST_BUSY"

// TestMain turns the test binary into a busy child when busyEnv is set: it
// burns about 500ms of CPU (by its own getrusage), says so, and waits for
// stdin to close, so that the parent can read its /proc figures while it lives.
func TestMain(m *testing.M) {
	if os.Getenv(busyEnv) != "" {
		burn(500 * time.Millisecond)
		fmt.Println("done")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func burn(cpu time.Duration) {
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for range 1_000_000 {
			x++
		}
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= cpu {
			return
		}
	}
}

func TestCPUAccountingOfBusyChild(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), busyEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	before, err := TreeCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "done\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	after, err := TreeCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// The child burned 500ms by getrusage; /proc reports the same clock in
	// 10ms ticks, plus the runtime's start-up and GC threads.
	if used := after - before; used < 400*time.Millisecond || used > 900*time.Millisecond {
		t.Fatalf("child used %v of CPU by /proc, want about 500ms", used)
	}
	if tree := Tree(os.Getpid()); !slices.Contains(tree, cmd.Process.Pid) || tree[0] != os.Getpid() {
		t.Fatalf("Tree(self) = %v, want self first and the child %d in it", tree, cmd.Process.Pid)
	}
	m, err := TreeMemory(cmd.Process.Pid)
	if err != nil || m.RSS == 0 || m.Peak < m.RSS {
		t.Fatalf("memory of child: %+v, %v", m, err)
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses, as a process may choose.
	line := "4242 (we ird) (name) S 17 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 99 1000 200 18446744073709551615\n"
	st, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != 4242 || st.PPID != 17 || st.Utime != 250 || st.Stime != 75 {
		t.Fatalf("got %+v", st)
	}
	if st.CPU() != 3250*time.Millisecond {
		t.Fatalf("CPU() = %v", st.CPU())
	}
	for i := range len(line) - 60 {
		if _, err := ParseStat([]byte(line[:i])); err == nil {
			t.Fatalf("truncated stat %q parsed", line[:i])
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    9000 kB\nVmRSS:\t    8000 kB\nThreads:\t1\n"
	m, err := ParseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 8000*1024 || m.Peak != 9000*1024 {
		t.Fatalf("got %+v", m)
	}
	if _, err := ParseStatus([]byte("Name:\tkthreadd\n")); err == nil {
		t.Fatal("status without memory parsed")
	}
}

func TestReadSelf(t *testing.T) {
	if _, err := ReadStat(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStat(1 << 30); err != ErrNoProcess {
		t.Fatalf("missing process: %v", err)
	}
	m := Describe()
	if m.NProc < 1 || m.Kernel == "" {
		t.Fatalf("machine: %+v", m)
	}
}

func TestParseSystemBusy(t *testing.T) {
	stat := "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n"
	got, err := ParseSystemBusy([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal = 161 ticks.
	if got != 1610*time.Millisecond {
		t.Fatalf("got %v", got)
	}
	if _, err := SystemBusy(); err != nil {
		t.Fatal(err)
	}
}

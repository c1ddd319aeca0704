// SPDX-License-Identifier: GPL-3.0-only

package loadgen

import (
	"testing"
	"time"
)

func TestParseGhz(t *testing.T) {
	out := `{"count":1109,"total":3000000000,"rps":369.6,"slowest":611000000,
"latencyDistribution":[{"percentage":50,"latency":108000000},{"percentage":90,"latency":300000000},{"percentage":99,"latency":504000000}],
"statusCodeDistribution":{"OK":1063,"Canceled":45,"Unavailable":1},
"errorDistribution":{"rpc error: code = Canceled desc = grpc: the client connection is closing":45,"rpc error: code = Unavailable desc = upstream connect error":1}}`
	r, err := ParseGhz("ghz says\n" + out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1064 || r.Duration != 3*time.Second || r.P50 != 108*time.Millisecond || r.P99 != 504*time.Millisecond {
		t.Fatalf("%+v", r)
	}
	if r.Non2xx != 0 || r.ConnectErrors != 1 {
		t.Fatalf("errors: non-OK %d, unavailable %d; want 0 (teardown) and 1", r.Non2xx, r.ConnectErrors)
	}
	if _, err := ParseGhz("no report"); err == nil {
		t.Fatal("no report accepted")
	}
}

func TestGhzData(t *testing.T) {
	args := GhzArgs("ghz", Options{Duration: 3 * time.Second, Connections: 64}, "127.0.0.1:1", "pkg.S.M", "{}", 6)
	want := []string{"ghz", "--insecure", "--call", "pkg.S.M", "-d", "{}", "-c", "64", "--connections", "6", "-z", "3s", "-O", "json", "--skipFirst", "0", "127.0.0.1:1"}
	if len(args) != len(want) {
		t.Fatalf("%q", args)
	}
	for i := range want {
		if args[i] != want[i] {
			t.Fatalf("%q, want %q", args, want)
		}
	}
}

// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"reflect"
	"strings"
	"testing"
)

func TestCarryKeepsRestartKeys(t *testing.T) {
	cur := mustParse(t, "a.toml", minimalTOML)

	// Only reloadable changes: next is applied as it is.
	next := mustParse(t, "b.toml", strings.Replace(minimalTOML, `weight = 2`, `weight = 3`, 1)+"\n[engine]\nmax_connections = 7\n")
	applied, restart, err := Carry(cur, next)
	if err != nil || applied != next || restart != nil {
		t.Fatalf("reloadable change: %v %v %v", applied == next, restart, err)
	}

	// Restart keys keep their running values and are reported in order.
	next = mustParse(t, "c.toml", strings.Replace(minimalTOML, `listen = "127.0.0.1:9901"`, `listen = "127.0.0.1:9911"`, 1)+`
[engine]
event_loops = 3
max_connections = 7
[process]
pid_file = "/run/eg.pid"
upgrade_timeout = "3s"
`)
	applied, restart, err = Carry(cur, next)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"admin.listen", "engine.event_loops", "process.pid_file"}; !reflect.DeepEqual(restart, want) {
		t.Fatalf("needs restart %v, want %v", restart, want)
	}
	c := applied.Config
	if c.Admin.Listen != "127.0.0.1:9901" || c.Engine.EventLoops != 0 || c.Process.PIDFile != "" {
		t.Fatalf("restart keys not carried: %+v %+v %+v", c.Admin, c.Engine, c.Process)
	}
	if c.Engine.MaxConnections != 7 || c.Process.UpgradeTimeout.Std().Seconds() != 3 {
		t.Fatalf("reloadable keys lost: %+v %+v", c.Engine, c.Process)
	}
	if applied.Cluster("app") == nil || applied.Listener("web") == nil || &applied.Config == &next.Config {
		t.Fatal("applied snapshot's lookups missing")
	}
	if next.Config.Admin.Listen != "127.0.0.1:9911" || cur.Config.Admin.Listen != "127.0.0.1:9901" {
		t.Fatal("Carry modified its inputs")
	}
	if len(RestartKeys()) != len(restartKeys) || RestartKeys()[0] != "admin.listen" {
		t.Fatalf("RestartKeys %v", RestartKeys())
	}
}

func TestCarryReportsAConflictWithTheRunningAdminAddress(t *testing.T) {
	cur := mustParse(t, "a.toml", minimalTOML)
	// The new file moves the admin listener and puts a listener where it
	// was: valid alone, but the admin listener cannot move without a restart.
	next := mustParse(t, "b.toml", strings.Replace(minimalTOML, `listen = "127.0.0.1:9901"`, `listen = "127.0.0.1:9911"`, 1)+`
[[listeners]]
name = "new"
listen = "127.0.0.1:9901"
[[listeners.routes]]
cluster = "app"
`)
	_, restart, err := Carry(cur, next)
	ps := Problems(err)
	if len(ps) != 1 || ps[0].Key != "listeners[1].listen" || !strings.Contains(ps[0].Msg, "admin.listen") {
		t.Fatalf("problems %v (err %v)", ps, err)
	}
	if !reflect.DeepEqual(restart, []string{"admin.listen"}) {
		t.Fatalf("needs restart %v", restart)
	}
}

func TestProcessSection(t *testing.T) {
	s := mustParse(t, "a.toml", minimalTOML)
	if p := s.Config.Process; p.PIDFile != "" || !p.WatchConfig || p.UpgradeTimeout.Std().Seconds() != 10 {
		t.Fatalf("defaults %+v", p)
	}
	_, err := Parse("b.toml", []byte(minimalTOML+"[process]\nupgrade_timeout = \"0s\"\npid_file = \"a\\nb\"\n"))
	var keys []string
	for _, p := range Problems(err) {
		keys = append(keys, p.Key)
	}
	if !reflect.DeepEqual(keys, []string{"process.pid_file", "process.upgrade_timeout"}) {
		t.Fatalf("problems %v", Problems(err))
	}
}

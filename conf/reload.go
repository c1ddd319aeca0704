// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"reflect"
)

// restartKeys are the keys a running process cannot change: what they
// size or bind is built once at start. A reload keeps their running value
// and reports them; a restart or a USR2 upgrade applies them.
var restartKeys = []struct {
	key   string
	field func(*Config) any // a pointer to the field
}{
	{"admin.listen", func(c *Config) any { return &c.Admin.Listen }},
	{"admin.pprof", func(c *Config) any { return &c.Admin.Pprof }},
	{"admin.token_file", func(c *Config) any { return &c.Admin.TokenFile }},
	{"log.access_log_file", func(c *Config) any { return &c.Log.AccessLogFile }},
	{"log.access_log_buffer", func(c *Config) any { return &c.Log.AccessLogBuffer }},
	{"engine.event_loops", func(c *Config) any { return &c.Engine.EventLoops }},
	{"engine.ring_size", func(c *Config) any { return &c.Engine.RingSize }},
	{"process.pid_file", func(c *Config) any { return &c.Process.PIDFile }},
	{"demo.enabled", func(c *Config) any { return &c.Demo.Enabled }},
	{"demo.listen", func(c *Config) any { return &c.Demo.Listen }},
	{"xdp.enabled", func(c *Config) any { return &c.XDP.Enabled }},
	{"xdp.interface", func(c *Config) any { return &c.XDP.Interface }},
	{"xdp.attach_mode", func(c *Config) any { return &c.XDP.AttachMode }},
	{"xdp.conntrack_size", func(c *Config) any { return &c.XDP.ConntrackSize }},
	{"control_plane", func(c *Config) any { return &c.ControlPlane }},
}

// RestartKeys lists, in schema order, the keys a reload does not apply:
// admin.listen, admin.pprof, admin.token_file, log.access_log_file,
// log.access_log_buffer, engine.event_loops, engine.ring_size, process.pid_file,
// demo.enabled, demo.listen, xdp.enabled, xdp.interface, xdp.attach_mode,
// xdp.conntrack_size and the whole [control_plane] section. Every other key, listeners included, takes effect on
// reload.
func RestartKeys() []string {
	out := make([]string, len(restartKeys))
	for i, k := range restartKeys {
		out[i] = k.key
	}
	return out
}

// Carry prepares next, freshly loaded, to replace cur in a running
// process: the keys of RestartKeys keep their values from cur, and the ones
// whose value in next differs are returned as needsRestart. The snapshot to
// apply is returned; next and cur are not modified. Because a carried
// address (admin.listen, demo.listen) may now collide with a listener of
// next, address conflicts are checked again: on a conflict Carry returns a
// *ValidationError and no snapshot.
func Carry(cur, next *Snapshot) (applied *Snapshot, needsRestart []string, err error) {
	cfg := next.Config // a copy; its slices are shared, read-only, with next
	for _, k := range restartKeys {
		dst := reflect.ValueOf(k.field(&cfg)).Elem()
		src := reflect.ValueOf(k.field(&cur.Config)).Elem()
		if !reflect.DeepEqual(dst.Interface(), src.Interface()) {
			needsRestart = append(needsRestart, k.key)
			dst.Set(src)
		}
	}
	if len(needsRestart) == 0 {
		return next, nil, nil
	}
	v := &validator{file: next.Source}
	v.addressConflicts(&cfg)
	if len(v.problems) > 0 {
		sortProblems(v.problems)
		return nil, needsRestart, &ValidationError{Problems: v.problems}
	}
	return newSnapshot(cfg, next.Source, next.LoadedAt), needsRestart, nil
}

// SPDX-License-Identifier: GPL-3.0-only

package conf

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// NodeSections are the tables a node file may hold when its
// control_plane.backend is "etcd": where the store is and who this node
// is, and the two sections that differ from node to node (the admin
// listener's address, the log level). Everything else comes from the store.
var NodeSections = []string{"control_plane", "admin", "log"}

// ReadControlPlane reads only the [control_plane] section of the TOML in
// data, with defaults applied and validated: what `run` and `config push`
// need to choose the backend. Problems (TOML syntax included) come as a
// *ValidationError naming name.
func ReadControlPlane(name string, data []byte) (ControlPlane, error) {
	raw, err := parseTOML(name, data)
	if err != nil {
		return ControlPlane{}, err
	}
	return controlPlaneOf(name, raw)
}

func controlPlaneOf(name string, raw map[string]any) (ControlPlane, error) {
	var cp ControlPlane
	d := &decoder{file: name, present: make(map[string]bool)}
	switch sec := raw["control_plane"].(type) {
	case nil:
		cp.setDefaults()
	case map[string]any:
		d.decodeStruct("control_plane", sec, reflect.ValueOf(&cp).Elem())
	default:
		cp.setDefaults()
		d.addf("control_plane", "expected a table, got %s", tomlType(sec))
	}
	v := &validator{file: name, present: d.present}
	v.controlPlane(&cp)
	problems := mergeProblems(d.problems, v.problems)
	sortProblems(problems)
	if len(problems) > 0 {
		return cp, &ValidationError{Problems: problems}
	}
	return cp, nil
}

// CheckNode validates a node file whose backend is "etcd": only the
// NodeSections may appear, and each is checked as in a whole config.
func CheckNode(name string, data []byte) (ControlPlane, error) {
	raw, err := parseTOML(name, data)
	if err != nil {
		return ControlPlane{}, err
	}
	var problems []Problem
	cp, err := controlPlaneOf(name, raw)
	var ve *ValidationError
	if errors.As(err, &ve) {
		problems = append(problems, ve.Problems...)
	}
	problems = append(problems, nodeOnly(name, raw)...)
	d := &decoder{file: name, present: make(map[string]bool)}
	var cfg Config
	for _, sec := range []struct {
		key string
		v   any
	}{{"admin", &cfg.Admin}, {"log", &cfg.Log}} {
		m, _ := raw[sec.key].(map[string]any)
		if _, ok := raw[sec.key]; ok && m == nil {
			d.addf(sec.key, "expected a table, got %s", tomlType(raw[sec.key]))
		}
		d.decodeStruct(sec.key, m, reflect.ValueOf(sec.v).Elem())
	}
	v := &validator{file: name, present: d.present}
	v.admin(&cfg.Admin)
	v.log(&cfg.Log)
	problems = append(problems, mergeProblems(d.problems, v.problems)...)
	sortProblems(problems)
	if len(problems) > 0 {
		return cp, &ValidationError{Problems: problems}
	}
	return cp, nil
}

// nodeOnly reports every top-level key of a node file outside NodeSections.
func nodeOnly(name string, raw map[string]any) []Problem {
	var out []Problem
	for k := range raw {
		if !slices.Contains(NodeSections, k) {
			out = append(out, Problem{File: name, Key: k, Msg: fmt.Sprintf(
				"not allowed in a node file whose control_plane.backend is \"etcd\" (only %s): the rest of the config comes from etcd; store it with `expressgateway config push`",
				quoteList(NodeSections))})
		}
	}
	return out
}

// ParseLayered parses data, the document the store holds (named name), with
// the node file (named nodeName) laid over it: the document's own
// [control_plane] is dropped for the node's, and the keys of the node's
// [admin] and [log] replace the document's. The node file may hold only the
// NodeSections. Problems in the node's keys name nodeName, the others
// name. The snapshot's Source is name.
func ParseLayered(name string, data []byte, nodeName string, node []byte) (*Snapshot, error) {
	nodeRaw, err := parseTOML(nodeName, node)
	if err != nil {
		return nil, err
	}
	if ps := nodeOnly(nodeName, nodeRaw); len(ps) > 0 {
		sortProblems(ps)
		return nil, &ValidationError{Problems: ps}
	}
	raw, err := parseTOML(name, data)
	if err != nil {
		return nil, err
	}
	delete(raw, "control_plane")
	fromNode := map[string]bool{}
	for k, v := range nodeRaw {
		flattenKeys(k, v, fromNode)
		if k == "control_plane" {
			raw[k] = v
			continue
		}
		raw[k] = mergeTables(raw[k], v)
	}
	return parseRaw(name, raw, func(key string) string {
		if strings.HasPrefix(key, "control_plane") || fromNode[strings.SplitN(key, "[", 2)[0]] {
			return nodeName
		}
		return ""
	})
}

// mergeTables lays over on base: tables merge key by key, anything else
// is replaced.
func mergeTables(base, over any) any {
	b, ok1 := base.(map[string]any)
	o, ok2 := over.(map[string]any)
	if !ok1 || !ok2 {
		return over
	}
	out := make(map[string]any, len(b)+len(o))
	for k, v := range b {
		out[k] = v
	}
	for k, v := range o {
		out[k] = mergeTables(b[k], v)
	}
	return out
}

// flattenKeys records the dotted path of every leaf under path.
func flattenKeys(path string, v any, out map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok {
		out[path] = true
		return
	}
	for k, x := range m {
		flattenKeys(path+"."+k, x, out)
	}
}

// SPDX-License-Identifier: GPL-3.0-only

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	rulesFile     = "expressgateway.rules.yml"
	rulesTestFile = "testdata/rules_test.yml"
)

// alertRule is one alerting rule of the rules file.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []alertRule
	for _, g := range f.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	return rules
}

// TestAlertingRules runs promtool check rules on the rules file and
// promtool test rules on its tests.
func TestAlertingRules(t *testing.T) {
	p := promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		out, err := exec.Command(p, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertingRulesHaveTests requires a promtool test per alert, named
// after it, in which it both fires and stays quiet.
func TestAlertingRulesHaveTests(t *testing.T) {
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name  string `yaml:"name"`
			Evals []struct {
				Alert     string           `yaml:"alertname"`
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesTestFile, err)
	}
	if len(f.RuleFiles) != 1 || filepath.Clean(filepath.Join(filepath.Dir(rulesTestFile), f.RuleFiles[0])) != rulesFile {
		t.Errorf("%s: rule_files %q, want the one rules file %s", rulesTestFile, f.RuleFiles, rulesFile)
	}
	type seen struct{ tests, fires, quiet int }
	got := map[string]*seen{}
	for _, r := range loadRules(t) {
		got[r.Alert] = &seen{}
	}
	for _, tc := range f.Tests {
		s := got[tc.Name]
		if s == nil {
			t.Errorf("%s: test %q names no alert of %s", rulesTestFile, tc.Name, rulesFile)
			continue
		}
		s.tests++
		for _, e := range tc.Evals {
			if e.Alert != tc.Name {
				t.Errorf("%s: test %q evaluates %s: one alert per test", rulesTestFile, tc.Name, e.Alert)
			}
			if len(e.ExpAlerts) > 0 {
				s.fires++
			} else {
				s.quiet++
			}
		}
	}
	for name, s := range got {
		if s.tests != 1 || s.fires == 0 || s.quiet == 0 {
			t.Errorf("%s: %d tests, %d evaluations where it fires, %d where it does not; want one test with both", name, s.tests, s.fires, s.quiet)
		}
	}
}

// runbookAlert is how RUNBOOK.md quotes an alert:
//
//	**Alert `NAME`** (SEVERITY, for DURATION): `EXPR`
//
// with "at once" for an alert without a for clause.
var runbookAlert = regexp.MustCompile("^\\*\\*Alert `(\\w+)`\\*\\* \\((\\w+), (?:for (\\w+)|at once)\\): `(.+)`$")

// anchor is the GitHub anchor of a Markdown heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TestRunbookMatchesRules requires every alert of the rules file to be
// quoted in RUNBOOK.md, in the section its runbook annotation points to,
// with the same severity, for and expression, and every alert name
// RUNBOOK.md mentions to be a rule.
func TestRunbookMatchesRules(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "RUNBOOK.md"))
	if err != nil {
		t.Fatal(err)
	}
	type quoted struct{ section, severity, forDur, expr string }
	quotes := map[string][]quoted{}
	sections := map[string]bool{}
	var section string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			section = anchor(strings.TrimSpace(strings.TrimLeft(line, "#")))
			sections[section] = true
			continue
		}
		if strings.HasPrefix(line, "**Alert ") {
			m := runbookAlert.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("RUNBOOK.md: %q does not read **Alert `NAME`** (severity, for D | at once): `expr`", line)
				continue
			}
			quotes[m[1]] = append(quotes[m[1]], quoted{section, m[2], m[3], m[4]})
		}
	}
	rules := map[string]alertRule{}
	for _, r := range loadRules(t) {
		if _, dup := rules[r.Alert]; dup {
			t.Errorf("%s: alert %s defined twice", rulesFile, r.Alert)
		}
		rules[r.Alert] = r
		q := quotes[r.Alert]
		if len(q) != 1 {
			t.Errorf("RUNBOOK.md quotes alert %s %d times, want once", r.Alert, len(q))
			continue
		}
		want := strings.TrimPrefix(r.Annotations["runbook"], "RUNBOOK.md#")
		switch {
		case r.Annotations["runbook"] == want || !sections[want]:
			t.Errorf("%s: runbook annotation %q names no RUNBOOK.md section", r.Alert, r.Annotations["runbook"])
		case q[0].section != want:
			t.Errorf("%s: quoted in RUNBOOK.md#%s, its runbook annotation says #%s", r.Alert, q[0].section, want)
		}
		if q[0].severity != r.Labels["severity"] {
			t.Errorf("%s: RUNBOOK.md says %s, the rule's severity is %q", r.Alert, q[0].severity, r.Labels["severity"])
		}
		if q[0].forDur != r.For {
			t.Errorf("%s: RUNBOOK.md says for %q, the rule's for is %q", r.Alert, q[0].forDur, r.For)
		}
		if norm := strings.Join(strings.Fields(r.Expr), " "); q[0].expr != norm {
			t.Errorf("%s: RUNBOOK.md quotes\n\t%s\nthe rule is\n\t%s", r.Alert, q[0].expr, norm)
		}
		if r.Annotations["summary"] == "" {
			t.Errorf("%s: no summary annotation", r.Alert)
		}
	}
	// Every alert name on the page is a rule (quoted or only mentioned).
	var unknown []string
	for _, name := range regexp.MustCompile(`\bExpressGateway[A-Z]\w*`).FindAllString(string(b), -1) {
		if _, ok := rules[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("RUNBOOK.md names alerts the rules file does not define: %q", unknown)
	}
}

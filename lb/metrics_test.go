// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func TestMetrics(t *testing.T) {
	set := metrics.NewSet()
	c := mustCluster(t, Spec{Name: `we"b`, Endpoints: endpoints(1, 1), Outlier: &OutlierSpec{Consecutive5xx: 1, MaxEjectionPercent: 100}}, WithMetrics(set))
	e := mustPick(t, c, nil, c.Endpoints()[1]) // the first endpoint
	e.Begin()
	setDown(c, c.Endpoints()[1], true)
	setDown(c, c.Endpoints()[1], false)
	e.End(500, time.Millisecond, false) // ejects e
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := buf.String()
	l := `{cluster="we\"b",endpoint="` + e.Address() + `"}`
	o := `{cluster="we\"b",endpoint="` + c.Endpoints()[1].Address() + `"`
	for _, want := range []string{
		"expressgateway_lb_picks_total" + l + " 1",
		"expressgateway_lb_active_requests" + l + " 0",
		"expressgateway_lb_endpoint_healthy" + l + " 0",
		"expressgateway_lb_ejections_total" + l + " 1",
		"expressgateway_lb_health_transitions_total" + o + `,to="unhealthy"} 1`,
		"expressgateway_lb_health_transitions_total" + o + `,to="healthy"} 1`,
		"expressgateway_lb_endpoint_healthy" + o + "} 1",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s in\n%s", want, out)
		}
	}
}

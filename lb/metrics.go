// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

// Metric families, each labelled {cluster, endpoint} (health transitions
// add to="healthy"|"unhealthy"): one series per configured endpoint, so
// the label budget is the number of endpoints, never request data.
const (
	metricHealthy     = "expressgateway_lb_endpoint_healthy"
	metricEjections   = "expressgateway_lb_ejections_total"
	metricPicks       = "expressgateway_lb_picks_total"
	metricActive      = "expressgateway_lb_active_requests"
	metricTransitions = "expressgateway_lb_health_transitions_total"
)

// MetricsHelp returns the HELP text of every family the package exports,
// keyed by family name. Each is the first sentence of the family's row in
// METRICS.md (a test in cmd/expressgateway keeps the two equal).
func MetricsHelp() map[string]string {
	return map[string]string{
		metricHealthy:     "1 when the endpoint is in the pick set, 0 when an active check or outlier ejection took it out.",
		metricEjections:   "passive outlier ejections.",
		metricPicks:       "times the endpoint was picked.",
		metricActive:      "requests in flight to the endpoint.",
		metricTransitions: "health transitions, to = healthy or unhealthy; each is also logged once.",
	}
}

// newEndpointMetrics creates (or finds, after a reload) an endpoint's
// series in set. Every series is created here, up front, so the hot path
// only does atomic adds. With a nil set the metrics are private.
//
// The series are shared by name: a cluster rebuilt on reload keeps
// counting into the same counters, and active-request gauges stay right
// while the old and new cluster both have requests in flight.
func newEndpointMetrics(set *metrics.Set, cluster, endpoint string) endpointMetrics {
	if set == nil {
		return endpointMetrics{
			healthy: new(metrics.Gauge), active: new(metrics.Gauge),
			picks: new(metrics.Counter), ejections: new(metrics.Counter),
			toHealthy: new(metrics.Counter), toUnhealthy: new(metrics.Counter),
		}
	}
	l := `{cluster="` + escapeLabel(cluster) + `",endpoint="` + escapeLabel(endpoint) + `"`
	return endpointMetrics{
		healthy:     set.GetOrCreateGauge(metricHealthy+l+"}", nil),
		active:      set.GetOrCreateGauge(metricActive+l+"}", nil),
		picks:       set.GetOrCreateCounter(metricPicks + l + "}"),
		ejections:   set.GetOrCreateCounter(metricEjections + l + "}"),
		toHealthy:   set.GetOrCreateCounter(metricTransitions + l + `,to="healthy"}`),
		toUnhealthy: set.GetOrCreateCounter(metricTransitions + l + `,to="unhealthy"}`),
	}
}

// unregisterEndpointMetrics removes the series newEndpointMetrics created,
// for an endpoint or cluster a reload removed.
func unregisterEndpointMetrics(set *metrics.Set, cluster, endpoint string) {
	if set == nil {
		return
	}
	l := `{cluster="` + escapeLabel(cluster) + `",endpoint="` + escapeLabel(endpoint) + `"`
	for _, name := range []string{
		metricHealthy + l + "}", metricActive + l + "}", metricPicks + l + "}", metricEjections + l + "}",
		metricTransitions + l + `,to="healthy"}`, metricTransitions + l + `,to="unhealthy"}`,
	} {
		set.UnregisterMetric(name)
	}
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

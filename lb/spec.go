// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Algorithm names accepted in Spec.Algorithm.
const (
	RoundRobin         = "round_robin"
	WeightedRoundRobin = "weighted_round_robin"
	Random             = "random"
	WeightedRandom     = "weighted_random"
	P2C                = "p2c"
	Maglev             = "maglev"
	RingHash           = "ring_hash"
	EWMA               = "ewma"
	LeastConnections   = "least_connections"
	LeastRequests      = "least_requests"
	SessionAffinity    = "session_affinity"
)

// Algorithms lists every algorithm name, in documentation order.
var Algorithms = []string{
	RoundRobin, WeightedRoundRobin, Random, WeightedRandom, P2C, Maglev,
	RingHash, EWMA, LeastConnections, LeastRequests, SessionAffinity,
}

// Defaults applied by Spec.Defaults (and so by New) to zero fields.
const (
	DefaultAlgorithm              = RoundRobin
	DefaultHashKey                = "source_ip"
	DefaultWeight                 = 1
	DefaultLocalityMinEndpoints   = 6
	MaxWeight                     = 1 << 16
	DefaultRingMinSize            = 1024
	DefaultRingMaxSize            = 1 << 23
	DefaultEWMADecay              = 10 * time.Second
	DefaultAffinityCookie         = "eg_affinity"
	DefaultAffinityPath           = "/"
	DefaultPanicThreshold         = 50.0
	DefaultPanicMode              = "all"
	DefaultOverprovisioningFactor = 1.4
	DefaultMaxRetries             = 2
	DefaultRetryBudgetPercent     = 20.0
	DefaultMinRetriesPerSecond    = 10
	DefaultHealthInterval         = 5 * time.Second
	DefaultHealthTimeout          = 1 * time.Second
	DefaultHealthyThreshold       = 2
	DefaultUnhealthyThreshold     = 3
	DefaultHealthPath             = "/healthz"
	DefaultRetryOn                = RetryOnConnectFailure | RetryOnReset | RetryOn502 | RetryOn503
	DefaultConsecutive5xx         = 5
	DefaultConsecutiveConnectFail = 3
	DefaultBaseEjectionTime       = 10 * time.Second
	DefaultMaxEjectionTime        = 300 * time.Second
	DefaultMaxEjectionPercent     = 50.0
)

// Spec is one cluster: its endpoints and how requests are spread over them.
// The conf package maps the TOML cluster table onto it; New applies
// defaults to zero fields and validates.
type Spec struct {
	// Name identifies the cluster in metrics and health events.
	Name string
	// Algorithm is one of Algorithms; default round_robin.
	Algorithm string
	// HashKey feeds maglev and ring_hash: "source_ip" (default),
	// "header:NAME", "cookie:NAME" or "path". A request without the key
	// gets a random one.
	HashKey string
	// Endpoints are the upstreams; at least one.
	Endpoints []EndpointSpec
	// MaglevTableSize is the Maglev lookup table size; a prime > number of
	// endpoints, default 65537.
	MaglevTableSize uint64
	// MaglevSeed seeds the Maglev permutation hash; nodes that must agree
	// on key placement use the same seed. Default 0.
	MaglevSeed uint64
	// RingHash sizes the ring_hash ring.
	RingHash RingHashSpec
	// EWMA tunes the ewma algorithm.
	EWMA EWMASpec
	// Affinity tunes the session_affinity cookie.
	Affinity AffinitySpec
	// HealthCheck enables active health checking when non-nil.
	HealthCheck *HealthCheckSpec
	// Outlier enables passive outlier detection when non-nil.
	Outlier *OutlierSpec
	// PanicThreshold, in percent (0-100): when fewer than this share of
	// endpoints is healthy, PanicMode decides. Default 50; a negative value
	// disables panic mode (write -1 to turn it off).
	PanicThreshold float64
	// PanicMode is "all" (route to every endpoint, healthy or not, like
	// Envoy; default) or "fail" (ErrNoHealthyEndpoint, which maps to 503).
	PanicMode string
	// OverprovisioningFactor (default 1.4): a priority level keeps all its
	// traffic while healthy share × factor ≥ 100%, then spills the rest to
	// the next level.
	OverprovisioningFactor float64
	// Retry bounds retries of failed requests.
	Retry RetrySpec
	// Locality turns on zone-aware routing (locality.go); the zero value
	// leaves it off.
	Locality LocalitySpec
}

// LocalitySpec is zone-aware routing: each priority level keeps as much
// traffic as it can in the node's own zone and spills the rest to the
// zones of the same region, then to other regions, in proportion to their
// spare capacity (Envoy's zone-aware routing, with a region tier).
type LocalitySpec struct {
	// Enabled turns zone-aware routing on.
	Enabled bool
	// Zone and Region are this node's locality. Without a zone nothing
	// is zone-aware.
	Zone, Region string
	// MinEndpoints is the size a level needs for zone-aware routing (Envoy's
	// min_cluster_size); smaller levels route over every zone. Default 6.
	MinEndpoints int
}

// EndpointSpec is one upstream.
type EndpointSpec struct {
	// Address is host:port; it is also the endpoint's identity in metrics,
	// hashes and affinity cookies.
	Address string
	// Weight is relative capacity, 1..65536; default 1.
	Weight uint32
	// Zone is the endpoint's locality, reported in metrics and events and
	// used by zone-aware routing.
	Zone string
	// Region is the region of the endpoint's zone (zone-aware routing).
	Region string
	// Priority is the failover level; 0 is the highest and gets all
	// traffic while it has enough healthy capacity.
	Priority int
}

// RingHashSpec sizes the ring_hash ring (Envoy semantics).
type RingHashSpec struct {
	// MinRingSize is the least number of virtual nodes; default 1024.
	MinRingSize uint64
	// MaxRingSize caps the number of virtual nodes; default 8388608.
	MaxRingSize uint64
}

// EWMASpec tunes the peak-EWMA latency estimate.
type EWMASpec struct {
	// Decay is the time constant over which old latency samples fade;
	// default 10s.
	Decay time.Duration
}

// AffinitySpec shapes the session_affinity cookie.
type AffinitySpec struct {
	// CookieName defaults to "eg_affinity".
	CookieName string
	// TTL sets Max-Age; 0 makes a session cookie.
	TTL time.Duration
	// Secure adds the Secure attribute.
	Secure bool
	// HTTPOnly adds the HttpOnly attribute.
	HTTPOnly bool
	// Path defaults to "/".
	Path string
}

// HealthCheckSpec configures active health checks.
type HealthCheckSpec struct {
	// Type is "http", "tcp" or "grpc".
	Type string
	// Path is the HTTP request path; default "/healthz".
	Path string
	// Host overrides the HTTP Host header.
	Host string
	// ExpectedStatuses are HTTP status codes or inclusive ranges such as
	// "200-399" (default) or "204".
	ExpectedStatuses []string
	// GRPCService is the service name sent in grpc.health.v1 Check;
	// empty asks about the server as a whole.
	GRPCService string
	// Interval between probes of one endpoint, from the end of one probe
	// to the start of the next (probes never overlap); default 5s.
	Interval time.Duration
	// Timeout of one probe; default 1s (at most Interval/2 when Interval
	// is set and this is not).
	Timeout time.Duration
	// Jitter adds a random delay in [0, Jitter) to every interval.
	Jitter time.Duration
	// HealthyThreshold consecutive successes bring an endpoint back;
	// default 2.
	HealthyThreshold int
	// UnhealthyThreshold consecutive failures take it out; default 3.
	UnhealthyThreshold int
	// TLS, when set, is the client config probes use (the cluster's
	// upstream TLS): http probes go over https, grpc probes over TLS, tcp
	// probes complete a handshake. An empty ServerName means the
	// endpoint's host.
	TLS *tls.Config
	// TLSKey identifies the TLS settings TLS was built from: a reload
	// restarts the probes when it, not the config's pointer, changes.
	TLSKey string
	// H3 sends http probes over HTTP/3 (QUIC, TLS 1.3, ALPN h3) to the
	// endpoint's UDP address; TLS is then required (nil: the system's
	// roots).
	H3 bool
}

// OutlierSpec configures passive outlier detection from live traffic.
type OutlierSpec struct {
	// Consecutive5xx responses (500-599) eject an endpoint; default 5,
	// negative disables.
	Consecutive5xx int
	// ConsecutiveConnectFailures eject an endpoint; default 3, negative
	// disables. A refused or timed-out connect is unambiguous (nothing
	// listens), so a small streak suffices, as nginx's max_fails=1 does.
	ConsecutiveConnectFailures int
	// BaseEjectionTime × number of ejections so far is how long an
	// ejection lasts; default 10s (nginx's fail_timeout).
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps one ejection; default 300s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of endpoints ejected at once;
	// default 50 (more would put the default panic threshold in force
	// anyway). One endpoint may always be ejected, but never the last
	// healthy one: a cluster never ejects all its endpoints.
	MaxEjectionPercent float64
}

// RetrySpec bounds retries. The forwarder asks Cluster.ShouldRetry and
// Cluster.AllowRetry; the budget keeps retries to a share of requests.
type RetrySpec struct {
	// RetryOn is the set of failures retried; zero means DefaultRetryOn
	// (connect failure, reset, 502, 503). Disable retries with MaxRetries.
	RetryOn RetryConditions
	// MaxRetries per request; default 2, negative disables retries.
	MaxRetries int
	// PerTryTimeout bounds each attempt; 0 means only the route's timeout.
	PerTryTimeout time.Duration
	// BudgetPercent: retries in the last 10 s may not exceed this share of
	// requests in the same window; default 20, negative means none (only
	// MinRetriesPerSecond).
	BudgetPercent float64
	// MinRetriesPerSecond are allowed regardless of the budget (× the 10 s
	// window), so a quiet cluster can still retry; default 10, Finagle's
	// and Linkerd's floor for this budget. Negative means no floor.
	MinRetriesPerSecond int
}

// Defaults fills zero fields with their defaults, in place.
func (s *Spec) Defaults() {
	if s.Algorithm == "" {
		s.Algorithm = DefaultAlgorithm
	}
	if s.HashKey == "" {
		s.HashKey = DefaultHashKey
	}
	for i := range s.Endpoints {
		if s.Endpoints[i].Weight == 0 {
			s.Endpoints[i].Weight = DefaultWeight
		}
	}
	if s.MaglevTableSize == 0 {
		s.MaglevTableSize = DefaultMaglevTableSize
	}
	if s.RingHash.MinRingSize == 0 {
		s.RingHash.MinRingSize = DefaultRingMinSize
	}
	if s.RingHash.MaxRingSize == 0 {
		s.RingHash.MaxRingSize = DefaultRingMaxSize
	}
	if s.EWMA.Decay == 0 {
		s.EWMA.Decay = DefaultEWMADecay
	}
	if s.Affinity.CookieName == "" {
		s.Affinity.CookieName = DefaultAffinityCookie
	}
	if s.Affinity.Path == "" {
		s.Affinity.Path = DefaultAffinityPath
	}
	if s.Locality.MinEndpoints == 0 {
		s.Locality.MinEndpoints = DefaultLocalityMinEndpoints
	}
	if s.PanicThreshold == 0 {
		s.PanicThreshold = DefaultPanicThreshold
	}
	if s.PanicMode == "" {
		s.PanicMode = DefaultPanicMode
	}
	if s.OverprovisioningFactor == 0 {
		s.OverprovisioningFactor = DefaultOverprovisioningFactor
	}
	if s.Retry.MaxRetries == 0 {
		s.Retry.MaxRetries = DefaultMaxRetries
	}
	if s.Retry.BudgetPercent == 0 {
		s.Retry.BudgetPercent = DefaultRetryBudgetPercent
	}
	if s.Retry.MinRetriesPerSecond == 0 {
		s.Retry.MinRetriesPerSecond = DefaultMinRetriesPerSecond
	}
	if s.Retry.RetryOn == 0 {
		s.Retry.RetryOn = DefaultRetryOn
	}
	if hc := s.HealthCheck; hc != nil {
		if hc.Type == "" {
			hc.Type = "http"
		}
		if hc.Path == "" {
			hc.Path = DefaultHealthPath
		}
		if len(hc.ExpectedStatuses) == 0 {
			hc.ExpectedStatuses = []string{"200-399"}
		}
		if hc.Interval == 0 {
			hc.Interval = DefaultHealthInterval
		}
		if hc.Timeout == 0 {
			hc.Timeout = min(DefaultHealthTimeout, hc.Interval/2)
		}
		if hc.HealthyThreshold == 0 {
			hc.HealthyThreshold = DefaultHealthyThreshold
		}
		if hc.UnhealthyThreshold == 0 {
			hc.UnhealthyThreshold = DefaultUnhealthyThreshold
		}
	}
	if o := s.Outlier; o != nil {
		if o.Consecutive5xx == 0 {
			o.Consecutive5xx = DefaultConsecutive5xx
		}
		if o.ConsecutiveConnectFailures == 0 {
			o.ConsecutiveConnectFailures = DefaultConsecutiveConnectFail
		}
		if o.BaseEjectionTime == 0 {
			o.BaseEjectionTime = DefaultBaseEjectionTime
		}
		if o.MaxEjectionTime == 0 {
			o.MaxEjectionTime = max(DefaultMaxEjectionTime, o.BaseEjectionTime)
		}
		if o.MaxEjectionPercent == 0 {
			o.MaxEjectionPercent = DefaultMaxEjectionPercent
		}
	}
}

// Validate reports every problem in s, each prefixed with its field path
// (for example "endpoints[2].weight: ..."). It validates s as given: call
// Defaults first to check a spec with zero fields meaning "default".
func (s *Spec) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if s.Name == "" {
		bad("name", "must not be empty")
	}
	if !isAlgorithm(s.Algorithm) {
		bad("algorithm", "%q is not one of %s", s.Algorithm, strings.Join(Algorithms, ", "))
	}
	if _, err := parseHashKey(s.HashKey); err != nil {
		bad("hash_key", "%v", err)
	}
	if len(s.Endpoints) == 0 {
		bad("endpoints", "at least one endpoint is required")
	}
	seen := make(map[string]int, len(s.Endpoints))
	for i, e := range s.Endpoints {
		p := fmt.Sprintf("endpoints[%d]", i)
		if e.Address == "" {
			bad(p+".address", "must not be empty")
		} else if j, dup := seen[e.Address]; dup {
			bad(p+".address", "%q duplicates endpoints[%d]", e.Address, j)
		} else {
			seen[e.Address] = i
		}
		if e.Weight < 1 || e.Weight > MaxWeight {
			bad(p+".weight", "%d is outside 1..%d", e.Weight, MaxWeight)
		}
		if e.Priority < 0 || e.Priority > 127 {
			bad(p+".priority", "%d is outside 0..127", e.Priority)
		}
	}
	if s.Algorithm == Maglev {
		if s.MaglevTableSize <= uint64(len(s.Endpoints)) || s.MaglevTableSize > MaxMaglevTableSize || !isPrime(s.MaglevTableSize) {
			bad("maglev_table_size", "%d must be a prime > number of endpoints and <= %d", s.MaglevTableSize, MaxMaglevTableSize)
		}
	}
	if s.Algorithm == RingHash {
		if s.RingHash.MinRingSize < 1 {
			bad("ring_hash.min_ring_size", "must be >= 1")
		}
		if s.RingHash.MaxRingSize < s.RingHash.MinRingSize {
			bad("ring_hash.max_ring_size", "%d is below min_ring_size %d", s.RingHash.MaxRingSize, s.RingHash.MinRingSize)
		}
		if s.RingHash.MaxRingSize > DefaultRingMaxSize {
			bad("ring_hash.max_ring_size", "%d is above %d", s.RingHash.MaxRingSize, DefaultRingMaxSize)
		}
	}
	if s.Algorithm == EWMA && s.EWMA.Decay <= 0 {
		bad("ewma.decay", "must be > 0")
	}
	if s.Algorithm == SessionAffinity {
		if !validCookieName(s.Affinity.CookieName) {
			bad("affinity.cookie_name", "%q is not a valid cookie name", s.Affinity.CookieName)
		}
		if s.Affinity.TTL < 0 {
			bad("affinity.ttl", "must be >= 0")
		}
		if !strings.HasPrefix(s.Affinity.Path, "/") || strings.ContainsAny(s.Affinity.Path, ";\r\n") {
			bad("affinity.path", "%q must start with / and hold no ';' or line breaks", s.Affinity.Path)
		}
	}
	if s.PanicThreshold > 100 {
		bad("panic_threshold", "%v is above 100 (percent)", s.PanicThreshold)
	}
	if s.PanicMode != "all" && s.PanicMode != "fail" {
		bad("panic_mode", "%q must be \"all\" or \"fail\"", s.PanicMode)
	}
	if s.OverprovisioningFactor < 1 || s.OverprovisioningFactor > 100 {
		bad("overprovisioning_factor", "%v is outside 1..100", s.OverprovisioningFactor)
	}
	if s.Retry.PerTryTimeout < 0 {
		bad("retry.per_try_timeout", "must be >= 0")
	}
	if s.Retry.BudgetPercent > 100 {
		bad("retry.budget_percent", "%v is above 100", s.Retry.BudgetPercent)
	}
	if s.Retry.RetryOn&^retryOnAll != 0 {
		bad("retry.retry_on", "%#x has unknown condition bits", uint8(s.Retry.RetryOn))
	}
	if hc := s.HealthCheck; hc != nil {
		switch hc.Type {
		case "http":
			if !strings.HasPrefix(hc.Path, "/") {
				bad("health_check.path", "%q must start with /", hc.Path)
			}
			if _, err := parseStatusRanges(hc.ExpectedStatuses); err != nil {
				bad("health_check.expected_statuses", "%v", err)
			}
		case "tcp", "grpc":
		default:
			bad("health_check.type", "%q must be http, tcp or grpc", hc.Type)
		}
		if hc.Interval <= 0 {
			bad("health_check.interval", "must be > 0")
		}
		if hc.Timeout <= 0 {
			bad("health_check.timeout", "must be > 0")
		}
		if hc.Jitter < 0 {
			bad("health_check.jitter", "must be >= 0")
		}
		if hc.HealthyThreshold < 1 {
			bad("health_check.healthy_threshold", "must be >= 1")
		}
		if hc.UnhealthyThreshold < 1 {
			bad("health_check.unhealthy_threshold", "must be >= 1")
		}
	}
	if o := s.Outlier; o != nil {
		if o.BaseEjectionTime <= 0 {
			bad("outlier.base_ejection_time", "must be > 0")
		}
		if o.MaxEjectionTime < o.BaseEjectionTime {
			bad("outlier.max_ejection_time", "%v is below base_ejection_time %v", o.MaxEjectionTime, o.BaseEjectionTime)
		}
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			bad("outlier.max_ejection_percent", "%v is outside 0..100", o.MaxEjectionPercent)
		}
	}
	return errors.Join(errs...)
}

func isAlgorithm(a string) bool {
	for _, x := range Algorithms {
		if a == x {
			return true
		}
	}
	return false
}

// hashKeyKind says where a hash-based picker finds its key.
type hashKeyKind uint8

const (
	keySourceIP hashKeyKind = iota
	keyHeader
	keyCookie
	keyPath
)

type hashKey struct {
	kind hashKeyKind
	name string
}

func parseHashKey(s string) (hashKey, error) {
	switch {
	case s == "source_ip":
		return hashKey{kind: keySourceIP}, nil
	case s == "path":
		return hashKey{kind: keyPath}, nil
	case strings.HasPrefix(s, "header:") && len(s) > len("header:"):
		return hashKey{kind: keyHeader, name: s[len("header:"):]}, nil
	case strings.HasPrefix(s, "cookie:") && len(s) > len("cookie:"):
		return hashKey{kind: keyCookie, name: s[len("cookie:"):]}, nil
	}
	return hashKey{}, fmt.Errorf("%q must be source_ip, path, header:NAME or cookie:NAME", s)
}

// validCookieName accepts an RFC 6265 token.
func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

type statusRange struct{ lo, hi int }

func parseStatusRanges(specs []string) ([]statusRange, error) {
	out := make([]statusRange, 0, len(specs))
	for _, sp := range specs {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(sp), "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("%q is not a status or range", sp)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("%q is not a status or range", sp)
			}
		}
		if a < 100 || b > 599 || a > b {
			return nil, fmt.Errorf("%q must lie within 100-599, low to high", sp)
		}
		out = append(out, statusRange{a, b})
	}
	return out, nil
}

func statusIn(rs []statusRange, code int) bool {
	for _, r := range rs {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

// SPDX-License-Identifier: GPL-3.0-only

package lb

import (
	"strings"
	"testing"
	"time"
)

func TestSessionAffinity(t *testing.T) {
	c := mustCluster(t, Spec{
		Algorithm: SessionAffinity, Endpoints: endpoints(1, 1, 1),
		Affinity: AffinitySpec{CookieName: "sticky", TTL: time.Hour, Secure: true, HTTPOnly: true},
	})
	p, err := c.Pick(&fakeReq{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.SetCookie, "sticky=") || !strings.Contains(p.SetCookie, "; Path=/; Max-Age=3600; HttpOnly; Secure") {
		t.Fatalf("Set-Cookie %q", p.SetCookie)
	}
	value := strings.TrimPrefix(strings.SplitN(p.SetCookie, ";", 2)[0], "sticky=")
	pinned := p.Endpoint
	// Honoured, and not re-issued.
	for range 20 {
		q, err := c.Pick(cookieReq("sticky", value), nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Endpoint != pinned || q.SetCookie != "" {
			t.Fatalf("cookie not honoured: %s %q", q.Endpoint.Address(), q.SetCookie)
		}
	}
	// Unknown cookie: treated as none.
	if q, _ := c.Pick(cookieReq("sticky", "bogus"), nil); q.SetCookie == "" {
		t.Fatal("bogus cookie not replaced")
	}
	// Pinned endpoint unhealthy: elsewhere, with a new cookie.
	setDown(c, pinned, true)
	q, err := c.Pick(cookieReq("sticky", value), nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Endpoint == pinned || q.SetCookie == "" || q.SetCookie == p.SetCookie {
		t.Fatalf("unhealthy pin: got %s, Set-Cookie %q", q.Endpoint.Address(), q.SetCookie)
	}
	// A retry away from the pinned endpoint also re-pins.
	setDown(c, pinned, false)
	r, _ := c.Pick(cookieReq("sticky", value), pinned)
	if r.Endpoint == pinned || r.SetCookie == "" {
		t.Fatal("retry with exclude kept the pin")
	}
	// Cookies differ per endpoint and are stable across builds.
	c2 := mustCluster(t, Spec{Algorithm: SessionAffinity, Endpoints: endpoints(1, 1, 1), Affinity: AffinitySpec{CookieName: "sticky"}})
	if c2.Endpoint(pinned.Address()).cookieValue != pinned.cookieValue {
		t.Fatal("cookie value not stable across builds")
	}
	if !strings.HasSuffix((*c2.Endpoints()[0].setCookie.Load()), "; Path=/") {
		t.Fatalf("session cookie %q", (*c2.Endpoints()[0].setCookie.Load()))
	}
}

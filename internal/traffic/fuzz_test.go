package traffic_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

// policySeeds are the policies of the unit tables.
var policySeeds = []string{
	`{"name":"p"}`,
	`{"name":"p","rules":{"sticky_seconds":0,"load_ceiling":0.99,"prefer_peering":false,"lowest_cost":false,"prefix_v4":25,"prefix_v6":56,"bucket_ms":5}}`,
	geoPolicy,
	subnetPolicy,
	`{"name":"p","origin":"https://origin.example.net","ttl_seconds":5,"answers":2,"token_sha256":"` + traffic.TokenHash("x") + `"}`,
	`{"name":"p","route":{"method":"multivalue","max":3,"targets":[{"route":{"method":"performance","targets":[{"region":"*"}]}}]}}`,
	`{"name":"p","route":{"method":"priority","targets":[{"edge":"sin-1","priority":3},{"edges":["nyc-1","dub-1"],"priority":1}]}}`,
	`{"name":"p","route":{"method":"weighted","targets":[{"edge":"dub-1","weight":3},{"region":"us-east","weight":1}]}}`,
	`{"name":"p","route":{"method":"teleport","targets":[]}}`,
	`{"name":"UPPER"}`,
	`[]`,
}

// FuzzParsePolicy feeds arbitrary documents to the policy parser; whatever
// it accepts must route without panicking, and errors must be the
// package's sentinels.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range policySeeds {
		f.Add([]byte(s))
	}
	w := newWorld(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := traffic.ParsePolicy(doc)
		if err != nil {
			if !errors.Is(err, traffic.ErrInvalid) && !errors.Is(err, traffic.ErrTooLarge) {
				t.Fatalf("ParsePolicy error %v is not ErrInvalid/ErrTooLarge", err)
			}
			return
		}
		// Round trip: what we store must parse again.
		b, _ := json.Marshal(p)
		if _, err := traffic.ParsePolicy(b); err != nil {
			t.Fatalf("stored form %s does not parse: %v", b, err)
		}
		if err := w.m.PutPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		for _, c := range traffictest.Clients {
			_, err := w.m.Route(ctx, traffic.Query{Property: p.Name, Path: "x", Client: c})
			if err != nil && !errors.Is(err, traffic.ErrNoEdge) {
				t.Fatalf("Route: %v", err)
			}
		}
		w.m.DeletePolicy(ctx, p.Name)
	})
}

// FuzzHeartbeat feeds arbitrary edge reports to validation and, when
// valid, to the registry and routing.
func FuzzHeartbeat(f *testing.F) {
	for _, e := range traffictest.Edges() {
		b, _ := json.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte(`{"id":"x","url":"http://[::1]:1","load":{"rtt_ms":{"eu-west":-1}}}`))
	f.Add([]byte(`{"id":"x","url":"http://a","cost_schedule":[{"from":"23:00","to":"01:00","per_gb":1}]}`))
	w := newWorld(f)
	w.policy(f, `{"name":"p"}`)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		var e traffic.Edge
		if json.Unmarshal(b, &e) != nil {
			return
		}
		if err := w.m.Heartbeat(ctx, e); err != nil {
			if !errors.Is(err, traffic.ErrInvalid) {
				t.Fatalf("Heartbeat error %v is not ErrInvalid", err)
			}
			return
		}
		w.m.Refresh(ctx)
		for _, c := range traffictest.Clients {
			if _, err := w.m.Route(ctx, traffic.Query{Property: "p", Client: c}); err != nil {
				t.Fatalf("Route: %v", err)
			}
		}
		if orig, ok := w.edges[e.ID]; ok {
			w.m.Heartbeat(ctx, orig) // put the world back
		} else {
			w.m.DeleteEdge(ctx, e.ID)
		}
	})
}

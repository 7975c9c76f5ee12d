package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"avalanche/internal/control"
	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

// benchRouteResult is what `bench route --json` prints.
type benchRouteResult struct {
	DecisionsPerSecond float64  `json:"decisions_per_second"`
	P99Microseconds    float64  `json:"p99_microseconds"`
	FailoverSeconds    *float64 `json:"failover_seconds,omitempty"`
}

func runBenchRoute(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "bench route", "[flags]", `
Benchmark the traffic manager on a synthetic world (6 edges, 3 regions,
4 ISPs; every business rule on):

  decisions per second   routing decisions made by one goroutine (one core)
  p99 latency            of GET /v1/route on a loopback HTTP server under
                         -concurrency keep-alive clients in this process

The clients run closed loop (each waits for its answer before asking
again) on the same cores as the server, so with more clients than cores
the p99 measures their queue, not the answer time: the default is 2.

With -failover it also kills a real edge and times how long until no new
client is sent to it, with 1 s health probes. -json prints
{"decisions_per_second", "p99_microseconds"[, "failover_seconds"]}.`)
	asJSON := fs.Bool("json", false, "print JSON")
	dur := fs.Duration("duration", 2*time.Second, "how long each measurement runs")
	conc := fs.Int("concurrency", 2, "concurrent HTTP clients")
	failover := fs.Bool("failover", false, "also measure failover time with 1 s probes (takes a few seconds)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dur <= 0 || *dur > 10*time.Minute || *conc < 1 || *conc > 1024 {
		return fmt.Errorf("bench route: -duration must be in (0, 10m] and -concurrency in [1, 1024]: %w", errUsage)
	}
	var res benchRouteResult

	// Decisions per second, one goroutine.
	m, err := traffic.New(ctx, traffic.Config{Map: traffictest.Map(), DisableProbes: true})
	if err != nil {
		return err
	}
	if err := traffictest.Register(ctx, m, traffictest.Edges()); err != nil {
		return err
	}
	if err := m.PutPolicy(ctx, &traffic.Policy{Name: "p"}); err != nil {
		return err
	}
	clients := benchClients()
	n := 0
	start := time.Now()
	for time.Since(start) < *dur {
		for range 1000 {
			if _, err := m.Route(ctx, traffic.Query{Property: "p", Path: "f.bin", Client: clients[n%len(clients)]}); err != nil {
				return err
			}
			n++
		}
	}
	res.DecisionsPerSecond = float64(n) / time.Since(start).Seconds()

	// p99 of /v1/route over loopback HTTP.
	p99, p50, rps, err := benchHTTP(ctx, clients, *dur, *conc)
	if err != nil {
		return err
	}
	res.P99Microseconds = float64(p99.Microseconds())

	if *failover {
		fr, err := traffictest.MeasureFailover(ctx, time.Second)
		if err != nil {
			return err
		}
		s := fr.Detect.Seconds()
		res.FailoverSeconds = &s
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		return enc.Encode(res)
	}
	fmt.Fprintf(env.Stdout, "%-34s %12.0f\n", "decisions/s (one core)", res.DecisionsPerSecond)
	fmt.Fprintf(env.Stdout, "%-34s %12.0f\n", "GET /v1/route requests/s", rps)
	fmt.Fprintf(env.Stdout, "%-34s %12d\n", "GET /v1/route p50 µs", p50.Microseconds())
	fmt.Fprintf(env.Stdout, "%-34s %12d\n", "GET /v1/route p99 µs", p99.Microseconds())
	fmt.Fprintf(env.Stdout, "%-34s %12d\n", "concurrency", *conc)
	if res.FailoverSeconds != nil {
		fmt.Fprintf(env.Stdout, "%-34s %12.2f\n", "failover s (1 s probes)", *res.FailoverSeconds)
	}
	return nil
}

func benchClients() []netip.Addr {
	nets := []string{"203.0.113.%d", "198.51.100.%d", "192.0.2.%d", "100.%d.7.1", "2001:db8:64::%x"}
	out := make([]netip.Addr, 4096)
	for i := range out {
		out[i] = netip.MustParseAddr(fmt.Sprintf(nets[i%len(nets)], (i/len(nets))%256))
	}
	return out
}

// benchHTTP runs a control node's HTTP API on loopback and measures
// /v1/route latencies from conc keep-alive clients for d.
func benchHTTP(ctx context.Context, clients []netip.Addr, d time.Duration, conc int) (p99, p50 time.Duration, rps float64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, err := control.New(ctx, control.Config{Traffic: traffic.Config{Map: traffictest.Map(), DisableProbes: true}})
	if err != nil {
		return 0, 0, 0, err
	}
	if err := traffictest.Register(ctx, srv.Traffic(), traffictest.Edges()); err != nil {
		return 0, 0, 0, err
	}
	if err := srv.Traffic().PutPolicy(ctx, &traffic.Policy{Name: "p"}); err != nil {
		return 0, 0, 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, control.Listeners{HTTP: ln}) }()
	defer func() { cancel(); <-done }()

	// Each client is one keep-alive connection that writes a request and
	// reads the answer in its own goroutine, as wrk does: net/http's client
	// would add two goroutine hand-offs per request to what is measured.
	reqs := make([][]byte, len(clients))
	for i, c := range clients {
		reqs[i] = []byte("GET /v1/route?property=p&path=f.bin&client=" + c.String() + " HTTP/1.1\r\nHost: bench\r\n\r\n")
	}
	addr := ln.Addr().String()
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	conns := make([]net.Conn, conc)
	for w := range conns {
		if conns[w], err = net.Dial("tcp", addr); err != nil {
			return 0, 0, 0, err
		}
		defer conns[w].Close()
	}
	start := time.Now()
	for w, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			br := bufio.NewReader(conn)
			lat := make([]time.Duration, 0, 1<<16)
			for i := w; time.Since(start) < d && ctx.Err() == nil; i += conc {
				t0 := time.Now()
				conn.SetDeadline(t0.Add(5 * time.Second))
				if _, err := conn.Write(reqs[i%len(reqs)]); err != nil {
					fail(err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("bench route: GET /v1/route: status %d", resp.StatusCode)
				}
				if err != nil {
					fail(err)
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return 0, 0, 0, firstErr
	}
	if len(all) == 0 {
		return 0, 0, 0, fmt.Errorf("bench route: no requests completed")
	}
	slices.Sort(all)
	return all[len(all)*99/100], all[len(all)/2], float64(len(all)) / elapsed.Seconds(), nil
}

package traffic

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the manager's Prometheus collectors. With no registerer they
// still count (cheaply) but are never exported.
type metrics struct {
	decisions *prometheus.CounterVec
	probes    *prometheus.CounterVec
	edges     *prometheus.GaugeVec
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	edgeDec   prometheus.Counter
	originDec prometheus.Counter
	probeOK   prometheus.Counter
	probeFail prometheus.Counter
}

func newMetrics(m *Manager, reg prometheus.Registerer) *metrics {
	mt := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avalanche_traffic_decisions_total",
			Help: "Routing decisions, by outcome (edge or origin fallback).",
		}, []string{"outcome"}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avalanche_traffic_probes_total",
			Help: "Health probes sent by this control node, by result.",
		}, []string{"result"}),
		edges: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "avalanche_traffic_edges",
			Help: "Registered edges, by status (healthy, down, stale, drained, overloaded).",
		}, []string{"status"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avalanche_traffic_http_requests_total",
			Help: "Requests to the traffic manager's HTTP API, by endpoint and status class.",
		}, []string{"endpoint", "code_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "avalanche_traffic_http_request_duration_seconds",
			Help:    "Time to answer requests to the traffic manager's HTTP API, by endpoint.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 0.25, 1},
		}, []string{"endpoint"}),
	}
	mt.edgeDec = mt.decisions.WithLabelValues("edge")
	mt.originDec = mt.decisions.WithLabelValues("origin")
	mt.probeOK = mt.probes.WithLabelValues("ok")
	mt.probeFail = mt.probes.WithLabelValues("fail")
	if reg != nil {
		reg.MustRegister(mt.decisions, mt.probes, mt.edges, mt.requests, mt.duration)
	}
	return mt
}

func (mt *metrics) decision(outcome string) {
	if outcome == "edge" {
		mt.edgeDec.Inc()
	} else {
		mt.originDec.Inc()
	}
}

func (mt *metrics) probe(ok bool) {
	if ok {
		mt.probeOK.Inc()
	} else {
		mt.probeFail.Inc()
	}
}

func (mt *metrics) observeSnapshot(s *snapshot) {
	counts := map[string]float64{"healthy": 0, "down": 0, "stale": 0, "drained": 0, "overloaded": 0}
	for _, e := range s.edges {
		counts[e.status]++
	}
	for k, v := range counts {
		mt.edges.WithLabelValues(k).Set(v)
	}
}

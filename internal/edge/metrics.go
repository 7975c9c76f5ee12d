package edge

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"avalanche/internal/cachestore"
)

// metrics are one Server's Prometheus collectors, in a registry of its own
// (no global registration: two edges can live in one process).
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	respBytes   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	originFetch *prometheus.HistogramVec
	originErrs  *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	connReject  prometheus.Counter
	purged      *prometheus.CounterVec
}

func newMetrics(store func() cachestore.Stats, node string) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_http_requests_total",
			Help: "Requests served, by property, cache status (hit, stale, miss, revalidated, pass, error) and status class."},
			[]string{"property", "cache_status", "code_class"}),
		respBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_http_response_bytes_total",
			Help: "Bytes sent to clients including headers, by property."}, []string{"property"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edge_http_request_duration_seconds",
			Help: "Time to serve a request.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"property"}),
		originFetch: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "edge_origin_fetch_duration_seconds",
			Help: "Time until an origin's response headers arrived.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"property"}),
		originErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_origin_errors_total",
			Help: "Origin fetches that failed (connection error or timeout)."}, []string{"property"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_rate_limited_total",
			Help: "Requests refused by a token bucket, by scope (client, prefix)."}, []string{"scope"}),
		connReject: prometheus.NewCounter(prometheus.CounterOpts{Name: "edge_connections_rejected_total",
			Help: "Connections closed at accept by the connection caps."}),
		purged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "edge_purged_objects_total",
			Help: "Objects removed by purges and invalidations, by property."}, []string{"property"}),
	}
	reg.MustRegister(m.requests, m.respBytes, m.duration, m.originFetch, m.originErrs, m.rateLimited, m.connReject, m.purged,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&storeCollector{stats: store},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edge_build_info", Help: "Always 1; labels name the node.",
			ConstLabels: prometheus.Labels{"node": node}}, func() float64 { return 1 }))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// storeCollector exports cache occupancy at scrape time.
type storeCollector struct{ stats func() cachestore.Stats }

var (
	descCacheBytes = prometheus.NewDesc("edge_cache_bytes", "Bytes held in the cache, by property.", []string{"property"}, nil)
	descObjects    = prometheus.NewDesc("edge_cache_objects", "Objects held in the cache.", nil, nil)
	descEvictions  = prometheus.NewDesc("edge_cache_evictions_total", "Objects evicted to stay within budgets.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCacheBytes
	ch <- descObjects
	ch <- descEvictions
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for g, b := range s.Groups {
		ch <- prometheus.MustNewConstMetric(descCacheBytes, prometheus.GaugeValue, float64(b), g)
	}
	ch <- prometheus.MustNewConstMetric(descObjects, prometheus.GaugeValue, float64(s.Objects))
	ch <- prometheus.MustNewConstMetric(descEvictions, prometheus.CounterValue, float64(s.Evictions))
}

func codeClass(code int) string {
	switch {
	case code >= 500:
		return "5xx"
	case code >= 400:
		return "4xx"
	case code >= 300:
		return "3xx"
	case code >= 200:
		return "2xx"
	}
	return "1xx"
}

package origin

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the origin's Prometheus metrics. Label values are bounded:
// routes are the mux's patterns, properties come from the configuration.
type metrics struct {
	requests  *prometheus.CounterVec   // route, code
	bytesSent *prometheus.CounterVec   // route
	duration  *prometheus.HistogramVec // route
	publishes *prometheus.CounterVec   // property, kind, result
	uploaded  *prometheus.CounterVec   // property
}

func newDefaultRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newMetrics(reg prometheus.Registerer, o *Origin) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avalanche_origin_http_requests_total",
			Help: "HTTP requests handled, by route pattern and status code.",
		}, []string{"route", "code"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avalanche_origin_http_response_bytes_total",
			Help: "Response body bytes sent, by route pattern.",
		}, []string{"route"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "avalanche_origin_http_request_duration_seconds",
			Help:    "Time to handle a request, by route pattern.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"route"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avalanche_origin_publish_total",
			Help: "Publish operations by property, kind (manifest, content, delete) and result (created, exists, rejected).",
		}, []string{"property", "kind", "result"}),
		uploaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avalanche_origin_upload_bytes_total",
			Help: "File bytes committed by uploads, by property.",
		}, []string{"property"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.bytesSent, m.duration, m.publishes, m.uploaded, &storeCollector{o: o}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// storeCollector reports the store's per-property usage at scrape time.
type storeCollector struct{ o *Origin }

var (
	objectsDesc = prometheus.NewDesc("avalanche_origin_objects", "Objects stored (complete or not), by property.", []string{"property"}, nil)
	storedDesc  = prometheus.NewDesc("avalanche_origin_stored_bytes", "Bytes stored or reserved (file sizes plus manifests), by property.", []string{"property"}, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- objectsDesc
	ch <- storedDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.o.props {
		u := c.o.store.Usage(p.Name)
		ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(u.Objects), p.Name)
		ch <- prometheus.MustNewConstMetric(storedDesc, prometheus.GaugeValue, float64(u.Bytes), p.Name)
	}
}

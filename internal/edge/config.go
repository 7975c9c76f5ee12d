package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"avalanche/internal/cachestore"
)

// Config configures a Server. The zero value is a working edge with no
// properties (every request answers 404) and a 256 MiB memory cache.
type Config struct {
	// NodeID names this node in logs, metrics and Cache-Status. Empty
	// means "edge".
	NodeID string
	// Properties are the tenants served.
	Properties []Property
	// AdminToken, when set, is accepted by the admin API for every
	// property. Property tokens are accepted only for their property.
	AdminToken string
	// Store holds cached objects; nil means a 256 MiB memory store owned
	// by the Server.
	Store cachestore.Store
	// SliceSize is the unit in which large objects are fetched and stored.
	// Zero means 2 MiB.
	SliceSize int64
	// Limits protect the node.
	Limits Limits
	// OriginTimeout bounds waiting for an origin's response headers. Zero
	// means 30 seconds.
	OriginTimeout time.Duration
	// Logger receives operational logs; nil discards.
	Logger *slog.Logger
	// AccessLog receives one JSON line per request for properties without
	// their own access log; nil discards.
	AccessLog *AccessLog
	// Now is the clock; nil means time.Now. Tests may move time.
	Now func() time.Time
}

// Limits bound what clients can make the node do. Zero fields take the
// defaults given.
type Limits struct {
	// ClientRate and ClientBurst are a token bucket per client address
	// (requests per second). Zero rate means 200/s, burst 400.
	ClientRate  float64
	ClientBurst int
	// PrefixRate and PrefixBurst are a token bucket per client prefix
	// (/24 for IPv4, /64 for IPv6). Zero rate means 1000/s, burst 2000.
	PrefixRate  float64
	PrefixBurst int
	// Disabled turns rate limiting off (benchmarks).
	Disabled bool
	// MaxTrackedClients bounds the limiter tables. Zero means 65536.
	MaxTrackedClients int
	// MaxConns caps concurrent connections per listener; zero means 10000.
	MaxConns int
	// MaxConnsPerIP caps concurrent connections per client address; zero
	// means 256.
	MaxConnsPerIP int
	// MaxHeaderBytes caps request headers; zero means 64 KiB.
	MaxHeaderBytes int
	// MaxBodyBytes caps request bodies forwarded to origins; zero means
	// 16 MiB.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds receiving request headers; zero means 10 s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections; zero means 120 s.
	IdleTimeout time.Duration
	// SlowClientTimeout is the longest a single write of a response chunk
	// may take before the client is dropped; zero means 30 s.
	SlowClientTimeout time.Duration
	// MaxConcurrentStreams bounds HTTP/2 streams per connection; zero
	// means 100.
	MaxConcurrentStreams int
}

func (l Limits) withDefaults() Limits {
	def := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	defi := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ClientRate, 200)
	defi(&l.ClientBurst, int(2*l.ClientRate))
	def(&l.PrefixRate, 1000)
	defi(&l.PrefixBurst, int(2*l.PrefixRate))
	defi(&l.MaxTrackedClients, 65536)
	defi(&l.MaxConns, 10000)
	defi(&l.MaxConnsPerIP, 256)
	defi(&l.MaxHeaderBytes, 64<<10)
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 16 << 20
	}
	defd(&l.ReadHeaderTimeout, 10*time.Second)
	defd(&l.IdleTimeout, 120*time.Second)
	defd(&l.SlowClientTimeout, 30*time.Second)
	defi(&l.MaxConcurrentStreams, 100)
	return l
}

// Property is one tenant: which requests it owns, where they go, and its
// rules. Name and Origin are required.
type Property struct {
	// Name identifies the property (letters, digits, '-', '_', '.').
	Name string
	// Hosts are the Host names it serves ("*" or empty: any host).
	Hosts []string
	// PathPrefix restricts it to paths under a prefix ("" = all).
	PathPrefix string
	// Origin is the base URL requests are forwarded to.
	Origin string
	// Token authorizes this property's calls on the admin API.
	Token string
	// CacheBytes caps this property's bytes in each cache tier; zero
	// means only the tier budgets apply.
	CacheBytes int64
	// DefaultTTL is the lifetime given to cacheable-status responses that
	// carry no freshness information; zero means they are not cached.
	DefaultTTL time.Duration
	// PlaylistTTL is the lifetime of HLS/DASH playlists without freshness
	// information; zero means 2 s.
	PlaylistTTL time.Duration
	// SegmentTTL is the lifetime of media segments without freshness
	// information; zero means 24 h.
	SegmentTTL time.Duration
	// ClientRate and ClientBurst, when set, replace the node's per-client
	// bucket for this property's requests.
	ClientRate  float64
	ClientBurst int
	// AccessLog, when set, receives this property's access-log lines.
	AccessLog *AccessLog
}

// Errors of configuration.
var (
	ErrConfig = errors.New("edge: invalid configuration")
)

// Regular expressions are compiled when first used, not as the program
// starts: every command of the one binary pays for every package's
// initialisation, "avalanche get" included.
var nameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`) })

// validate checks a configuration and returns the first problem.
func (c *Config) validate() error {
	seen := map[string]bool{}
	routes := map[string]string{}
	for i := range c.Properties {
		p := &c.Properties[i]
		if !nameRE().MatchString(p.Name) {
			return fmt.Errorf("%w: property %d: bad name %q", ErrConfig, i, p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("%w: property %q defined twice", ErrConfig, p.Name)
		}
		seen[p.Name] = true
		u, err := url.Parse(p.Origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: property %q: origin must be an http(s) URL, got %q", ErrConfig, p.Name, p.Origin)
		}
		if p.PathPrefix != "" && !strings.HasPrefix(p.PathPrefix, "/") {
			return fmt.Errorf("%w: property %q: path_prefix must start with /", ErrConfig, p.Name)
		}
		if p.Token != "" && len(p.Token) < 16 {
			return fmt.Errorf("%w: property %q: token shorter than 16 characters", ErrConfig, p.Name)
		}
		hosts := p.Hosts
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for _, h := range hosts {
			r := strings.ToLower(h) + p.PathPrefix
			if other, ok := routes[r]; ok {
				return fmt.Errorf("%w: properties %q and %q both claim %q", ErrConfig, other, p.Name, r)
			}
			routes[r] = p.Name
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return fmt.Errorf("%w: admin token shorter than 16 characters", ErrConfig)
	}
	if c.SliceSize < 0 || c.SliceSize > 1<<30 {
		return fmt.Errorf("%w: slice size out of range", ErrConfig)
	}
	return nil
}

// File is the JSON configuration file format. Sizes are strings with an
// optional unit ("256MiB", "10GB", "4096"); durations use Go syntax
// ("30s", "2m"). Unknown fields are rejected.
type File struct {
	NodeID        string         `json:"node_id"`
	Listen        string         `json:"listen"`
	TLSListen     string         `json:"tls_listen"`
	TLSCert       string         `json:"tls_cert"`
	TLSKey        string         `json:"tls_key"`
	Admin         string         `json:"admin"`
	AdminToken    string         `json:"admin_token"`
	CacheDir      string         `json:"cache_dir"`
	Mem           Size           `json:"mem"`
	Disk          Size           `json:"disk"`
	SliceSize     Size           `json:"slice_size"`
	AccessLog     string         `json:"access_log"`
	OriginTimeout Duration       `json:"origin_timeout"`
	Limits        FileLimits     `json:"limits"`
	Properties    []FileProperty `json:"properties"`
}

// FileLimits is the "limits" object of File.
type FileLimits struct {
	ClientRate           float64  `json:"client_rate"`
	ClientBurst          int      `json:"client_burst"`
	PrefixRate           float64  `json:"prefix_rate"`
	PrefixBurst          int      `json:"prefix_burst"`
	Disabled             bool     `json:"disabled"`
	MaxConns             int      `json:"max_conns"`
	MaxConnsPerIP        int      `json:"max_conns_per_ip"`
	MaxHeaderBytes       Size     `json:"max_header_bytes"`
	MaxBodyBytes         Size     `json:"max_body_bytes"`
	ReadHeaderTimeout    Duration `json:"read_header_timeout"`
	IdleTimeout          Duration `json:"idle_timeout"`
	SlowClientTimeout    Duration `json:"slow_client_timeout"`
	MaxConcurrentStreams int      `json:"max_concurrent_streams"`
}

// FileProperty is one entry of File.Properties.
type FileProperty struct {
	Name        string   `json:"name"`
	Hosts       []string `json:"hosts"`
	PathPrefix  string   `json:"path_prefix"`
	Origin      string   `json:"origin"`
	Token       string   `json:"token"`
	CacheBytes  Size     `json:"cache_bytes"`
	DefaultTTL  Duration `json:"default_ttl"`
	PlaylistTTL Duration `json:"playlist_ttl"`
	SegmentTTL  Duration `json:"segment_ttl"`
	ClientRate  float64  `json:"client_rate"`
	ClientBurst int      `json:"client_burst"`
	AccessLog   string   `json:"access_log"`
}

// MaxConfigBytes bounds a configuration file.
const MaxConfigBytes = 4 << 20

// ParseFile decodes and checks a configuration file.
func ParseFile(data []byte) (*File, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrConfig, MaxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrConfig)
	}
	if len(f.Properties) > 10000 {
		return nil, fmt.Errorf("%w: too many properties", ErrConfig)
	}
	cfg := f.Config()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Config converts the file into a Config (without Store, loggers or access
// logs, which the caller wires).
func (f *File) Config() Config {
	c := Config{NodeID: f.NodeID, AdminToken: f.AdminToken, SliceSize: int64(f.SliceSize), OriginTimeout: time.Duration(f.OriginTimeout)}
	l := f.Limits
	c.Limits = Limits{ClientRate: l.ClientRate, ClientBurst: l.ClientBurst, PrefixRate: l.PrefixRate, PrefixBurst: l.PrefixBurst,
		Disabled: l.Disabled, MaxConns: l.MaxConns, MaxConnsPerIP: l.MaxConnsPerIP, MaxHeaderBytes: int(l.MaxHeaderBytes),
		MaxBodyBytes: int64(l.MaxBodyBytes), ReadHeaderTimeout: time.Duration(l.ReadHeaderTimeout), IdleTimeout: time.Duration(l.IdleTimeout),
		SlowClientTimeout: time.Duration(l.SlowClientTimeout), MaxConcurrentStreams: l.MaxConcurrentStreams}
	for _, p := range f.Properties {
		c.Properties = append(c.Properties, Property{Name: p.Name, Hosts: p.Hosts, PathPrefix: p.PathPrefix, Origin: p.Origin,
			Token: p.Token, CacheBytes: int64(p.CacheBytes), DefaultTTL: time.Duration(p.DefaultTTL),
			PlaylistTTL: time.Duration(p.PlaylistTTL), SegmentTTL: time.Duration(p.SegmentTTL), ClientRate: p.ClientRate, ClientBurst: p.ClientBurst})
	}
	return c
}

// Size is a byte count that unmarshals from a JSON number or a string with
// a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB.
type Size int64

// UnmarshalJSON implements json.Unmarshaler.
func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
	} else {
		str = string(b)
	}
	v, err := ParseSize(str)
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// ParseSize parses "256MiB", "10GB", "4096".
func ParseSize(str string) (int64, error) {
	str = strings.TrimSpace(str)
	i := 0
	for i < len(str) && (str[i] >= '0' && str[i] <= '9' || str[i] == '.') {
		i++
	}
	num, unit := str[:i], strings.ToLower(strings.TrimSpace(str[i:]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q", str)
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1e3, "kib": 1 << 10, "m": 1 << 20, "mb": 1e6, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1e9, "gib": 1 << 30, "t": 1 << 40, "tb": 1e12, "tib": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("bad size unit in %q", str)
	}
	v := f * mult
	if v > 1<<62 {
		return 0, fmt.Errorf("size %q too large", str)
	}
	return int64(v), nil
}

// Duration unmarshals from a Go duration string ("30s") or a number of
// seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil || v < 0 {
			return fmt.Errorf("bad duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil || secs < 0 || secs > 1e9 {
		return fmt.Errorf("bad duration %s", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

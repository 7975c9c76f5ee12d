package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// Options tune the decisions of a shared cache. The zero value is an RFC 9111
// shared cache that honours CDN-Cache-Control and untargeted
// Surrogate-Control.
type Options struct {
	// SurrogateTarget is the device token this cache answers to in
	// Surrogate-Control ("max-age=60;edge"). Empty means "avalanche".
	SurrogateTarget string
	// HeuristicFraction is the share of (Date - Last-Modified) used as a
	// heuristic freshness lifetime (RFC 9111 §4.2.2). Zero means 0.1.
	HeuristicFraction float64
	// HeuristicMax caps a heuristic lifetime. Zero means 24 hours.
	HeuristicMax time.Duration
}

func (o *Options) target() string {
	if o == nil || o.SurrogateTarget == "" {
		return "avalanche"
	}
	return o.SurrogateTarget
}

// Target returns the Surrogate-Control device token in use.
func (o *Options) Target() string { return o.target() }

// Policy is the cache's reading of one response: the directives that apply
// to a shared cache after targeted fields are taken into account.
type Policy struct {
	// CC is the response's own Cache-Control.
	CC Directives
	// Eff is what governs this cache: CDN-Cache-Control when present, else
	// Surrogate-Control merged over Cache-Control, else Cache-Control.
	Eff Directives
	// Targeted reports that CDN-Cache-Control or Surrogate-Control applied.
	Targeted bool
}

// ResponsePolicy reads the cache-control fields of a response header.
func ResponsePolicy(h http.Header, o *Options) Policy {
	p := Policy{CC: ParseCacheControl(h.Values("Cache-Control"))}
	p.Eff = p.CC
	if v := h.Values("CDN-Cache-Control"); len(v) > 0 {
		p.Eff = ParseCacheControl(v)
		p.Targeted = true
		return p
	}
	if sc, ok := ParseSurrogateControl(h.Values("Surrogate-Control"), o.target()); ok {
		// Surrogate-Control is addressed to surrogates and takes precedence
		// over Cache-Control (W3C Edge Architecture §2.2).
		p.Eff = sc
		p.Targeted = true
	}
	return p
}

// understood lists the status codes whose semantics this cache implements;
// must-understand responses with other codes are not stored.
var understood = map[int]bool{200: true, 203: true, 204: true, 206: true, 300: true, 301: true,
	302: true, 303: true, 307: true, 308: true, 404: true, 405: true, 410: true, 414: true, 501: true}

// heuristic lists the status codes that are heuristically cacheable
// (RFC 9110 §15.1).
var heuristic = map[int]bool{200: true, 203: true, 204: true, 206: true, 300: true, 301: true,
	308: true, 404: true, 405: true, 410: true, 414: true, 501: true}

// Reason says why a response may not be stored; empty means storable.
type Reason string

// Reasons a response is not stored.
const (
	Storable          Reason = ""
	ReasonMethod      Reason = "method"
	ReasonStatus      Reason = "status"
	ReasonNoStore     Reason = "no-store"
	ReasonPrivate     Reason = "private"
	ReasonAuth        Reason = "authorization"
	ReasonNoFreshness Reason = "no freshness information"
	ReasonVaryStar    Reason = "vary *"
	ReasonUnderstand  Reason = "must-understand"
)

// CanStore decides whether a shared cache may store resp for req
// (RFC 9111 §3). It does not look at sizes or budgets.
func CanStore(method string, reqHeader http.Header, status int, respHeader http.Header, o *Options) Reason {
	return CanStoreWith(ResponsePolicy(respHeader, o), method, reqHeader, status, respHeader)
}

// CanStoreWith is CanStore with the response's policy already read.
func CanStoreWith(p Policy, method string, reqHeader http.Header, status int, respHeader http.Header) Reason {
	if method != http.MethodGet && method != http.MethodHead {
		return ReasonMethod
	}
	if status < 200 || status == http.StatusNotModified || status >= 600 {
		return ReasonStatus
	}
	req := ParseCacheControl(reqHeader.Values("Cache-Control"))
	if p.Eff.MustUnderstand {
		if !understood[status] {
			return ReasonUnderstand
		}
	} else if p.Eff.NoStore {
		return ReasonNoStore
	}
	if req.NoStore {
		return ReasonNoStore
	}
	if p.Eff.Private || p.CC.Private {
		return ReasonPrivate
	}
	if reqHeader.Get("Authorization") != "" && !p.Eff.MustRevalidate && !p.Eff.Public && p.Eff.SMaxAge < 0 {
		return ReasonAuth
	}
	if hasVaryStar(respHeader) {
		return ReasonVaryStar
	}
	explicit := p.Eff.MaxAge >= 0 || p.Eff.SMaxAge >= 0 || p.Eff.Invalid ||
		(!p.Targeted && respHeader.Get("Expires") != "")
	if explicit || p.Eff.Public || p.Eff.NoCache {
		return Storable
	}
	if heuristic[status] && respHeader.Get("Last-Modified") != "" {
		return Storable
	}
	if respHeader.Get("ETag") != "" || respHeader.Get("Last-Modified") != "" {
		// storable for revalidation only (zero lifetime) when cacheable by default
		if heuristic[status] {
			return Storable
		}
	}
	return ReasonNoFreshness
}

// Lifetime returns the freshness lifetime of a response (RFC 9111 §4.2.1)
// and whether it was computed heuristically. received stands in for a
// missing or invalid Date header.
func Lifetime(status int, h http.Header, received time.Time, o *Options) (time.Duration, bool) {
	return lifetimeWith(ResponsePolicy(h, o), status, h, received, o)
}

func lifetimeWith(p Policy, status int, h http.Header, received time.Time, o *Options) (time.Duration, bool) {
	if p.Eff.Invalid {
		return 0, false
	}
	if p.Eff.SMaxAge >= 0 {
		return secs(p.Eff.SMaxAge), false
	}
	if p.Eff.MaxAge >= 0 {
		return secs(p.Eff.MaxAge), false
	}
	if !p.Targeted {
		if ev := h.Values("Expires"); len(ev) > 0 {
			exp, err := http.ParseTime(ev[0])
			if err != nil || len(ev) > 1 {
				return 0, false // invalid Expires means already expired
			}
			date := dateOr(h, received)
			if d := exp.Sub(date); d > 0 {
				return d, false
			}
			return 0, false
		}
	}
	if lm := h.Get("Last-Modified"); lm != "" && (heuristic[status] || p.Eff.Public) {
		lmt, err := http.ParseTime(lm)
		if err != nil {
			return 0, true
		}
		date := dateOr(h, received)
		if d := date.Sub(lmt); d > 0 {
			frac, max := 0.1, 24*time.Hour
			if o != nil && o.HeuristicFraction > 0 {
				frac = o.HeuristicFraction
			}
			if o != nil && o.HeuristicMax > 0 {
				max = o.HeuristicMax
			}
			l := time.Duration(float64(d) * frac)
			if l > max {
				l = max
			}
			return l.Truncate(time.Second), true
		}
	}
	return 0, false
}

// dateOr returns the Date header, or received when it is absent or invalid
// (RFC 9110 §6.6.1: a recipient may take the time it received the message).
func dateOr(h http.Header, received time.Time) time.Time {
	if t, err := http.ParseTime(h.Get("Date")); err == nil {
		return t
	}
	return received
}

func secs(n int64) time.Duration { return time.Duration(n) * time.Second }

// Age computes the current age of a stored response (RFC 9111 §4.2.3):
// requestTime and responseTime are when the cache sent the request that
// produced it and received its headers. ok is false when the Age header
// could not be trusted, in which case the response must be taken as stale.
func Age(h http.Header, requestTime, responseTime, now time.Time) (age time.Duration, ok bool) {
	ageValue, ok := ParseAge(h)
	apparent := time.Duration(0)
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		if d := responseTime.Sub(date); d > 0 {
			apparent = d.Truncate(time.Second)
		}
	}
	responseDelay := responseTime.Sub(requestTime)
	corrected := secs(ageValue) + responseDelay
	initial := max(apparent, corrected)
	resident := now.Sub(responseTime)
	age = initial + resident
	if age < 0 {
		age = 0
	}
	return age, ok
}

// Freshness is the state of a stored response at one moment.
type Freshness struct {
	Lifetime  time.Duration
	Age       time.Duration
	Fresh     bool // age < lifetime and the age could be trusted
	Heuristic bool
	// StaleWhileRevalidate and StaleIfError are the RFC 5861 windows past
	// expiry (zero when absent).
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// MustRevalidate is set when stale use is forbidden (must-revalidate,
	// proxy-revalidate, s-maxage, no-cache).
	MustRevalidate bool
	// NoCache is set when every use must be validated first.
	NoCache bool
}

// Staleness is how long past its lifetime the response is (0 when fresh).
func (f Freshness) Staleness() time.Duration {
	if f.Fresh {
		return 0
	}
	if s := f.Age - f.Lifetime; s > 0 {
		return s
	}
	return 0
}

// Analysis is what can be worked out once about a stored response; At
// then gives its freshness at any moment without parsing headers again.
// An Analysis is immutable and safe for concurrent use.
type Analysis struct {
	Policy    Policy
	Lifetime  time.Duration
	Heuristic bool
	initial   time.Duration // corrected initial age (RFC 9111 §4.2.3)
	ageOK     bool
	received  time.Time
	swr, sie  time.Duration
	mustReval bool
	noCache   bool
}

// Analyze reads a stored response's header once.
func Analyze(status int, h http.Header, requestTime, responseTime time.Time, o *Options) *Analysis {
	return AnalyzeWith(ResponsePolicy(h, o), status, h, requestTime, responseTime, o)
}

// AnalyzeWith is Analyze with the response's policy already read.
func AnalyzeWith(p Policy, status int, h http.Header, requestTime, responseTime time.Time, o *Options) *Analysis {
	life, heur := lifetimeWith(p, status, h, responseTime, o)
	ageValue, ok := ParseAge(h)
	apparent := time.Duration(0)
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		if d := responseTime.Sub(date); d > 0 {
			apparent = d.Truncate(time.Second)
		}
	}
	corrected := secs(ageValue) + responseTime.Sub(requestTime)
	a := &Analysis{Policy: p, Lifetime: life, Heuristic: heur, initial: max(apparent, corrected), ageOK: ok, received: responseTime}
	if p.Eff.StaleWhileRevalidate > 0 {
		a.swr = secs(p.Eff.StaleWhileRevalidate)
	}
	if p.Eff.StaleIfError > 0 {
		a.sie = secs(p.Eff.StaleIfError)
	}
	a.noCache = p.Eff.NoCache
	a.mustReval = p.Eff.MustRevalidate || p.Eff.ProxyRevalidate || p.Eff.SMaxAge >= 0 || p.Eff.NoCache
	return a
}

// Explicit reports whether the response h (read into p) states its own
// freshness or forbids reuse (max-age, s-maxage, Expires, no-cache,
// no-store, or a targeted field), as opposed to relying on heuristics or
// defaults.
func (p Policy) Explicit(h http.Header) bool {
	d := p.CC
	return p.Targeted || d.MaxAge >= 0 || d.SMaxAge >= 0 || d.NoCache || d.NoStore || d.Invalid || h.Get("Expires") != "" ||
		h.Get("Surrogate-Control") != "" || h.Get("CDN-Cache-Control") != ""
}

// At returns the freshness at now.
func (a *Analysis) At(now time.Time) Freshness {
	age := a.initial + now.Sub(a.received)
	if age < 0 {
		age = 0
	}
	f := Freshness{Lifetime: a.Lifetime, Age: age, Heuristic: a.Heuristic, StaleWhileRevalidate: a.swr, StaleIfError: a.sie,
		MustRevalidate: a.mustReval, NoCache: a.noCache}
	f.Fresh = a.ageOK && age < a.Lifetime && !a.noCache
	if !a.ageOK {
		f.Age = a.Lifetime + time.Second
	}
	return f
}

// Evaluate computes the freshness of a stored response at now.
func Evaluate(status int, h http.Header, requestTime, responseTime, now time.Time, o *Options) Freshness {
	return Analyze(status, h, requestTime, responseTime, o).At(now)
}

// RequestAllows reports whether a request's own Cache-Control lets a stored
// response with freshness f be used without contacting the origin
// (RFC 9111 §5.2.1): no-cache and max-age=0 force validation, min-fresh
// asks for remaining life, max-stale accepts some staleness.
func RequestAllows(reqHeader http.Header, f Freshness) bool {
	cc := reqHeader.Values("Cache-Control")
	return RequestDirectivesAllow(ParseCacheControl(cc), len(cc) == 0 && isPragmaNoCache(reqHeader), f)
}

// RequestDirectivesAllow is RequestAllows with the request's Cache-Control
// already parsed; pragmaNoCache reports a "Pragma: no-cache" on a request
// without Cache-Control (RFC 9111 §5.4).
func RequestDirectivesAllow(rc Directives, pragmaNoCache bool, f Freshness) bool {
	if rc.NoCache || pragmaNoCache {
		return false
	}
	if rc.MaxAge >= 0 && f.Age >= secs(rc.MaxAge) {
		return false
	}
	if f.Fresh {
		if rc.MinFresh >= 0 && f.Lifetime-f.Age < secs(rc.MinFresh) {
			return false
		}
		return true
	}
	if f.MustRevalidate || f.NoCache {
		return false
	}
	if rc.MaxStaleAny {
		return true
	}
	return rc.MaxStale >= 0 && f.Staleness() <= secs(rc.MaxStale)
}

// IsPragmaNoCache reports whether a request carries Pragma: no-cache.
func IsPragmaNoCache(h http.Header) bool { return isPragmaNoCache(h) }

func isPragmaNoCache(h http.Header) bool {
	for _, v := range h.Values("Pragma") {
		if strings.Contains(strings.ToLower(v), "no-cache") {
			return true
		}
	}
	return false
}

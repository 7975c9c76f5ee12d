package edge

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// traceContext is a W3C Trace Context (traceparent) for one request.
type traceContext struct {
	traceID string // 32 hex
	spanID  string // 16 hex: this hop's span, sent to the origin as parent-id
	flags   string // 2 hex
}

// parseTraceparent parses "00-<32 hex>-<16 hex>-<2 hex>"; ok is false for
// anything malformed, an all-zero id, or version ff.
func parseTraceparent(s string) (traceID, parentID, flags string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return "", "", "", false
	}
	ver := s[0:2]
	if !isHex(ver) || ver == "ff" || (ver == "00" && len(s) != 55) || (len(s) > 55 && s[55] != '-') {
		return "", "", "", false
	}
	traceID, parentID, flags = s[3:35], s[36:52], s[53:55]
	if !isHex(traceID) || !isHex(parentID) || !isHex(flags) ||
		traceID == strings.Repeat("0", 32) || parentID == strings.Repeat("0", 16) {
		return "", "", "", false
	}
	return traceID, parentID, flags, true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newTrace continues the incoming traceparent or starts a trace.
func newTrace(incoming string) traceContext {
	if id, _, flags, ok := parseTraceparent(incoming); ok {
		return traceContext{traceID: id, spanID: randHex(8), flags: flags}
	}
	return traceContext{traceID: randHex(16), spanID: randHex(8), flags: "01"}
}

func (t traceContext) header() string { return "00-" + t.traceID + "-" + t.spanID + "-" + t.flags }

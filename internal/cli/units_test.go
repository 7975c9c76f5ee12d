package cli

import "testing"

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"500k", 500 << 10, true}, {"10M", 10 << 20, true},
		{"50mbit", 50e6 / 8, true}, {"1.5G", 3 << 29, true}, {"8bit", 1, true},
		{"x", 0, false}, {"-1M", 0, false},
	}
	for _, tc := range tests {
		got, err := parseRate(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseRate(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	ps, err := parsePrefixes("10.0.0.0/8, 192.168.1.7,::1")
	if err != nil || len(ps) != 3 || ps[1].Bits() != 32 {
		t.Errorf("parsePrefixes = %v, %v", ps, err)
	}
	if _, err := parsePrefixes("10.0.0.0/40"); err == nil {
		t.Error("bad prefix accepted")
	}
}

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchCoding(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"json", []string{"bench", "coding", "-k", "4", "-block", "1K", "-duration", "2ms", "-rounds", "1", "-json"}, 0, `"mb_per_s"`},
		{"table", []string{"bench", "coding", "-k", "64", "-block", "32K", "-duration", "3ms", "-rounds", "1"}, 0, "Targets at k=64"},
		{"help", []string{"bench", "coding", "-h"}, 0, ""},
		{"no benchmark", []string{"bench"}, 2, ""},
		{"unknown", []string{"bench", "disk"}, 2, ""},
		{"bad k", []string{"bench", "coding", "-k", "x"}, 2, ""},
		{"k out of range", []string{"bench", "coding", "-k", "300", "-duration", "1ms"}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(context.Background(), tt.args, strings.NewReader(""), &out, &errOut)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tt.code, errOut.String())
			}
			if !strings.Contains(out.String(), tt.contains) {
				t.Errorf("output lacks %q:\n%s", tt.contains, out.String())
			}
			if tt.name == "json" {
				var rs []map[string]any
				if err := json.Unmarshal(out.Bytes(), &rs); err != nil || len(rs) == 0 {
					t.Errorf("output is not a JSON array of records: %v", err)
				}
			}
		})
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("16K, 32KiB,65536", true)
	if err != nil || len(got) != 3 || got[0] != 16384 || got[1] != 32768 || got[2] != 65536 {
		t.Errorf("parseSizes = %v, %v", got, err)
	}
	if _, err := parseSizes("16K", false); err == nil {
		t.Errorf("parseSizes accepted a suffix where none is allowed")
	}
	if _, err := parseSizes("0", false); err == nil {
		t.Errorf("parseSizes accepted 0")
	}
}

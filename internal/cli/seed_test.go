package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSeed: seed checks FILE against the manifest and serves it; a FILE
// that is missing, incomplete or damaged is finished from the swarm first,
// keeping the generations it holds; a FILE that holds none of the content
// is refused and left alone.
func TestSeed(t *testing.T) {
	data := testData(2<<20, 8) // 8 generations of 256 KiB
	other := testData(2<<20, 9)
	for _, tc := range []struct {
		name    string
		content []byte // nil: no file
		code    int
		resumed float64
	}{
		{"complete", data, 0, 8},
		{"missing", nil, 0, 0},
		{"incomplete", data[:len(data)/3], 0, 2},
		{"damaged", append(append([]byte(nil), data[:len(data)-1]...), data[len(data)-1]^1), 0, 7},
		{"another file", other, exitDisk, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A network of its own: the origin sends each generation once
			// in full, and no earlier downloader is left to trade with.
			net := startTestnet(t, 0)
			m := publishTest(t, net, data, 16, 16<<10)
			file := filepath.Join(t.TempDir(), "held.bin")
			if tc.content != nil {
				os.WriteFile(file, tc.content, 0o644)
			}
			te := newTestEnv(t, nil)
			code := te.run("seed", m.ID().String(), file, "--origin", net.OriginURL, "--tracker", net.TrackerURL,
				"--listen", "127.0.0.1:0", "--seed-time", "200ms", "--json")
			if code != tc.code {
				t.Fatalf("seed exited %d, want %d: %s", code, tc.code, te.stderr.String())
			}
			if tc.code != 0 {
				if b, _ := os.ReadFile(file); !bytes.Equal(b, tc.content) || !strings.Contains(te.stderr.String(), "holds none of this content") {
					t.Errorf("stderr %q; want the file refused and left as it was", te.stderr.String())
				}
				return
			}
			if sha(file) != m.FileHash {
				t.Error("FILE does not hold the content after seeding")
			}
			done := lastJSON(t, te.stdout.String(), "done")
			if done["resumed_generations"] != tc.resumed {
				t.Errorf("kept %v generations of FILE, want %v", done["resumed_generations"], tc.resumed)
			}
			for _, leftover := range []string{file + ".partial", file + ".partial.state"} {
				if _, err := os.Stat(leftover); err == nil {
					t.Errorf("%s left behind", leftover)
				}
			}
		})
	}
}

package cli

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
)

// TestHelp checks that "avalanche help" lists every command and that
// "avalanche <command> -h" describes each one and exits 0.
func TestHelp(t *testing.T) {
	te := newTestEnv(t, nil)
	if code := te.run("help"); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(te.stdout.String(), "  "+c.name+" ") {
			t.Errorf("help does not list %q:\n%s", c.name, te.stdout)
		}
	}
	for _, c := range commands {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range [][]string{{c.name, "-h"}, {"help", c.name}} {
				te := newTestEnv(t, nil)
				if code := te.run(args...); code != 0 {
					t.Fatalf("%s: exit %d, stderr:\n%s", strings.Join(args, " "), code, te.stderr)
				}
				if !strings.Contains(te.stderr.String(), "Usage: avalanche "+c.name) {
					t.Errorf("%s: no usage line:\n%s", strings.Join(args, " "), te.stderr)
				}
			}
		})
	}
	te = newTestEnv(t, nil)
	if code := te.run("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestKeygen(t *testing.T) {
	te := newTestEnv(t, nil)
	p := filepath.Join(t.TempDir(), "keys", "publisher.pem")
	if code := te.run("keygen", "-o", p); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, te.stderr)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	priv, err := identity.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "public key   " + identity.Self(priv).String(); !strings.Contains(te.stdout.String(), want) {
		t.Errorf("keygen output lacks %q:\n%s", want, te.stdout)
	}
	before, _ := os.ReadFile(p)
	te = newTestEnv(t, nil)
	if code := te.run("keygen", "-o", p); code != 1 {
		t.Errorf("keygen over an existing key: exit %d, want 1", code)
	}
	if after, _ := os.ReadFile(p); string(after) != string(before) {
		t.Errorf("keygen without -force replaced the key")
	}
	te = newTestEnv(t, nil)
	if code := te.run("keygen", "-force", "-o", p); code != 0 {
		t.Fatalf("keygen -force: exit %d: %s", code, te.stderr)
	}
	if after, _ := os.ReadFile(p); string(after) == string(before) {
		t.Errorf("keygen -force kept the old key")
	}
	if code := newTestEnv(t, nil).run("keygen", "extra"); code != 2 {
		t.Errorf("keygen with an argument: exit %d, want 2", code)
	}
}

// TestManifestCommand signs a file's manifest with "avalanche manifest",
// parses what -o wrote and checks it against the file and the key.
func TestManifestCommand(t *testing.T) {
	te := newTestEnv(t, nil)
	priv, err := identity.Create(te.defaultPublisherKey(), false)
	if err != nil {
		t.Fatal(err)
	}
	file, data := writeTestFile(t, 5000)
	out := filepath.Join(t.TempDir(), "m.avm")
	if code := te.run("manifest", "-k", "4", "-block", "1024", "-property", "devtools", "-o", out, file); code != 0 {
		t.Fatalf("manifest: exit %d: %s", code, te.stderr)
	}
	enc, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse(enc)
	if err != nil {
		t.Fatalf("Parse(written manifest) = %v", err)
	}
	if err := m.CheckPublisher(identity.Self(priv).PublicKey()); err != nil {
		t.Errorf("CheckPublisher(the key used) = %v", err)
	}
	if m.Size != 5000 || m.K != 4 || m.BlockSize != 1024 || m.Generations() != 2 || m.Name != filepath.Base(file) || m.Property != "devtools" || m.FileHash != sha256.Sum256(data) {
		t.Errorf("manifest = size %d, k %d, B %d, %d generations, name %q, property %q", m.Size, m.K, m.BlockSize, m.Generations(), m.Name, m.Property)
	}
	if !strings.Contains(te.stdout.String(), "content   "+m.ID().String()) {
		t.Errorf("output lacks the content ID %s:\n%s", m.ID(), te.stdout)
	}

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"k = 0", []string{"manifest", "-k", "0", file}, 1, "k = 0"},
		{"k = 256", []string{"manifest", "-k", "256", file}, 1, "k = 256"},
		{"block not a multiple of 64", []string{"manifest", "-block", "1000", file}, 1, "block size = 1000"},
		{"block too large", []string{"manifest", "-block", "2097152", file}, 1, "block size = 2097152"},
		{"bad property", []string{"manifest", "-property", "Dev_Tools", file}, 1, "invalid property"},
		{"missing key", []string{"manifest", "-key", filepath.Join(t.TempDir(), "none"), file}, 1, "avalanche keygen"},
		{"missing file", []string{"manifest", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
		{"no file", []string{"manifest"}, 2, "exactly one FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			te2 := newTestEnv(t, nil)
			te2.vars["AVALANCHE_HOME"] = te.vars["AVALANCHE_HOME"]
			if code := te2.run(tt.args...); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, te2.stderr)
			}
			if !strings.Contains(te2.stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, te2.stderr)
			}
		})
	}
}

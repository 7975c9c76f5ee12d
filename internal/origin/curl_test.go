package origin

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCurl downloads published content with the curl command-line client:
// whole, by ranges, resumed, and by the browser-style /d/ URL with its
// Content-Disposition name. It skips when curl is not installed.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	f := newFixture(t, nil)
	data := randBytes(20, 50000)
	m := signed(t, "alpha", "tool setup.bin", data, keyAlpha)
	id := m.ID().String()

	// Publish with curl too, the way docs/origin.md shows it.
	dir := t.TempDir()
	manPath := filepath.Join(dir, "m.avm")
	filePath := filepath.Join(dir, "file.bin")
	os.WriteFile(manPath, m.Encoded(), 0o644)
	os.WriteFile(filePath, data, 0o644)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(curl, append([]string{"--silent", "--show-error"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.Output()
		return string(out), err
	}
	if out, err := run("--fail", "-X", "PUT", "-H", "Authorization: Bearer "+tokenAlpha, "--data-binary", "@"+manPath, f.srv.URL+"/v1/properties/alpha/manifests"); err != nil || !strings.Contains(out, id) {
		t.Fatalf("curl PUT manifest: %v %s", err, out)
	}
	if out, err := run("--fail", "-T", filePath, "-H", "Authorization: Bearer "+tokenAlpha, f.srv.URL+"/v1/properties/alpha/content/"+id); err != nil || !strings.Contains(out, `"complete": true`) {
		t.Fatalf("curl PUT content: %v %s", err, out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []byte
	}{
		{"whole", nil, data},
		{"start", []string{"-r", "0-99"}, data[:100]},
		{"middle", []string{"-r", "20000-29999"}, data[20000:30000]},
		{"end", []string{"-r", "49000-"}, data[49000:]},
		{"suffix", []string{"-r", "-123"}, data[len(data)-123:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+tc.name)
			if _, err := run(append(append([]string{"--fail", "-o", out}, tc.args...), f.srv.URL+"/v1/content/"+id)...); err != nil {
				t.Fatalf("curl: %v", err)
			}
			got, _ := os.ReadFile(out)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
	t.Run("resume", func(t *testing.T) {
		out := filepath.Join(dir, "resumed")
		os.WriteFile(out, data[:12345], 0o644)
		if _, err := run("--fail", "-C", "-", "-o", out, f.srv.URL+"/v1/content/"+id); err != nil {
			t.Fatalf("curl -C -: %v", err)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, data) {
			t.Errorf("resumed file differs (%d bytes)", len(got))
		}
	})
	t.Run("unsatisfiable range", func(t *testing.T) {
		out, _ := run("-o", "/dev/null", "-w", "%{http_code}", "-r", "60000-", f.srv.URL+"/v1/content/"+id)
		if out != "416" {
			t.Errorf("status = %q, want 416", out)
		}
	})
	t.Run("remote name", func(t *testing.T) {
		dl := filepath.Join(dir, "dl")
		os.Mkdir(dl, 0o755)
		cmd := exec.Command(curl, "--silent", "--show-error", "--fail", "-L", "-O", "-J", f.srv.URL+"/d/"+id+"/anything")
		cmd.Dir = dl
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("curl -OJ: %v %s", err, out)
		}
		got, err := os.ReadFile(filepath.Join(dl, "tool setup.bin"))
		if err != nil || !bytes.Equal(got, data) {
			ents, _ := os.ReadDir(dl)
			t.Errorf("curl -OJ saved %v (%v)", ents, err)
		}
	})
}

// TestGoClientResume checks a typical resuming client: HEAD for the ETag,
// then a Range request guarded by If-Range.
func TestGoClientResume(t *testing.T) {
	f := newFixture(t, nil)
	data := randBytes(21, 30000)
	m := signed(t, "alpha", "g.bin", data, keyAlpha)
	f.publish(t, "alpha", tokenAlpha, m, data)
	url := f.srv.URL + "/v1/content/" + m.ID().String()
	head, err := http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Range", "bytes=10000-")
	req.Header.Set("If-Range", head.Header.Get("ETag"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(buf.Bytes(), data[10000:]) {
		t.Errorf("resume = %s, %d bytes", resp.Status, buf.Len())
	}
	// An unknown route is a clean 404, a wrong method a 405.
	rec := httptest.NewRecorder()
	f.o.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/content/"+m.ID().String(), nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST content = %d, want 405", rec.Code)
	}
}

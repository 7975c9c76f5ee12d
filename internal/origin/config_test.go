package origin

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"avalanche/internal/manifest"
)

var pubAlphaHex = hex.EncodeToString([]byte(keyAlpha.Public().(ed25519.PublicKey)))

var configCases = []struct {
	name    string
	in      string
	wantErr bool
}{
	{"empty object", `{}`, false},
	{"one property", `{"properties": {"devtools": {"tokens": ["` + HashToken(tokenAlpha).String() + `"], "publishers": ["` + pubAlphaHex + `"], "quota_bytes": 1000}}}`, false},
	{"plain token", `{"properties": {"devtools": {"tokens": ["` + tokenAlpha + `"]}}}`, false},
	{"two properties", `{"properties": {"b": {"tokens": ["` + tokenBeta + `"]}, "a": {"tokens": ["` + tokenAlpha + `"]}}}`, false},
	{"not JSON", `properties: x`, true},
	{"trailing data", `{} {}`, true},
	{"unknown field", `{"properties": {}, "listen": ":80"}`, true},
	{"unknown property field", `{"properties": {"a": {"token": "x"}}}`, true},
	{"bad property name", `{"properties": {"Dev Tools": {}}}`, true},
	{"short token", `{"properties": {"a": {"tokens": ["short"]}}}`, true},
	{"token with space", `{"properties": {"a": {"tokens": ["0123456789 0123456789"]}}}`, true},
	{"bad sha256 token", `{"properties": {"a": {"tokens": ["sha256:abcd"]}}}`, true},
	{"non-hex sha256 token", `{"properties": {"a": {"tokens": ["sha256:` + strings.Repeat("zz", 32) + `"]}}}`, true},
	{"bad publisher", `{"properties": {"a": {"publishers": ["abcd"]}}}`, true},
	{"negative quota", `{"properties": {"a": {"quota_bytes": -1}}}`, true},
	{"token shared by two properties", `{"properties": {"a": {"tokens": ["` + tokenAlpha + `"]}, "b": {"tokens": ["` + HashToken(tokenAlpha).String() + `"]}}}`, true},
	{"quota not a number", `{"properties": {"a": {"quota_bytes": "1G"}}}`, true},
}

func TestParseConfig(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			props, err := ParseConfig([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseConfig = %+v, %v; want error %v", props, err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not wrap ErrConfig", err)
			}
		})
	}
	props, err := ParseConfig([]byte(configCases[3].in))
	if err != nil || len(props) != 2 || props[0].Name != "a" || props[1].Name != "b" {
		t.Fatalf("properties not sorted: %+v %v", props, err)
	}
	props, err = ParseConfig([]byte(configCases[1].in))
	if err != nil {
		t.Fatal(err)
	}
	p := props[0]
	if p.Name != "devtools" || p.QuotaBytes != 1000 || len(p.Tokens) != 1 || p.Tokens[0] != HashToken(tokenAlpha) || len(p.Publishers) != 1 || !p.Publishers[0].Equal(keyAlpha.Public()) {
		t.Errorf("ParseConfig = %+v", p)
	}
	if _, err := ParseConfig(bytes.Repeat([]byte(" "), MaxConfigBytes+1)); !errors.Is(err, ErrConfig) {
		t.Errorf("oversized config: %v", err)
	}
}

func TestTokens(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a == b || len(a) != 4+43 || !strings.HasPrefix(a, "avt_") {
		t.Errorf("NewToken = %q, %q", a, b)
	}
	if _, err := ParseToken(a); err != nil {
		t.Errorf("ParseToken(NewToken()) = %v", err)
	}
	h := HashToken(a)
	if got, err := ParseToken(h.String()); err != nil || got != h {
		t.Errorf("ParseToken(%q) = %v, %v", h.String(), got, err)
	}
	if strings.Contains(h.String(), a) {
		t.Error("Token.String reveals the secret")
	}
}

// FuzzParseConfig: any input is either a valid configuration or an error
// wrapping ErrConfig, never a panic.
func FuzzParseConfig(f *testing.F) {
	for _, tc := range configCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		props, err := ParseConfig(b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		if err := checkProperties(props); err != nil {
			t.Fatalf("ParseConfig accepted properties New refuses: %v", err)
		}
	})
}

// FuzzPutManifest sends arbitrary bytes as a manifest through the
// origin's handler: the answer is 201 only for a valid manifest of the
// property signed by an allowed key, and never a server error.
func FuzzPutManifest(f *testing.F) {
	good := signed(f, "alpha", "f.bin", randBytes(30, 5000), keyAlpha)
	f.Add(good.Encoded())
	f.Add(good.Encoded()[:len(good.Encoded())-1])
	f.Add(signed(f, "beta", "f.bin", randBytes(30, 5000), keyBeta).Encoded())
	f.Add(signed(f, "alpha", "f.bin", randBytes(30, 5000), keyOther).Encoded())
	f.Add([]byte("AVMF\x01\x00"))
	f.Add([]byte{})
	o, err := New(context.Background(), Config{DataDir: f.TempDir(), Properties: testProperties()})
	if err != nil {
		f.Fatal(err)
	}
	defer o.Close()
	h := o.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("PUT", "/v1/properties/alpha/manifests", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokenAlpha)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		case rec.Code == http.StatusCreated || rec.Code == http.StatusOK:
			e, _, err := o.store.Stat(mustID(t, rec.Body.Bytes()))
			if err != nil || e.Property != "alpha" {
				t.Fatalf("accepted manifest not stored for alpha: %v", err)
			}
		}
	})
}

// FuzzPutContent sends arbitrary bytes as the upload of a published
// manifest: 201 only for the exact file, never a server error, and
// nothing visible otherwise.
func FuzzPutContent(f *testing.F) {
	data := randBytes(31, 2*testK*testBS+10)
	m := signed(f, "alpha", "c.bin", data, keyAlpha)
	f.Add(data)
	f.Add(data[:len(data)-1])
	f.Add(append(bytes.Clone(data), 0))
	bad := bytes.Clone(data)
	bad[testK*testBS] ^= 1
	f.Add(bad)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		o, err := New(context.Background(), Config{DataDir: t.TempDir(), Properties: testProperties()})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if _, err := o.store.PutManifest(m, 0); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest("PUT", "/v1/properties/alpha/content/"+m.ID().String(), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokenAlpha)
		rec := httptest.NewRecorder()
		o.Handler().ServeHTTP(rec, req)
		ok := bytes.Equal(body, data)
		if rec.Code >= 500 || (rec.Code == http.StatusCreated) != ok {
			t.Fatalf("status %d for a body that matches: %v: %s", rec.Code, ok, rec.Body)
		}
		c, err := o.Open(m.ID())
		if (err == nil) != ok {
			t.Fatalf("Open: %v, want visible %v", err, ok)
		}
		if err == nil {
			c.Close()
		}
	})
}

// mustID returns the content ID of an Object in a JSON response body.
func mustID(t *testing.T, body []byte) manifest.ID {
	t.Helper()
	var obj Object
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	id, err := manifest.ParseID(obj.ID)
	if err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	return id
}

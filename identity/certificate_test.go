package identity

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestLoadCertificateStrict: the certificate file Init writes loads and verifies; one
// with a repeated, differently cased or unknown member is refused naming the file and
// the member, where encoding/json would let the last win or match it anyway.
func TestLoadCertificateStrict(t *testing.T) {
	dir := t.TempDir()
	res, err := Init(dir, "n", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, NodeCertFile)
	c, err := LoadCertificate(path)
	if err != nil || !reflect.DeepEqual(c, res.Node.Cert) {
		t.Fatalf("the file Init wrote: %v", err)
	}
	good, _ := os.ReadFile(path)
	body := string(good[1:])
	for _, tc := range []struct{ name, in, want string }{
		{"repeated member", `{"name":"mallory",` + body, `duplicate object member name "name"`},
		{"differently cased member", strings.Replace(string(good), `"name"`, `"Name"`, 1), `unknown object member name "Name"`},
		{"unknown member", `{"comment":"x",` + body, `unknown object member name "comment"`},
		{"data after the certificate", string(good) + "{}", "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), NodeCertFile)
			os.WriteFile(p, []byte(tc.in), 0o644)
			_, err := LoadCertificate(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("LoadCertificate = %v, want an error naming %s and saying %q", err, p, tc.want)
			}
		})
	}
}

// FuzzParseCertificate: whatever parseCertificate accepts reads the same once written
// back as Init writes it.
func FuzzParseCertificate(f *testing.F) {
	res, err := Init(f.TempDir(), "n", "", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.MarshalIndent(res.Node.Cert, "", "  ")
	f.Add(good)
	f.Add([]byte(`{"v":"sios-cert/1","v":"x"}`))
	f.Add([]byte(`{"V":"sios-cert/1","signature":{"ml-dsa-65":"AA==","ed25519":null}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := parseCertificate(in)
		if err != nil {
			return
		}
		again, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		c2, err := parseCertificate(again)
		if err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("written back, %s does not read the same: %v", in, err)
		}
	})
}

package node

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig: a config.json LoadConfig takes reads the same once written back as
// encoding/json writes it (no repeated, differently cased or unknown setting could be
// read another way), and LoadConfig never panics.
func FuzzLoadConfig(f *testing.F) {
	f.Add(`{"backend":"http://127.0.0.1:11434/v1","model":"m","backend_models":{"m":{"tools":false,"timeout":"300s"}}}`)
	f.Add(`{"retention":{"tenants":{"a":"1h"},"classifications":{"SECRET":"720h"}},"replicas":[{"node":"n","cadence":"1m"}]}`)
	f.Add(`{"oidc":[{"name":"corp","issuer":"https://idp.example/realms/x","audience":"sios","claims":{}}]}`)
	f.Add(`{"backend":"a","Backend":"b"}`)
	f.Add(`{"backend":"a","backend":"b"}`)
	f.Fuzz(func(t *testing.T, in string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(in), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(dir)
		if err != nil {
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ConfigFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := LoadConfig(dir)
		if err != nil {
			t.Fatalf("%s read; written back as %s, refused: %v", in, b, err)
		}
		if b2, _ := json.Marshal(again); !bytes.Equal(b, b2) {
			t.Fatalf("%s read as %s, then as %s", in, b, b2)
		}
	})
}

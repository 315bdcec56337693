package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigRefusesWhatItCannotHonour(t *testing.T) {
	for _, c := range []struct{ name, file, want string }{
		{"a misspelt key", `{"backend":"builtin","bakend":"x"}`, `unknown object member name "bakend"`},
		{"a removed setting", `{"audit_prompts":true}`, "audit_prompts is no longer a setting"},
		{"two values", `{} {}`, "trailing data after top-level value"},
		{"a differently cased key", `{"Backend":"http://127.0.0.1:11434/v1"}`, `unknown object member name "Backend"`},
		{"a repeated key", `{"backend":"builtin","backend":"http://127.0.0.1:11434/v1"}`, `duplicate object member name "backend"`},
		{"a repeated retention tenant", `{"retention":{"tenants":{"a":"1h","a":"2h"}}}`, `duplicate object member name "a"`},
		{"not JSON", `{"backend":`, "config.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadConfig(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"backend":"http://127.0.0.1:11434/v1","model":"m"}`), 0o600)
	if c, err := LoadConfig(dir); err != nil || c.Model != "m" {
		t.Fatalf("%+v %v", c, err)
	}
}

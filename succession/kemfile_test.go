package succession

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKEMKeyFileReadStrictly: a KEM key file with a repeated, differently cased or
// unknown member is refused naming it; encoding/json took the last seed, matched
// "Seed" and dropped the rest.
func TestKEMKeyFileReadStrictly(t *testing.T) {
	k, err := GenerateKEMKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := SaveKEMKey(good, k); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	doc := string(b)
	for i, c := range []struct{ old, new, want string }{
		{`"seed"`, `"Seed"`, `unknown object member name "Seed"`},
		{`"seed"`, `"note":"x","seed"`, `unknown object member name "note"`},
		{`"seed"`, `"seed":"AAAA","seed"`, `duplicate object member name "seed"`},
	} {
		if !strings.Contains(doc, c.old) {
			t.Fatalf("%q not in the key file %s", c.old, doc)
		}
		path := filepath.Join(dir, "k"+string(rune('a'+i))+".key")
		if err := os.WriteFile(path, []byte(strings.Replace(doc, c.old, c.new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKEMKey(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadKEMKey with %s = %v, want %q", c.new, err, c.want)
		}
	}
}

// FuzzLoadKEMKey: a KEM key file LoadKEMKey takes holds one key, which loads again
// once saved as SaveKEMKey writes it.
func FuzzLoadKEMKey(f *testing.F) {
	k, err := GenerateKEMKey()
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "seed.key")
	if err := SaveKEMKey(path, k); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add(bytes.Replace(b, []byte(`"seed"`), []byte(`"Seed"`), 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "k.key")
		if err := os.WriteFile(p, in, 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := LoadKEMKey(p)
		if err != nil {
			return
		}
		again := filepath.Join(dir, "again.key")
		if err := SaveKEMKey(again, key); err != nil {
			t.Fatal(err)
		}
		k2, err := LoadKEMKey(again)
		if err != nil || !bytes.Equal(k2.seed, key.seed) {
			t.Fatalf("a key LoadKEMKey took does not load again once saved: %v", err)
		}
	})
}

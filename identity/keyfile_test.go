package identity

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeyFileReadStrictly: a plain key file with a repeated, differently cased or
// unknown member is refused naming it; encoding/json took the last seed, matched
// "Kind" and dropped the rest.
func TestKeyFileReadStrictly(t *testing.T) {
	k, err := GenerateKey(KindNode)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := SaveKey(good, k); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for i, c := range []struct{ old, new, want string }{
		{`"kind"`, `"Kind"`, `unknown object member name "Kind"`},
		{`"kind"`, `"comment":"x","kind"`, `unknown object member name "comment"`},
		{`"mldsa65_seed"`, `"ed25519_seed":"` + strings.Repeat("A", 43) + `=","mldsa65_seed"`, `duplicate object member name "ed25519_seed"`},
	} {
		if !strings.Contains(doc, c.old) {
			t.Fatalf("%q not in the key file %s", c.old, doc)
		}
		path := filepath.Join(dir, "k"+string(rune('a'+i))+".key")
		if err := os.WriteFile(path, []byte(strings.Replace(doc, c.old, c.new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(path, KindNode); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadKey with %s = %v, want an error naming %s and saying %q", c.new, err, path, c.want)
		}
	}
}

// FuzzLoadKey: a key file LoadKey takes holds exactly one key, which it loads again
// once saved as SaveKey writes it.
func FuzzLoadKey(f *testing.F) {
	k, err := GenerateKey(KindNode)
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "seed.key")
	if err := SaveKey(path, k); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add([]byte(strings.Replace(string(b), `"kind"`, `"Kind"`, 1)))
	f.Add([]byte(`{"v":"sios-tpm-key/1"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "k.key")
		if err := os.WriteFile(p, in, 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := LoadKey(p, KindNode)
		if err != nil {
			return
		}
		again := filepath.Join(dir, "again.key")
		if err := SaveKey(again, key); err != nil {
			t.Fatal(err)
		}
		k2, err := LoadKey(again, KindNode)
		if err != nil || !k2.Public().Equal(key.Public()) {
			t.Fatalf("a key LoadKey took does not load again once saved: %v", err)
		}
	})
}

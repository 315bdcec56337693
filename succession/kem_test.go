package succession

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
)

func TestKEMKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, err := OpenKEMKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KEMKeyFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %04o, want 0600", path, st.Mode().Perm())
	}
	again, err := OpenKEMKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Public().Bytes()) != string(k.Public().Bytes()) {
		t.Fatal("the second OpenKEMKey made a new key instead of loading the first")
	}
	if err := SaveKEMKey(path, k); err == nil {
		t.Fatal("SaveKEMKey overwrote an existing key file")
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	var kfe *identity.KeyFileError
	if _, err := LoadKEMKey(path); !errors.As(err, &kfe) || !strings.Contains(kfe.Hint, "chmod 600") {
		t.Fatalf("group-readable key file: %v", err)
	}
	for name, content := range map[string]string{
		"corrupt":       "{",
		"wrong version": `{"v":"sios-kem-key/9","kem":"MLKEM768-X25519","seed":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		"wrong kem":     `{"v":"sios-kem-key/1","kem":"X25519","seed":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		"short seed":    `{"v":"sios-kem-key/1","kem":"MLKEM768-X25519","seed":"AAAA"}`,
		"huge":          strings.Repeat(" ", MaxKEMKeyFile+1),
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKEMKey(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("%s key file: %v (want an error naming the file)", name, err)
		}
	}
}

func TestKEMStatement(t *testing.T) {
	f := newFixture(t)
	node := f.obs[0]
	b, err := SignKEM(f.keys[node], node, f.kemPub[node], time.Unix(1767225600, 0))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseKEM(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(f.pub); err != nil {
		t.Fatal(err)
	}
	if string(s.Public().Bytes()) != string(f.kemPub[node].Bytes()) {
		t.Fatal("the statement's key is not the node's")
	}
	// Signed by another node's key.
	if _, err := SignKEM(f.keys[f.obs[1]], node, f.kemPub[node], time.Now()); err == nil {
		t.Fatal("signed a statement for another node")
	}
	// A key that is not an X-Wing key.
	bad := strings.Replace(string(b), `"kem":"MLKEM768-X25519"`, `"kem":"X25519"`, 1)
	if _, err := ParseKEM([]byte(bad)); err == nil || !strings.Contains(err.Error(), "is not MLKEM768-X25519") {
		t.Fatalf("wrong kem: %v", err)
	}
}

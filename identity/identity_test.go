package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

func TestKeyFileRoundTripAndPermissions(t *testing.T) {
	k, err := GenerateKey(KindNode)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "k.key")
	if err := SaveKey(path, k); err != nil {
		t.Fatal(err)
	}
	if err := SaveKey(path, k); err == nil {
		t.Fatal("SaveKey overwrote an existing key file")
	}
	got, err := LoadKey(path, KindNode)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Public().Equal(k.Public()) {
		t.Fatal("loaded key differs")
	}
	cases := []struct {
		name  string
		setup func()
		kind  string
		want  string
	}{
		{"group readable", func() { os.Chmod(path, 0o640) }, KindNode, "mode 0640"},
		{"world readable", func() { os.Chmod(path, 0o604) }, KindNode, "mode 0604"},
		{"wrong kind", func() { os.Chmod(path, 0o600) }, KindRoot, "holds a node key, want a root key"},
		{"corrupt", func() { os.WriteFile(path, []byte("garbage"), 0o600) }, KindNode, "corrupt"},
		{"missing", func() { os.Remove(path) }, KindNode, "does not exist"},
	}
	for _, c := range cases {
		c.setup()
		_, err := LoadKey(path, c.kind)
		var kf *KeyFileError
		if !errors.As(err, &kf) || kf.Path != path || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a KeyFileError naming %s and %q", c.name, err, path, c.want)
		}
	}
}

func TestSignaturesAreDomainSeparated(t *testing.T) {
	k, _ := GenerateKey(KindNode)
	sig := k.Sign("oar/1 seal", []byte("body"))
	if err := k.Public().Verify("oar/1 seal", []byte("body"), sig); err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify("sios-cert/1", []byte("body"), sig); err == nil {
		t.Fatal("a seal signature verified as a certificate signature")
	}
	bad := sig
	bad.Ed25519 = append([]byte(nil), sig.Ed25519...)
	bad.Ed25519[0] ^= 1
	if err := k.Public().Verify("oar/1 seal", []byte("body"), bad); err == nil {
		t.Fatal("a signature with a bad Ed25519 half verified")
	}
}

func TestCertificateBindsKeysToRoot(t *testing.T) {
	root, _ := GenerateKey(KindRoot)
	node, _ := GenerateKey(KindNode)
	other, _ := GenerateKey(KindNode)
	c, err := Issue(root, node.Public(), "n1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, r, err := c.Verify(); err != nil || !r.Equal(root.Public()) {
		t.Fatalf("Verify: %v", err)
	}
	if _, err := Issue(node, other.Public(), "x", time.Now()); err == nil {
		t.Fatal("a node key issued a certificate")
	}
	swapped := c
	swapped.Node = other.Public().JSON()
	swapped.NodeID = other.Public().ID(NodePrefix)
	if _, _, err := swapped.Verify(); err == nil {
		t.Fatal("a certificate with swapped node keys verified")
	}
	renamed := c
	renamed.Name = "n2"
	if _, _, err := renamed.Verify(); err == nil {
		t.Fatal("a renamed certificate verified")
	}
}

func TestInitResumesAfterAnInterruptedInit(t *testing.T) {
	dir := t.TempDir()
	res, err := Init(dir, "a", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rootBefore := res.Node.Root
	// Simulate a crash before the node key was written: only the cert and root remain.
	os.Remove(filepath.Join(dir, NodeKeyFile))
	res2, err := Init(dir, "a", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Node.Root.Equal(rootBefore) {
		t.Fatal("a resumed init replaced the institution root key")
	}
	if _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, "a", "", time.Now()); !errors.Is(err, ErrExists) {
		t.Fatalf("third init: %v, want ErrExists", err)
	}
}

func TestCheckpointNoteSignatures(t *testing.T) {
	k, _ := GenerateKey(KindNode)
	ed, ml := k.NoteSigners("sios/audit/x")
	msg, err := note.Sign(&note.Note{Text: "sios/audit/x\n1\nAAAA\n"}, ed, ml)
	if err != nil {
		t.Fatal(err)
	}
	ved, vml := k.Public().NoteVerifiers("sios/audit/x")
	n, err := note.Open(msg, note.VerifierList(ved, vml))
	if err != nil || len(n.Sigs) != 2 {
		t.Fatalf("note.Open: %v (%d signatures)", err, len(n.Sigs))
	}
	// The standard vkey string works with the stock Go verifier.
	vkey, err := k.Public().Ed25519VerifierKey("sios/audit/x")
	if err != nil {
		t.Fatal(err)
	}
	std, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(std)); err != nil {
		t.Fatalf("stock verifier: %v", err)
	}
	if std.KeyHash() != ved.KeyHash() {
		t.Fatal("Ed25519 key ID differs from the signed-note standard")
	}
}

// InitSealed and LoadSealed with a stand-in for identity/tpm: the seeds are "sealed" by
// keeping them in this test's memory, and the file holds only a reference.
func TestInitSealedLoadSealed(t *testing.T) {
	dir := t.TempDir()
	sealed := map[string]*PrivateKey{}
	seal := func(k *PrivateKey) ([]byte, error) {
		ref := k.Public().ID(NodePrefix)
		sealed[ref] = k
		return []byte(`{"v":"` + SealedKeyVersion + `","ref":"` + ref + `"}`), nil
	}
	unseal := func(b []byte) (*PrivateKey, error) {
		for ref, k := range sealed {
			if strings.Contains(string(b), ref) {
				return k, nil
			}
		}
		return nil, errors.New("not sealed here")
	}
	res, err := InitSealed(dir, "n", "", time.Now(), seal)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, NodeKeyFile)
	st, err := os.Stat(keyPath)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("node.key: %v (mode %v), want mode 0600", err, st.Mode())
	}
	m, _ := res.Node.Key.Seeds()
	if b, _ := os.ReadFile(keyPath); strings.Contains(string(b), string(m[:])) {
		t.Fatal("node.key holds the seed")
	}

	_, err = Load(dir)
	var kf *KeyFileError
	if !errors.Is(err, ErrKeySealed) || !errors.As(err, &kf) || kf.Path != keyPath || kf.Hint == "" {
		t.Fatalf("Load of a sealed identity: %v, want ErrKeySealed naming %s with a hint", err, keyPath)
	}
	n, err := LoadSealed(dir, unseal)
	if err != nil {
		t.Fatal(err)
	}
	if n.ID() != res.Node.ID() || !n.Public().Equal(res.Node.Public()) {
		t.Fatal("LoadSealed loaded another node")
	}

	other, _ := GenerateKey(KindNode)
	if _, err := LoadSealed(dir, func([]byte) (*PrivateKey, error) { return other, nil }); err == nil || !strings.Contains(err.Error(), "certifies other keys") {
		t.Fatalf("LoadSealed with another key unsealed: %v, want the certificate check to refuse it", err)
	}
	root, _ := GenerateKey(KindRoot)
	if _, err := LoadSealed(dir, func([]byte) (*PrivateKey, error) { return root, nil }); err == nil || !strings.Contains(err.Error(), "want a node key") {
		t.Fatalf("LoadSealed with a root key unsealed: %v", err)
	}
	_, err = LoadSealed(dir, func([]byte) (*PrivateKey, error) { return nil, errors.New("the TPM said no") })
	if !errors.As(err, &kf) || kf.Path != keyPath || !strings.Contains(err.Error(), "the TPM said no") {
		t.Fatalf("LoadSealed when unsealing fails: %v, want a KeyFileError naming %s", err, keyPath)
	}
	os.Chmod(keyPath, 0o644)
	if _, err := LoadSealed(dir, unseal); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("LoadSealed of a world-readable key file: %v", err)
	}
	if _, err := InitSealed(dir, "n", "", time.Now(), seal); !errors.Is(err, ErrExists) {
		t.Fatalf("InitSealed over an identity: %v, want ErrExists", err)
	}
}

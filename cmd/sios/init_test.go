package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInitCreatesIdentityAndNeverOverwrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r := sios(t, dir, "init", "--name", "alpha")
	if r.code != 0 {
		t.Fatalf("init: %d %s", r.code, r.stderr)
	}
	nodeID := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(nodeID, "node_") {
		t.Fatalf("init printed %q, want a node id", nodeID)
	}
	if !strings.Contains(r.stderr, "root.key") || !strings.Contains(r.stderr, "offline") {
		t.Fatalf("init did not point at the new root key: %s", r.stderr)
	}
	for _, f := range []string{"node.key", "root.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %o, want 600", f, st.Mode().Perm())
		}
	}
	id := decode[map[string]string](t, ok(t, dir, "id", "--json"))
	for _, k := range []string{"node_id", "mldsa65_public_key", "ed25519_public_key", "root"} {
		if id[k] == "" {
			t.Fatalf("id --json lacks %q: %v", k, id)
		}
	}
	if id["node_id"] != nodeID {
		t.Fatalf("id says %s, init said %s", id["node_id"], nodeID)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "node.key"))
	fails(t, 1, dir, []string{"init"}, "never overwrites")
	after, _ := os.ReadFile(filepath.Join(dir, "node.key"))
	if string(before) != string(after) {
		t.Fatal("a second init changed node.key")
	}
}

func TestInitEnrolsUnderAnExistingRoot(t *testing.T) {
	a := initNode(t)
	js := decode[map[string]string](t, ok(t, filepath.Join(t.TempDir(), "b"), "init", "--root", filepath.Join(a, "root.key"), "--json"))
	if js["root_key_file"] != "" {
		t.Fatalf("init --root created a root key: %v", js)
	}
	rootA := decode[map[string]string](t, ok(t, a, "id", "--json"))["root"]
	if js["root_id"] != rootA {
		t.Fatalf("enrolled under %s, want %s", js["root_id"], rootA)
	}
	// A node key is not a root key.
	fails(t, 1, filepath.Join(t.TempDir(), "c"), []string{"init", "--root", filepath.Join(a, "node.key")}, "node.key", "want a root key")
}

func TestKeyFileProblemsNameTheFile(t *testing.T) {
	dir := initNode(t)
	key := filepath.Join(dir, "node.key")
	os.Chmod(key, 0o644)
	r := fails(t, 1, dir, []string{"audit", "append", "--action", "a", "--actor", "u"}, key, "mode 0644")
	if !strings.Contains(r.stderr, "sios: hint: ") || !strings.Contains(r.stderr, "chmod 600") {
		t.Fatalf("no chmod hint: %s", r.stderr)
	}
	os.Chmod(key, 0o600)
	os.WriteFile(key, []byte("{not json"), 0o600)
	fails(t, 1, dir, []string{"audit", "append", "--action", "a", "--actor", "u"}, key, "corrupt")
	os.Remove(key)
	fails(t, 1, dir, []string{"audit", "append", "--action", "a", "--actor", "u"}, "no node identity", "init' first")
	fails(t, 1, filepath.Join(t.TempDir(), "root-missing"), []string{"init", "--root", filepath.Join(dir, "nope.key")}, "nope.key")
}

func TestUsageErrorsExitTwo(t *testing.T) {
	dir := initNode(t)
	for _, args := range [][]string{
		{"frobnicate"},
		{"audit"},
		{"audit", "append"},
		{"audit", "show"},
		{"audit", "show", "abc"},
		{"audit", "append", "--action", "a", "--actor", "u", "extra"},
		{"audit", "export"},
		{"init", "--bogus"},
	} {
		fails(t, 2, dir, args)
	}
}

func TestRootExportAndTrust(t *testing.T) {
	a := initNode(t)
	b := initNode(t)
	rootFile := filepath.Join(t.TempDir(), "a-root.json")
	ok(t, a, "root", "export", "--out", rootFile)
	ok(t, b, "trust", "add-root", rootFile)
	list := decode[[]map[string]any](t, ok(t, b, "trust", "list", "--json"))
	rootA := decode[map[string]string](t, ok(t, a, "id", "--json"))["root"]
	if len(list) != 2 || list[1]["root_id"] != rootA || list[0]["own"] != true {
		t.Fatalf("trust list: %v", list)
	}
	os.WriteFile(rootFile, []byte(`{"v":"sios-root/1"}`), 0o644)
	fails(t, 1, b, []string{"trust", "add-root", rootFile}, rootFile)
}

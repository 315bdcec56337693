package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrincipalStore(t *testing.T) {
	dir := t.TempDir()
	ps, err := OpenPrincipals(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, sp, err := ps.Add(NewPrincipal{Tenant: "t1", ID: "alice", Clearance: "SECRET", Roles: []string{"analyst"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, APIKeyPrefix) || sp.KeyHashes[0] == key {
		t.Fatalf("key %q, stored %q", key, sp.KeyHashes)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, PrincipalsFile))
	if strings.Contains(string(raw), key[len(APIKeyPrefix):]) {
		t.Fatal("the store holds the API key itself")
	}
	if st, _ := os.Stat(filepath.Join(dir, PrincipalsFile)); st.Mode().Perm() != 0o600 {
		t.Fatalf("store mode %o", st.Mode().Perm())
	}
	p, ok := ps.Authenticate(key)
	if !ok || p.ID != "alice" || p.Tenant != "t1" || p.Clearance != Secret {
		t.Fatalf("Authenticate: %+v %v", p, ok)
	}
	for _, bad := range []string{"", "sios_", key + "x", strings.ToUpper(key), "Bearer " + key} {
		if _, ok := ps.Authenticate(bad); ok {
			t.Fatalf("authenticated %q", bad)
		}
	}
	if _, _, err := ps.Add(NewPrincipal{Tenant: "t1", ID: "alice", Clearance: "OFFICIAL"}, time.Now()); !errors.Is(err, ErrPrincipalExists) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, np := range []NewPrincipal{
		{Tenant: "t1", ID: "bad id", Clearance: "OFFICIAL"},
		{Tenant: "", ID: "x", Clearance: "OFFICIAL"},
		{Tenant: "t1", ID: "x", Clearance: "PUBLIC"},
		{Tenant: "t1", ID: "x", Clearance: "OFFICIAL", Kind: "robot"},
		{Tenant: "t1", ID: "x", Clearance: "OFFICIAL", Roles: []string{"a b"}},
	} {
		if _, _, err := ps.Add(np, time.Now()); err == nil {
			t.Errorf("accepted %+v", np)
		}
	}
	// Another process (another store on the same file) adds a principal; Refresh sees it.
	other, _ := OpenPrincipals(dir)
	key2, _, err := other.Add(NewPrincipal{Tenant: "t2", ID: "svc", Kind: "service", Clearance: "OFFICIAL"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps.Authenticate(key2); ok {
		t.Fatal("saw the other store's principal before a refresh")
	}
	// The modification time may not have moved on a coarse clock: the size did.
	if err := ps.Refresh(); err != nil {
		t.Fatal(err)
	}
	if p, ok := ps.Authenticate(key2); !ok || p.ID != "svc" {
		t.Fatal("Refresh did not pick up the other store's principal")
	}
	if got := len(ps.List()); got != 2 {
		t.Fatalf("List: %d principals", got)
	}
}

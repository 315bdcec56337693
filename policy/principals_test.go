package policy

import (
	"encoding/json"
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
	if !strings.HasPrefix(key, APIKeyPrefix) || len(sp.Keys) != 1 || sp.Keys[0].Hash == key || sp.Keys[0].Name != "default" {
		t.Fatalf("key %q, stored %+v", key, sp.Keys)
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

// A principal's keys have a life: rotated, expiring, revoked with the principal's
// removal or disabling — each effective at once — and nothing changes when the change's
// record cannot be written.
func TestPrincipalLifecycle(t *testing.T) {
	dir := t.TempDir()
	ps, _ := OpenPrincipals(dir)
	now := time.Now()
	first, _, err := ps.Add(NewPrincipal{Tenant: "t", ID: "bob", Clearance: "OFFICIAL"}, now)
	if err != nil {
		t.Fatal(err)
	}
	_, ci, err := ps.ChangeRecorded("t", "bob", Change{RotateKey: "ci", Expires: now.Add(time.Hour)}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{"default": first, "ci": ci} {
		if _, ok := ps.Authenticate(key); !ok {
			t.Fatalf("key %s does not work", name)
		}
	}
	// Rotating "default" revokes the old default key, keeps ci.
	_, second, _ := ps.ChangeRecorded("t", "bob", Change{RotateKey: "default"}, now, nil)
	if _, ok := ps.Authenticate(first); ok {
		t.Fatal("the rotated key still works")
	}
	if _, ok := ps.Authenticate(second); !ok {
		t.Fatal("the new key does not work")
	}
	boom := errors.New("ledger down")
	if _, _, err := ps.ChangeRecorded("t", "bob", Change{Remove: true}, now, func(*StoredPrincipal) error { return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, ok := ps.Authenticate(second); !ok {
		t.Fatal("a removal whose record failed removed the principal")
	}
	yes, no := true, false
	ps.ChangeRecorded("t", "bob", Change{Disable: &yes}, now, nil)
	if _, ok := ps.Authenticate(second); ok {
		t.Fatal("a disabled principal's key works")
	}
	ps.ChangeRecorded("t", "bob", Change{Disable: &no, Clearance: "SECRET", Roles: &[]string{"auditor"}}, now, nil)
	if p, ok := ps.Authenticate(second); !ok || p.Clearance != Secret || p.Roles[0] != "auditor" {
		t.Fatalf("%+v %v", p, ok)
	}
	// Another process's view: a store reopened from the file agrees.
	ps2, _ := OpenPrincipals(dir)
	if _, ok := ps2.Authenticate(second); !ok {
		t.Fatal("the change is not on disk")
	}
	ps.ChangeRecorded("t", "bob", Change{Remove: true}, now, nil)
	if _, ok := ps.Authenticate(second); ok {
		t.Fatal("a removed principal's key works")
	}
	if _, _, err := ps.ChangeRecorded("t", "bob", Change{Remove: true}, now, nil); !errors.Is(err, ErrNoPrincipal) {
		t.Fatal(err)
	}
	// An expired key stops working.
	k, _, _ := ps.Add(NewPrincipal{Tenant: "t", ID: "carol", Clearance: "OFFICIAL"}, now)
	_, short, _ := ps.ChangeRecorded("t", "carol", Change{RotateKey: "short", Expires: now.Add(50 * time.Millisecond)}, now, nil)
	time.Sleep(100 * time.Millisecond)
	if _, ok := ps.Authenticate(short); ok {
		t.Fatal("an expired key works")
	}
	if _, ok := ps.Authenticate(k); !ok {
		t.Fatal("the other key stopped too")
	}
}

// A store written by sios-principals/1 (key_hashes) still authenticates, and is
// written back in the new form.
func TestPrincipalStoreVersion1(t *testing.T) {
	dir := t.TempDir()
	ps, _ := OpenPrincipals(dir)
	key, _, _ := ps.Add(NewPrincipal{Tenant: "t", ID: "old", Clearance: "OFFICIAL"}, time.Now())
	raw, _ := os.ReadFile(filepath.Join(dir, PrincipalsFile))
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	p := doc["principals"].([]any)[0].(map[string]any)
	keys := p["keys"].([]any)
	p["key_hashes"] = []any{keys[0].(map[string]any)["sha256"]}
	delete(p, "keys")
	doc["v"] = "sios-principals/1"
	b, _ := json.Marshal(doc)
	os.WriteFile(filepath.Join(dir, PrincipalsFile), b, 0o600)
	ps2, err := OpenPrincipals(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps2.Authenticate(key); !ok {
		t.Fatal("a version 1 key no longer works")
	}
}

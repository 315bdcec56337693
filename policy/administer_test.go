package policy

import (
	"crypto/sha256"
	"testing"
	"time"
)

// Administering a principal (the console's principal changes) is Cedar's admin action
// on a Sios::Principal resource: the default policies give it to the role admin only,
// and an operator can narrow it by the resource's tenant.
func TestAdministerAPrincipal(t *testing.T) {
	e, err := LoadBytes("default.cedar", Defaults())
	if err != nil {
		t.Fatal(err)
	}
	req := func(roles []string, tenant string) Request {
		return Request{
			Principal: Principal{ID: "ops", Tenant: "default", Clearance: TopSecret, Roles: roles},
			Action:    ActionAdmin,
			Resource:  Resource{Type: ResourcePrincipal, ID: tenant + "/dr.x", Tenant: tenant, Classification: Official},
			Context:   Context{Tenant: "default", DataClassification: Official, TargetAccreditation: TopSecret},
		}
	}
	if d := e.Decide(req([]string{"admin"}, "hospital")); !d.Allow || len(d.Reasons) != 1 || d.Reasons[0] != "permit-admins" {
		t.Fatalf("an admin: %+v", d)
	}
	if d := e.Decide(req([]string{"clinician"}, "hospital")); d.Allow || !d.Default {
		t.Fatalf("a non-admin: %+v", d)
	}
	narrow, err := LoadBytes("narrow.cedar", append(Defaults(), []byte(`
@id("forbid-admin-other-tenants")
forbid (principal, action == Sios::Action::"admin", resource is Sios::Principal)
when { resource.tenant != principal.tenant };`)...))
	if err != nil {
		t.Fatal(err)
	}
	if d := narrow.Decide(req([]string{"admin"}, "hospital")); d.Allow || d.Reasons[0] != "forbid-admin-other-tenants" {
		t.Fatalf("a tenant-scoped admin on another tenant: %+v", d)
	}
	if d := narrow.Decide(req([]string{"admin"}, "default")); !d.Allow {
		t.Fatalf("a tenant-scoped admin on its own tenant: %+v", d)
	}
}

// A console session keeps a key's hash; AuthenticateHash fails as soon as the key
// would.
func TestAuthenticateHash(t *testing.T) {
	ps, err := OpenPrincipals(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	key, _, err := ps.Add(NewPrincipal{Tenant: "t", ID: "alice", Clearance: "SECRET"}, now)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(key))
	if p, name, ok := ps.AuthenticateHash(h); !ok || p.ID != "alice" || name != "default" {
		t.Fatalf("%+v %q %v", p, name, ok)
	}
	yes := true
	if _, _, err := ps.ChangeRecorded("t", "alice", Change{Disable: &yes}, now, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := ps.AuthenticateHash(h); ok {
		t.Fatal("a disabled principal's key hash authenticates")
	}
	no := false
	ps.ChangeRecorded("t", "alice", Change{Disable: &no}, now, nil)
	if _, _, ok := ps.AuthenticateHash(h); !ok {
		t.Fatal("enabled again, the key does not authenticate")
	}
	_, newKey, err := ps.ChangeRecorded("t", "alice", Change{RotateKey: "default", Expires: now.Add(time.Hour)}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := ps.AuthenticateHash(h); ok {
		t.Fatal("a rotated-out key's hash authenticates")
	}
	if _, name, ok := ps.AuthenticateHash(sha256.Sum256([]byte(newKey))); !ok || name != "default" {
		t.Fatal("the new key's hash does not authenticate")
	}
	if _, _, ok := ps.AuthenticateHash([32]byte{}); ok {
		t.Fatal("a hash of no key authenticates")
	}
}

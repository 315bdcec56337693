package invoke

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/succession"
)

// withKeeper gives h's pipeline a role keeper on a fleet of two nodes of one
// institution (h's node and a peer whose identity record its log holds), and returns
// the keeper, the peer's id and a function that moves the keeper's clock on.
func withKeeper(t *testing.T, h *harness) (*roles.Keeper, string, func(time.Duration)) {
	t.Helper()
	peer, err := identity.Init(filepath.Join(t.TempDir(), "peer"), "peer", filepath.Join(h.dir, identity.RootKeyFile), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	log := fleet.NewLog()
	pf, err := fleet.OpenPublisher(filepath.Join(t.TempDir(), "peer-feed"), peer.Node, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pf.Records(0) {
		if _, err := log.Add(r, fleet.NewTrust(h.id.Root)); err != nil {
			t.Fatal(err)
		}
	}
	own, err := fleet.OpenPublisher(filepath.Join(h.dir, "fleet", "feed"), h.id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kem, err := succession.OpenKEMKey(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	k, err := roles.New(roles.Config{Identity: h.id, KEM: kem, Dir: filepath.Join(h.dir, "roles"), Now: clock,
		Carrier: &roles.FleetCarrier{Node: h.id, Feed: own, Log: log, Fleet: func() *fleet.Fleet { return nil }},
		Audit: func(ctx context.Context, r *oar.Record) (*oar.Receipt, error) {
			rc, _, err := h.rec.Append(ctx, r)
			return rc, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.p.SetRoles(k)
	return k, peer.Node.ID(), advance
}

func (h *harness) key(t *testing.T, id string, roles ...string) string {
	t.Helper()
	key, _, err := h.ps.Add(policy.NewPrincipal{Tenant: "hospital", ID: id, Clearance: "SECRET", Roles: roles}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func (h *harness) who(t *testing.T, key string) *policy.Principal {
	t.Helper()
	pr, err := h.p.Authenticate(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func TestAuthorityAndMemoryFollowTheRole(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	k, peer, advance := withKeeper(t, h)
	ctx := context.Background()
	admin, okafor := h.key(t, "admin", "admin"), h.key(t, "dr.okafor")
	li := h.key(t, "dr.li", "guardian") // a stored role of a chartered name counts for nothing
	adminA, adminB := h.key(t, "admin.a"), h.key(t, "admin.b")

	spec := &roles.Spec{Name: "guardian", Holder: "dr.okafor", Successors: []string{"dr.li"}, Observers: []string{h.id.ID(), peer},
		K: 2, Admins: []string{"admin.a", "admin.b"}, SuspectAfter: 3600, Wait: 3600, AcceptWithin: 3600}
	_, err := h.p.Role(ctx, h.who(t, li), RoleAct{Act: RoleActDefine, Spec: spec})
	if e := outcome(t, err, CodePolicyDenied); e.Receipt == nil {
		t.Fatal("a refused definition has no receipt")
	}
	if rs := h.rec.byAction(oar.ActionRoleDefine); len(rs) != 1 || rs[0].Decision.Effect != "deny" {
		t.Fatalf("the refused definition is not recorded: %v", rs)
	}
	if _, err := h.p.Role(ctx, h.who(t, admin), RoleAct{Act: RoleActDefine, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	has := func(key string) bool { return slices.Contains(h.who(t, key).Roles, "guardian") }
	if !has(okafor) || has(li) {
		t.Fatalf("before any handover: okafor %v, li %v; want the charter's holder alone", has(okafor), has(li))
	}
	advance(time.Second) // a presence in the charter's own second is no news
	has(okafor)
	if r := h.rec.byAction(oar.ActionRolePresence); len(r) != 0 {
		t.Fatal("a presence was published before the loop ran")
	}
	k.Step(ctx) // okafor authenticated: the loop publishes a presence
	if r := h.rec.byAction(oar.ActionRolePresence); len(r) != 1 {
		t.Fatalf("the holder's requests made %d presences, want 1", len(r))
	}

	// The role's memory: its holder's alone, on every read path.
	for subject, text := range map[string]string{"role:guardian": "guardian handbook: breach escalation", "patient-7": "handbook for patient 7"} {
		if _, _, err := h.mem.Add(ctx, oar.Actor{ID: "operator"}, &oar.Decision{Effect: "allow", Policies: []string{"operator"}},
			memory.NewMemory{Tenant: "hospital", Subject: subject, Classification: policy.Official, Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	subjects := func(key string) []string {
		res, _, err := h.p.MemorySearch(ctx, h.who(t, key), "", "handbook", 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range res {
			out = append(out, r.Subject)
		}
		slices.Sort(out)
		return out
	}
	if got := subjects(okafor); !slices.Equal(got, []string{"patient-7", "role:guardian"}) {
		t.Fatalf("the holder's search across subjects found %v", got)
	}
	if got := subjects(li); !slices.Equal(got, []string{"patient-7"}) {
		t.Fatalf("a non-holder's search across subjects found %v", got)
	}
	if _, _, err := h.p.MemorySearch(ctx, h.who(t, li), "role:guardian", "handbook", 10); err == nil {
		t.Fatal("a non-holder searched the role's memory by subject")
	} else {
		outcome(t, err, CodePolicyDenied)
	}
	if _, _, err := h.p.MemoryExport(ctx, h.who(t, li), "role:guardian"); err == nil {
		t.Fatal("a non-holder exported the role's memory")
	}

	// k admins remove the holder; the successor accepts: authority and memory move.
	if _, err := h.p.Role(ctx, h.who(t, adminA), RoleAct{Act: RoleActRemove, Name: "guardian", Reason: "resigned"}); err != nil {
		t.Fatal(err)
	}
	if !has(okafor) {
		t.Fatal("one admin's removal of k=2 moved the role")
	}
	if _, err := h.p.Role(ctx, h.who(t, li), RoleAct{Act: RoleActAccept, Name: "guardian"}); err == nil {
		t.Fatal("a successor accepted before any handover")
	} else if e := outcome(t, err, CodePolicyDenied); e.Receipt == nil {
		t.Fatal("refusal without a receipt")
	}
	out, err := h.p.Role(ctx, h.who(t, adminB), RoleAct{Act: RoleActRemove, Name: "guardian", Reason: "resigned"})
	if err != nil {
		t.Fatal(err)
	}
	if out.State.State != succession.StateHandedOver {
		t.Fatalf("k removals: %s", out.State.State)
	}
	if has(okafor) || has(li) {
		t.Fatal("while the role is offered and not accepted, nobody holds it")
	}
	if _, err := h.p.Role(ctx, h.who(t, li), RoleAct{Act: RoleActAccept, Name: "guardian"}); err != nil {
		t.Fatal(err)
	}
	if has(okafor) || !has(li) {
		t.Fatalf("after the acceptance: okafor %v, li %v; want li alone", has(okafor), has(li))
	}
	if got := subjects(li); !slices.Equal(got, []string{"patient-7", "role:guardian"}) {
		t.Fatalf("the new holder's search found %v", got)
	}
	if got := subjects(okafor); !slices.Equal(got, []string{"patient-7"}) {
		t.Fatalf("the former holder's search found %v", got)
	}
	// The former holder can no longer act as the holder.
	_, err = h.p.Role(ctx, h.who(t, okafor), RoleAct{Act: RoleActRefute, Name: "guardian", Reason: "I am back"})
	outcome(t, err, CodeRoleNotNow)
	if len(h.rec.byAction(oar.ActionRoleRemove)) != 2 || len(h.rec.byAction(oar.ActionRoleAccept)) != 2 {
		t.Fatalf("removals %d (want 2), acceptances %d (want the refused one and the one made)",
			len(h.rec.byAction(oar.ActionRoleRemove)), len(h.rec.byAction(oar.ActionRoleAccept)))
	}
	// Listing shows the tenant's roles to its members, and to nobody else.
	list, _ := h.p.RoleList(ctx, h.who(t, li))
	if len(list) != 1 || list[0].Holder != "dr.li" {
		t.Fatalf("list: %+v", list)
	}
	stranger := &policy.Principal{ID: "x", Tenant: "other", Clearance: policy.Official}
	if list, _ := h.p.RoleList(ctx, stranger); len(list) != 0 {
		t.Fatal("another tenant's principal lists the role")
	}
	if _, err := h.p.RoleShow(ctx, stranger, "guardian"); err == nil {
		t.Fatal("another tenant's principal sees the role")
	}
}

// A consent grant naming a role's memory releases nothing of it to another
// institution's principal: the release reaches policy with the role, as every read does.
func TestConsentDoesNotReleaseARolesMemory(t *testing.T) {
	ho := newHolder(t)
	if _, err := ho.h.mem.Store.Add(context.Background(), memory.NewMemory{Tenant: "cardiology", Subject: "role:guardian",
		Classification: policy.Official, Text: "canary-role guardian handbook: stenosis escalation"}); err != nil {
		t.Fatal(err)
	}
	practice, root := otherRoot(t)
	en := ho.grant(t, root, func(ng *NewGrant) { ng.Subjects = []string{"role:guardian"} })
	_, err := ho.release(t, en, practice, policy.Secret, policy.Secret)
	if e := outcome(t, err, CodePolicyDenied); !strings.Contains(e.Message, "forbid-role-memory-not-holder") {
		t.Fatalf("refused for another reason: %s", e.Message)
	}
}

package roles

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/succession"
)

var ctx = context.Background()

func ids(ms []*member) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.id)
	}
	return out
}

// guardian defines the role through the last member: observers the first three
// (k=2), suspect_after 10 s, wait 5 s, accept_within 20 s.
func guardian(t *testing.T, n *net, ms []*member, admins ...string) {
	t.Helper()
	if _, err := ms[len(ms)-1].keeper.Define(ctx, as("admin"), Spec{Tenant: "trust", Name: "guardian", Holder: "dr.okafor",
		Successors: []string{"dr.li", "dr.patel"}, Observers: ids(ms[:3]), K: 2, Admins: admins,
		SuspectAfter: 10, Wait: 5, AcceptWithin: 20}); err != nil {
		t.Fatal(err)
	}
	n.settle(ms...)
}

func stateOf(t *testing.T, m *member) succession.RoleState {
	t.Helper()
	st, ok := m.keeper.State("trust", "guardian")
	if !ok {
		t.Fatalf("%s knows no role guardian", m.id)
	}
	return st
}

func holds(m *member, who string, roles ...string) bool {
	return slices.Contains(m.keeper.Overlay(principal(who, roles...)).Roles, "guardian")
}

func TestSilentHolderIsSucceededAndTheLetterFollows(t *testing.T) {
	n := newNet(t)
	ms := n.institution(4)
	guardian(t, n, ms)
	letter := []byte("The pharmacy safe code is 4711; the DPO's deputy is Ms Adeyemi.")
	if _, err := ms[3].keeper.Deposit(ctx, as("dr.okafor"), "trust", "guardian", letter); err != nil {
		t.Fatal(err)
	}
	n.settle(ms...)
	for _, m := range ms {
		if !holds(m, "dr.okafor") || holds(m, "dr.li", "guardian") {
			t.Fatalf("%s: before any handover the charter's holder, and only they, hold the role", m.id)
		}
		if len(m.actions(oar.ActionRoleReject)) > 0 {
			t.Fatalf("%s rejected a letter its share of which it could open: %v", m.id, m.actions(oar.ActionRoleReject)[0])
		}
	}
	// The holder is active on one node: a presence is published at once, and observers
	// wait suspect_after from it.
	n.run(6*time.Second, ms...)
	ms[3].keeper.Active(principal("dr.okafor"))
	n.settle(ms...)
	if p := ms[3].actions(oar.ActionRolePresence); len(p) != 1 {
		t.Fatalf("node of the active holder recorded %d presences, want 1", len(p))
	}
	n.run(9*time.Second, ms...)
	if st := stateOf(t, ms[0]); st.State != succession.StateHeld {
		t.Fatalf("suspect_after has not passed since the presence, yet the role is %s", st.State)
	}
	// Then silence: the observers suspect, the wait passes, the role is handed over.
	n.run(2*time.Second, ms...)
	if st := stateOf(t, ms[3]); st.State != succession.StatePending {
		t.Fatalf("after suspect_after the role is %s, want pending", st.State)
	}
	n.run(6*time.Second, ms...)
	for _, m := range ms {
		st := stateOf(t, m)
		if st.State != succession.StateHandedOver || st.Offer == nil || st.Offer.Successor != "dr.li" {
			t.Fatalf("%s: %s, offer %+v; want handed over and offered to dr.li", m.id, st.State, st.Offer)
		}
		if holds(m, "dr.okafor", "guardian") || holds(m, "dr.li") {
			t.Fatalf("%s: while the role is offered and not accepted nobody holds it", m.id)
		}
		if h := m.actions(oar.ActionRoleHandover); len(h) != 1 || len(h[0].Parties) != 2 {
			t.Fatalf("%s recorded %d handovers (want 1 with its 2 suspicions as parties)", m.id, len(h))
		}
	}
	for _, m := range ms[:3] {
		if len(m.actions(oar.ActionRoleSuspect)) != 1 {
			t.Fatalf("observer %s recorded %d suspicions, want 1", m.id, len(m.actions(oar.ActionRoleSuspect)))
		}
	}
	if len(ms[3].actions(oar.ActionRoleSuspect)) != 0 {
		t.Fatal("a node that is not an observer suspected")
	}
	// Nobody but the successor offered may accept; dr.li accepts through the last node.
	if _, err := ms[3].keeper.Accept(ctx, as("dr.patel"), "trust", "guardian"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("dr.patel accepted dr.li's offer: %v", err)
	}
	if _, err := ms[0].keeper.OpenLetter(ctx, as("dr.li"), "trust", "guardian"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("the letter opened before anyone accepted: %v", err)
	}
	if _, err := ms[3].keeper.Accept(ctx, as("dr.li"), "trust", "guardian"); err != nil {
		t.Fatal(err)
	}
	n.settle(ms...)
	for _, m := range ms {
		if !holds(m, "dr.li") || holds(m, "dr.okafor", "guardian") {
			t.Fatalf("%s: after dr.li accepted, dr.li and only dr.li holds the role", m.id)
		}
	}
	for _, m := range ms[:3] {
		if len(m.actions(oar.ActionRoleLetterRelease)) != 1 {
			t.Fatalf("observer %s recorded %d releases, want 1", m.id, len(m.actions(oar.ActionRoleLetterRelease)))
		}
	}
	if _, err := ms[0].keeper.OpenLetter(ctx, as("dr.li"), "trust", "guardian"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("the letter opened on a node dr.li did not accept through: %v", err)
	}
	out, err := ms[3].keeper.OpenLetter(ctx, as("dr.li"), "trust", "guardian")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Letter, letter) {
		t.Fatalf("letter = %q", out.Letter)
	}
	if len(ms[3].actions(oar.ActionRoleLetterOpen)) != 1 {
		t.Fatal("the opening was not recorded")
	}
	// No record anywhere holds the letter's text.
	for _, m := range ms {
		for _, r := range m.records {
			if b, _ := r.Encode(); bytes.Contains(b, letter[:20]) {
				t.Fatalf("%s's record %s holds the letter's text", m.id, r.Action)
			}
		}
	}
	// A restart records nothing again.
	before := len(ms[0].records)
	n.start(ms[0])
	n.settle(ms...)
	n.run(2*time.Second, ms...)
	if len(ms[0].records) != before {
		t.Fatalf("a restarted keeper recorded %d more records: %v", len(ms[0].records)-before, ms[0].records[before].Action)
	}
}

func TestRefutationCancelsThePendingHandover(t *testing.T) {
	n := newNet(t)
	ms := n.institution(4)
	guardian(t, n, ms)
	n.run(11*time.Second, ms...)
	st := stateOf(t, ms[0])
	if st.State != succession.StatePending {
		t.Fatalf("state %s, want pending", st.State)
	}
	if _, err := ms[3].keeper.Refute(ctx, as("dr.li"), "trust", "guardian", "not me"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("a successor refuted: %v", err)
	}
	out, err := ms[3].keeper.Refute(ctx, as("dr.okafor"), "trust", "guardian", "on leave, back Monday")
	if err != nil {
		t.Fatal(err)
	}
	if out.State.State != succession.StateHeld {
		t.Fatalf("after the refutation the role is %s", out.State.State)
	}
	n.run(time.Duration(st.EffectiveAt.Sub(n.clock())+2*time.Second), ms...)
	for _, m := range ms {
		if st := stateOf(t, m); st.State == succession.StateHandedOver {
			t.Fatalf("%s handed the role over despite the refutation", m.id)
		}
		if len(m.actions(oar.ActionRoleHandover)) != 0 {
			t.Fatalf("%s recorded a handover", m.id)
		}
	}
	if len(ms[3].actions(oar.ActionRoleRefute)) != 1 {
		t.Fatal("the refutation was not recorded by the node that signed it")
	}
}

func TestRemovalNeedsKAdminsAndIsImmediate(t *testing.T) {
	n := newNet(t)
	ms := n.institution(4)
	guardian(t, n, ms, "admin.a", "admin.b", "admin.c")
	n.run(2*time.Second, ms...)
	if _, err := ms[3].keeper.Remove(ctx, as("dr.li"), "trust", "guardian", "coup"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("a principal who is not an admin removed the holder: %v", err)
	}
	out, err := ms[3].keeper.Remove(ctx, as("admin.a"), "trust", "guardian", "resigned")
	if err != nil {
		t.Fatal(err)
	}
	if out.State.State != succession.StateHeld || len(out.State.Removals) != 1 {
		t.Fatalf("one removal of k=2: %s with %d removals", out.State.State, len(out.State.Removals))
	}
	if _, err := ms[2].keeper.Remove(ctx, as("admin.a"), "trust", "guardian", "again"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("one admin removed twice: %v", err)
	}
	n.settle(ms...)
	out, err = ms[1].keeper.Remove(ctx, as("admin.b"), "trust", "guardian", "resigned")
	if err != nil {
		t.Fatal(err)
	}
	if out.State.State != succession.StateHandedOver || out.State.Basis != succession.BasisRemoval {
		t.Fatalf("k removals: %s on %q, want handed over on removal at once", out.State.State, out.State.Basis)
	}
	n.settle(ms...)
	for _, m := range ms {
		if st := stateOf(t, m); st.State != succession.StateHandedOver {
			t.Fatalf("%s: %s", m.id, st.State)
		}
	}
}

func TestCascadeToTheNextSuccessor(t *testing.T) {
	n := newNet(t)
	ms := n.institution(4)
	guardian(t, n, ms)
	n.run(17*time.Second, ms...)
	if st := stateOf(t, ms[0]); st.Offer == nil || st.Offer.Successor != "dr.li" {
		t.Fatalf("offer %+v, want dr.li", st.Offer)
	}
	n.run(21*time.Second, ms...)
	st := stateOf(t, ms[0])
	if st.Offer == nil || st.Offer.Successor != "dr.patel" {
		t.Fatalf("after accept_within the offer is %+v, want dr.patel", st.Offer)
	}
	if _, err := ms[3].keeper.Accept(ctx, as("dr.li"), "trust", "guardian"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("dr.li accepted after the offer passed: %v", err)
	}
	if _, err := ms[3].keeper.Accept(ctx, as("dr.patel"), "trust", "guardian"); err != nil {
		t.Fatal(err)
	}
	n.settle(ms...)
	for _, m := range ms {
		if !holds(m, "dr.patel") {
			t.Fatalf("%s: dr.patel does not hold the role", m.id)
		}
		if c := m.actions(oar.ActionRoleCascade); len(c) != 1 {
			t.Fatalf("%s recorded %d cascades, want 1", m.id, len(c))
		}
	}
}

// A forged suspicion, one by a node that is not an observer, many by one observer and
// one by a node of another institution: none brings the role nearer a handover. A
// partition leaves fewer than k observers on each side, and neither side hands over
// until it heals.
func TestForgedDuplicateForeignAndPartitionedSuspicionsDoNotCount(t *testing.T) {
	n := newNet(t)
	ms := n.institution(4)
	stranger := newNet(t).institution(1)[0] // another institution's node: its key is not on this net
	guardian(t, n, ms)
	n.cut[ms[1].id], n.cut[ms[2].id] = true, true // two of the three observers are partitioned away
	n.run(12*time.Second, ms...)
	c, _, _, err := ms[0].keeper.current("trust", "guardian")
	if err != nil {
		t.Fatal(err)
	}
	sign := func(m *member, since, at time.Time) []byte {
		doc, err := succession.SignSuspicion(m.node.Key, succession.Suspicion{Tenant: "trust", Role: "guardian", Charter: c.Hash(),
			Holder: "dr.okafor", Node: m.id, Since: succession.FormatTime(since), Time: succession.FormatTime(at)})
		if err != nil {
			t.Fatal(err)
		}
		return doc
	}
	ct, _ := time.Parse(time.RFC3339, c.Time)
	now := n.clock()
	forged := bytes.Replace(sign(ms[3], ct, now), []byte(ms[3].id), []byte(ms[1].id), 1) // claims observer ms[1]
	notObserver := sign(ms[3], ct, now)
	foreign := sign(stranger, ct, now)
	carry := &carrier{n: n, self: ms[3].id}
	for i, doc := range [][]byte{forged, notObserver, foreign, sign(ms[0], ct, now.Add(-time.Second)), sign(ms[0], ct, now.Add(-2*time.Second))} {
		if err := carry.Publish(fleet.KindRole, doc); err != nil {
			t.Fatal(i, err)
		}
	}
	n.run(10*time.Second, ms...)
	for _, m := range []*member{ms[0], ms[3]} {
		st := stateOf(t, m)
		if st.State != succession.StateSuspected || len(st.Suspicions) != 1 || st.Suspicions[0].Observer != ms[0].id {
			t.Fatalf("%s: %s with suspicions %+v; want suspected by %s alone", m.id, st.State, st.Suspicions, ms[0].id)
		}
		why := map[string]string{}
		for _, r := range st.Rejected {
			why[r.Event] = r.Reason
		}
		for name, want := range map[string]struct {
			doc    []byte
			reason string
		}{
			"forged": {forged, "verif"}, "not an observer": {notObserver, "not an observer"}, "foreign": {foreign, "not (yet) known"},
		} {
			if got := why[succession.EventHash(want.doc)]; !strings.Contains(got, want.reason) {
				t.Fatalf("%s: the %s suspicion is rejected with %q, want %q", m.id, name, got, want.reason)
			}
		}
		if len(m.actions(oar.ActionRoleReject)) != 2 {
			t.Fatalf("%s recorded %d rejections, want 2 (the forged and the non-observer's; the foreign one may yet become known)", m.id, len(m.actions(oar.ActionRoleReject)))
		}
	}
	// The other side of the partition: one observer suspects too, alone.
	n.settle(ms[1])
	if st := stateOf(t, ms[1]); st.State != succession.StateSuspected {
		t.Fatalf("the partitioned observer alone: %s", st.State)
	}
	// The partition heals: k observers' suspicions meet, and after the wait the role passes.
	clear(n.cut)
	n.run(7*time.Second, ms...)
	if st := stateOf(t, ms[0]); st.State != succession.StateHandedOver {
		t.Fatalf("after the partition healed: %s", st.State)
	}
}

func TestAStepThatCannotBeRecordedDoesNotHappen(t *testing.T) {
	n := newNet(t)
	ms := n.institution(3)
	guardian(t, n, ms)
	ms[0].broken = true
	n.run(11*time.Second, ms...)
	st := stateOf(t, ms[2])
	for _, s := range st.Suspicions {
		if s.Observer == ms[0].id {
			t.Fatal("an observer whose ledger refuses records published a suspicion")
		}
	}
	ms[0].broken = false
	n.run(3*time.Second, ms...)
	st = stateOf(t, ms[2])
	if !slices.ContainsFunc(st.Suspicions, func(s succession.Suspected) bool { return s.Observer == ms[0].id }) {
		t.Fatal("once its ledger works again the observer did not suspect")
	}
	if _, err := ms[2].keeper.Define(ctx, as("admin"), Spec{Tenant: "trust", Name: "siro", Holder: "a", Successors: []string{"b"},
		Observers: []string{ms[0].id, "node_aaaa"}, K: 2, SuspectAfter: 1, Wait: 1, AcceptWithin: 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a charter naming an unknown observer: %v", err)
	}
	ms[2].broken = true
	if _, err := ms[2].keeper.Define(ctx, as("admin"), Spec{Tenant: "trust", Name: "siro", Holder: "a", Successors: []string{"b"},
		Observers: ids(ms[:2]), K: 2, SuspectAfter: 1, Wait: 1, AcceptWithin: 1}); !errors.Is(err, ErrUnrecorded) {
		t.Fatalf("a definition that could not be recorded: %v", err)
	}
	if _, ok := ms[2].keeper.State("trust", "siro"); ok {
		t.Fatal("an unrecorded definition took effect")
	}
}

func TestPresenceIsCoarse(t *testing.T) {
	n := newNet(t)
	ms := n.institution(3)
	guardian(t, n, ms)
	for range 30 {
		ms[2].keeper.Active(principal("dr.okafor"))
		ms[2].keeper.Active(principal("dr.li")) // not the holder: nothing
		n.run(time.Second, ms...)
	}
	// Active for 30 s with suspect_after 10 s: at most one presence per 5 s.
	if p := len(ms[2].actions(oar.ActionRolePresence)); p < 5 || p > 7 {
		t.Fatalf("%d presences in 30 s of activity, want about 6", p)
	}
	for _, m := range ms {
		if len(m.actions(oar.ActionRoleSuspect)) != 0 {
			t.Fatalf("%s suspected an active holder", m.id)
		}
	}
	if _, err := ms[0].keeper.Checkin(ctx, as("dr.li"), "trust", "guardian"); !errors.Is(err, ErrNotNow) {
		t.Fatalf("a successor checked in for the holder: %v", err)
	}
}

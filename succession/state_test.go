package succession

import (
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
)

// The timeline of most cases: the charter at 0 (suspect_after 60, wait 30,
// accept_within 20); observers 0, 1 and 2 suspect at 60, 65 and 70 (no presence since
// 0), so the handover is pending from 70 and takes effect at 100; dr.li may accept in
// [100, 120), dr.patel in [120, 140).
func TestStateTimeline(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	three := [][]byte{f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70)}
	with := func(extra ...[]byte) [][]byte { return append(append([][]byte{}, three...), extra...) }

	type want struct {
		state, holder, offer string
		suspicions           int
		exhausted            bool
		basis                string
	}
	cases := []struct {
		name   string
		events [][]byte
		now    int64
		want   want
	}{
		{"no events", nil, 1000, want{state: StateHeld, holder: "dr.okafor"}},
		{"one suspicion", three[:1], 60, want{state: StateSuspected, holder: "dr.okafor", suspicions: 1}},
		{"two of three", three[:2], 1000, want{state: StateSuspected, holder: "dr.okafor", suspicions: 2}},
		{"before the third", three, 69, want{state: StateSuspected, holder: "dr.okafor", suspicions: 2}},
		{"k suspicions: pending", three, 70, want{state: StatePending, holder: "dr.okafor", suspicions: 3}},
		{"the last second of the wait", three, 99, want{state: StatePending, holder: "dr.okafor", suspicions: 3}},
		{"after the wait: offered to the first successor", three, 100, want{state: StateHandedOver, offer: "dr.li", suspicions: 3, basis: BasisSuspicion}},
		{"first successor accepts", with(f.acceptance(f.other, "dr.li", 110)), 110, want{state: StateHandedOver, holder: "dr.li", suspicions: 3, basis: BasisSuspicion}},
		{"acceptance on the last second", with(f.acceptance(f.other, "dr.li", 119)), 200, want{state: StateHandedOver, holder: "dr.li", suspicions: 3, basis: BasisSuspicion}},
		{"no acceptance: cascade", three, 120, want{state: StateHandedOver, offer: "dr.patel", suspicions: 3, basis: BasisSuspicion}},
		{"late acceptance does not count", with(f.acceptance(f.other, "dr.li", 120)), 125, want{state: StateHandedOver, offer: "dr.patel", suspicions: 3, basis: BasisSuspicion}},
		{"second successor accepts", with(f.acceptance(o[3], "dr.patel", 130)), 130, want{state: StateHandedOver, holder: "dr.patel", suspicions: 3, basis: BasisSuspicion}},
		{"second successor too early", with(f.acceptance(o[3], "dr.patel", 105)), 130, want{state: StateHandedOver, offer: "dr.patel", suspicions: 3, basis: BasisSuspicion}},
		{"nobody accepts", three, 140, want{state: StateHandedOver, suspicions: 3, exhausted: true, basis: BasisSuspicion}},
		{"presence in the wait cancels", with(f.presence(f.other, 80, 85)), 1000, want{state: StateHeld, holder: "dr.okafor"}},
		{"presence signed at the effective time cancels", with(f.presence(f.other, 99, 100)), 100, want{state: StateHeld, holder: "dr.okafor"}},
		{"presence signed after the effective time does not", with(f.presence(f.other, 90, 101)), 101, want{state: StateHandedOver, offer: "dr.li", suspicions: 3, basis: BasisSuspicion}},
		{"presence before since does not cancel", with(f.presence(f.other, 0, 50)), 100, want{state: StateHandedOver, offer: "dr.li", suspicions: 3, basis: BasisSuspicion}},
		{"presence cancels only suspicions with an earlier since", [][]byte{f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.presence(f.other, 62, 62), f.suspicion(o[2], 63, 123)}, 130, want{state: StateSuspected, holder: "dr.okafor", suspicions: 1}},
		{"refutation in the wait cancels", with(f.refutation(f.other, 95)), 1000, want{state: StateHeld, holder: "dr.okafor"}},
		{"suspicions after a refutation count again", with(f.refutation(o[0], 95), f.suspicion(o[0], 95, 155), f.suspicion(o[1], 95, 156), f.suspicion(o[3], 95, 157)), 187, want{state: StateHandedOver, offer: "dr.li", suspicions: 3, basis: BasisSuspicion}},
		{"one observer three times", [][]byte{f.suspicion(o[0], 0, 60), f.suspicion(o[0], 0, 61), f.suspicion(o[0], 1, 62)}, 1000, want{state: StateSuspected, holder: "dr.okafor", suspicions: 1}},
		{"future events are not counted yet", three, 65, want{state: StateSuspected, holder: "dr.okafor", suspicions: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := f.state(c.now, c.events...)
			got := want{state: st.State, holder: st.Holder, suspicions: len(st.Suspicions), exhausted: st.Exhausted, basis: st.Basis}
			if st.Offer != nil {
				got.offer = st.Offer.Successor
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v (rejected %v)", got, c.want, st.Rejected)
			}
			if (st.State == StateHandedOver) != (st.Certificate != nil) {
				t.Fatalf("state %s with certificate %v", st.State, st.Certificate != nil)
			}
		})
	}
}

func TestStatePendingTimes(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	st := f.state(80, f.suspicion(o[2], 0, 70), f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[3], 0, 75))
	if st.State != StatePending || !st.PendingSince.Equal(f.now(70)) || !st.EffectiveAt.Equal(f.now(100)) {
		t.Fatalf("state %s pending since %v effective %v; want pending since t0+70, effective t0+100", st.State, st.PendingSince, st.EffectiveAt)
	}
	if len(st.Suspicions) != 4 || st.Suspicions[0].Observer != o[0] || st.Suspicions[3].Observer != o[3] {
		t.Fatalf("suspicions %+v: want all four, earliest first", st.Suspicions)
	}
	// The certificate takes the three earliest; the fourth changes nothing.
	st = f.state(100, f.suspicion(o[2], 0, 70), f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[3], 0, 75))
	cert, err := ParseCertificate(st.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range cert.Events() {
		if e.Signer() != o[i] {
			t.Fatalf("evidence[%d] from %s, want %s", i, e.Signer(), o[i])
		}
	}
	if err := cert.Verify(f.charter, f.pub); err != nil {
		t.Fatal(err)
	}
	if cert.Effective != f.at(100) || cert.From != "dr.okafor" || cert.To != "dr.li" {
		t.Fatalf("certificate effective %s from %s to %s", cert.Effective, cert.From, cert.To)
	}
}

// Each observer's earliest live suspicion counts: an observer that suspected again
// after its first suspicion was cancelled counts from the new one.
func TestStateEarliestLiveSuspicionPerObserver(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	events := [][]byte{
		f.suspicion(o[0], 0, 60), f.presence(o[1], 61, 61), // o0's first is cancelled at 61
		f.suspicion(o[0], 61, 121), f.suspicion(o[1], 61, 122), f.suspicion(o[2], 61, 123),
	}
	st := f.state(153, events...)
	if st.State != StateHandedOver || !st.EffectiveAt.Equal(f.now(153)) {
		t.Fatalf("state %s effective %v, want handed-over at t0+153", st.State, st.EffectiveAt)
	}
	if st.Suspicions[0].Time != f.now(121) {
		t.Fatalf("o0's suspicion counted is at %v, want its second (t0+121)", st.Suspicions[0].Time)
	}
}

func TestStateRejects(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	outsider, err := identity.GenerateKey(identity.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	// A second charter (another version) for the wrong-charter case.
	other := f.signCharter(Charter{Tenant: "nhs-trust-a", Name: "caldicott-guardian", Seq: 1, Prev: f.charter.Hash(), Holder: "dr.okafor",
		Successors: []string{"dr.li"}, Observers: f.obs, K: 2, Admins: []string{}, SuspectAfter: 60, Wait: 30, AcceptWithin: 20,
		Author: "admin.b", Node: f.other, Time: f.at(1)})
	wrongCharter, err := SignSuspicion(f.keys[o[1]], Suspicion{Tenant: "nhs-trust-a", Role: "caldicott-guardian", Charter: other.Hash(),
		Holder: "dr.okafor", Node: o[1], Since: f.at(1), Time: f.at(65)})
	if err != nil {
		t.Fatal(err)
	}
	wrongHolder, err := SignSuspicion(f.keys[o[1]], Suspicion{Tenant: "nhs-trust-a", Role: "caldicott-guardian", Charter: f.charter.Hash(),
		Holder: "dr.li", Node: o[1], Since: f.at(0), Time: f.at(65)})
	if err != nil {
		t.Fatal(err)
	}
	wrongRole, err := SignSuspicion(f.keys[o[1]], Suspicion{Tenant: "nhs-trust-a", Role: "siro", Charter: f.charter.Hash(),
		Holder: "dr.okafor", Node: o[1], Since: f.at(0), Time: f.at(65)})
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(strings.Replace(string(f.suspicion(o[2], 0, 70)), f.at(0), f.at(5), 1))
	cases := []struct {
		name   string
		event  []byte
		reason string
	}{
		{"forged: signed by another key", forgeSuspicion(t, outsider, Suspicion{Tenant: "nhs-trust-a", Role: "caldicott-guardian",
			Charter: f.charter.Hash(), Holder: "dr.okafor", Node: o[1], Since: f.at(0), Time: f.at(65)}), "signature does not verify"},
		{"tampered after signing", tampered, "signature does not verify"},
		{"unknown node", forgeSuspicion(t, outsider, Suspicion{Tenant: "nhs-trust-a", Role: "caldicott-guardian",
			Charter: f.charter.Hash(), Holder: "dr.okafor", Node: outsider.Public().ID(identity.NodePrefix), Since: f.at(0), Time: f.at(65)}), "not a known node"},
		{"not an observer", f.suspicion(f.other, 0, 65), "not an observer"},
		{"wrong charter", wrongCharter, "not the charter in force"},
		{"wrong holder", wrongHolder, "charter's holder"},
		{"wrong role", wrongRole, "is for role nhs-trust-a/siro"},
		{"too early", f.suspicion(o[1], 10, 65), "suspect_after is 60"},
		{"since before the charter", f.suspicion(o[1], -10, 65), "before the charter's time"},
		{"signed in the future", f.suspicion(o[1], 0, 500), "not counted yet"},
		{"removal by a non-admin", f.removal(o[1], "dr.evil", 30), "not an admin"},
		{"acceptance by a non-successor", f.acceptance(o[1], "dr.evil", 110), "not a successor"},
		{"acceptance before any handover", f.acceptance(o[1], "dr.li", 50), "no handover has taken effect"},
		{"not JSON", []byte("suspicion"), "not in canonical form"},
		{"a charter", f.charter.Bytes(), "not an event"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// With two genuine suspicions, the rejected event would make the third.
			st := f.state(200, f.suspicion(o[0], 0, 60), f.suspicion(o[3], 0, 61), c.event)
			if st.State == StateHandedOver || st.State == StatePending {
				t.Fatalf("state %s: the event was counted", st.State)
			}
			if len(st.Rejected) != 1 || st.Rejected[0].Event != EventHash(c.event) || !strings.Contains(st.Rejected[0].Reason, c.reason) {
				t.Fatalf("rejected %+v, want one for the event with reason containing %q", st.Rejected, c.reason)
			}
		})
	}
}

func TestStateRemoval(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	a := f.removal(o[0], "admin.a", 10)
	b := f.removal(o[1], "admin.b", 20)
	c := f.removal(f.other, "admin.c", 30)
	aAgain := f.removal(o[2], "admin.a", 25)

	if st := f.state(1000, a, b, aAgain); st.State != StateHeld || len(st.Removals) != 2 {
		t.Fatalf("two admins (one twice): state %s with %d removals; want held with 2", st.State, len(st.Removals))
	}
	st := f.state(30, a, b, c)
	if st.State != StateHandedOver || st.Basis != BasisRemoval || !st.EffectiveAt.Equal(f.now(30)) || st.Offer == nil || st.Offer.Successor != "dr.li" {
		t.Fatalf("three admins: state %s basis %s effective %v offer %+v; want handed-over on removal at t0+30 to dr.li", st.State, st.Basis, st.EffectiveAt, st.Offer)
	}
	cert, err := ParseCertificate(st.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Verify(f.charter, f.pub); err != nil {
		t.Fatal(err)
	}
	// Removal needs no wait and is not cancelled by presence.
	if st := f.state(30, a, b, c, f.presence(o[0], 29, 29), f.refutation(o[0], 30)); st.State != StateHandedOver {
		t.Fatalf("removal with presence: state %s, want handed-over", st.State)
	}
	// The earlier of the two certificates wins.
	sus := [][]byte{f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70)}
	if st := f.state(500, append(sus, f.removal(o[0], "admin.a", 90), f.removal(o[0], "admin.b", 91), f.removal(o[0], "admin.c", 92))...); st.Basis != BasisRemoval {
		t.Fatalf("removal at 92 before suspicion at 100: basis %s", st.Basis)
	}
	if st := f.state(500, append(sus, f.removal(o[0], "admin.a", 90), f.removal(o[0], "admin.b", 91), f.removal(o[0], "admin.c", 101))...); st.Basis != BasisSuspicion {
		t.Fatalf("suspicion at 100 before removal at 101: basis %s", st.Basis)
	}
}

func TestStateErrors(t *testing.T) {
	f := newFixture(t)
	if _, err := State(nil, nil, time.Now()); err == nil {
		t.Fatal("State without a charter succeeded")
	}
	if _, err := StateFromBytes(f.charter, make([][]byte, MaxEvents+1), f.pub, time.Now()); err == nil || !strings.Contains(err.Error(), "MaxEvents") {
		t.Fatalf("too many events: %v", err)
	}
}

func TestStateHistory(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	st := f.state(200, f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70), f.presence(f.other, 0, 45), f.acceptance(o[3], "dr.patel", 125))
	var actions []string
	for _, s := range st.History {
		actions = append(actions, s.Action)
	}
	want := "role.define role.presence role.suspect role.suspect role.suspect role.handover role.cascade role.accept"
	if got := strings.Join(actions, " "); got != want {
		t.Fatalf("history %s\nwant    %s", got, want)
	}
	if st.Holder != "dr.patel" || st.HolderNode != o[3] {
		t.Fatalf("holder %q via %s, want dr.patel via %s", st.Holder, st.HolderNode, o[3])
	}
}

func TestCertificateVerifyRefuses(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	st := f.state(100, f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70))
	good, err := ParseCertificate(st.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	build := func(change func(c *Certificate)) *Certificate {
		c, err := ParseCertificate(st.Certificate)
		if err != nil {
			t.Fatal(err)
		}
		change(c)
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		c, err = ParseCertificate(b)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		return c
	}
	same := func(c *Certificate) { c.Evidence[1] = c.Evidence[0] }
	cases := []struct {
		name   string
		cert   *Certificate
		reason string
	}{
		{"fewer than k", build(func(c *Certificate) { c.Evidence = c.Evidence[:2] }), "k is 3"},
		{"one observer twice", build(same), "out of order"},
		{"out of order", build(func(c *Certificate) { c.Evidence[0], c.Evidence[1] = c.Evidence[1], c.Evidence[0] }), "out of order"},
		{"effective too early", build(func(c *Certificate) { c.Effective = f.at(99) }), "effective"},
		{"another successor", build(func(c *Certificate) { c.To = "dr.patel" }), "first successor"},
		{"non-observer evidence", build(func(c *Certificate) { c.Evidence[2] = f.suspicion(f.other, 0, 70) }), "not an observer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cert.Verify(f.charter, f.pub)
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Verify: %v, want an error containing %q", err, c.reason)
			}
		})
	}
	if err := good.Verify(f.charter, f.pub); err != nil {
		t.Fatalf("the genuine certificate: %v", err)
	}
	// Verified against another version of the charter, it fails.
	other := f.signCharter(Charter{Tenant: "nhs-trust-a", Name: "caldicott-guardian", Seq: 1, Prev: f.charter.Hash(), Holder: "dr.okafor",
		Successors: []string{"dr.li"}, Observers: f.obs, K: 3, Admins: []string{}, SuspectAfter: 60, Wait: 30, AcceptWithin: 20,
		Author: "admin.b", Node: f.other, Time: f.at(1)})
	if err := good.Verify(other, f.pub); err == nil {
		t.Fatal("certificate verified against another charter")
	}
}

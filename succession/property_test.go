package succession

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/sios-project/sios/identity"
)

// pool is a fixed set of signed events over t0 .. t0+300 from which the property tests
// draw random subsets.
type pool struct {
	f          *fixture
	suspicions map[string][][]byte // by observer
	presences  [][]byte            // presences and refutations
	acceptance [][]byte
	removals   map[string][][]byte // by admin
	junk       [][]byte            // events that must never count
}

func newPool(t *testing.T, f *fixture) *pool {
	r := rand.New(rand.NewPCG(1, 2))
	p := &pool{f: f, suspicions: map[string][][]byte{}, removals: map[string][][]byte{}}
	for _, o := range f.obs {
		for _, since := range []int64{0, 40, 90, 150} {
			p.suspicions[o] = append(p.suspicions[o], f.suspicion(o, since, since+fxSuspectAfter+r.Int64N(30)))
		}
		// Two at one time with different since: which one counts must not depend on
		// the order they are given in.
		p.suspicions[o] = append(p.suspicions[o], f.suspicion(o, 0, 100), f.suspicion(o, 3, 100))
	}
	for range 8 {
		seen := r.Int64N(250)
		p.presences = append(p.presences, f.presence(f.nodes[r.IntN(len(f.nodes))], seen, seen+r.Int64N(20)))
	}
	p.presences = append(p.presences, f.refutation(f.obs[0], 95), f.refutation(f.other, 170))
	for _, s := range []string{"dr.li", "dr.patel"} {
		for range 4 {
			p.acceptance = append(p.acceptance, f.acceptance(f.nodes[r.IntN(len(f.nodes))], s, 90+r.Int64N(200)))
		}
	}
	for _, a := range f.charter.Admins {
		for range 2 {
			p.removals[a] = append(p.removals[a], f.removal(f.nodes[r.IntN(len(f.nodes))], a, r.Int64N(400)))
		}
	}
	outsider, err := identity.GenerateKey(identity.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	p.junk = [][]byte{
		forgeSuspicion(t, outsider, Suspicion{Tenant: f.charter.Tenant, Role: f.charter.Name, Charter: f.charter.Hash(),
			Holder: f.charter.Holder, Node: f.obs[3], Since: f.at(0), Time: f.at(61)}),
		f.suspicion(f.other, 0, 62),
		f.removal(f.obs[1], "dr.evil", 5),
	}
	return p
}

// draw picks each event of the pool with probability 1/2, suspicions only from
// observers and removals only from admins in the given sets.
func (p *pool) draw(r *rand.Rand, observers, admins []string) [][]byte {
	var out [][]byte
	pick := func(l [][]byte) {
		for _, b := range l {
			if r.IntN(2) == 0 {
				out = append(out, b)
			}
		}
	}
	for _, o := range observers {
		pick(p.suspicions[o])
	}
	for _, a := range admins {
		pick(p.removals[a])
	}
	pick(p.presences)
	pick(p.acceptance)
	pick(p.junk)
	return out
}

// Any order of the events, and any number of copies of them, gives the same state.
func TestPropertyOrderDoesNotMatter(t *testing.T) {
	f := newFixture(t)
	p := newPool(t, f)
	r := rand.New(rand.NewPCG(3, 4))
	handed := 0
	for i := range 500 {
		events := p.draw(r, f.obs, f.charter.Admins)
		now := r.Int64N(450)
		want, _ := f.fastState(now, events...)
		shuffled := append([][]byte{}, events...)
		for _, b := range events {
			if r.IntN(4) == 0 {
				shuffled = append(shuffled, b)
			}
		}
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, bad := f.fastState(now, shuffled...)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("iteration %d (now t0+%d, %d events): the state depends on order:\n%+v\n%+v", i, now, len(events), got, want)
		}
		if got.State == StateHandedOver {
			handed++
			cert, err := ParseCertificate(got.Certificate)
			if err != nil {
				t.Fatal(err)
			}
			if err := cert.Verify(f.charter, f.pub); err != nil {
				t.Fatalf("iteration %d: the certificate State assembled does not verify: %v", i, err)
			}
		}
		if bad > 0 != contains(shuffled, p.junk[0]) {
			t.Fatalf("iteration %d: %d events did not verify; the forged one was given: %v", i, bad, contains(shuffled, p.junk[0]))
		}
		for _, j := range p.junk[1:] {
			if contains(events, j) && !slices.ContainsFunc(got.Rejected, func(r Rejection) bool { return r.Event == EventHash(j) }) {
				t.Fatalf("iteration %d: the invalid event %s was not rejected", i, j)
			}
		}
	}
	// The pool is built so that both outcomes are common; a test that never hands over
	// would prove little.
	if handed < 50 || handed > 450 {
		t.Fatalf("%d of 500 draws handed over: the pool does not exercise both outcomes", handed)
	}
}

func contains(l [][]byte, b []byte) bool {
	return slices.ContainsFunc(l, func(x []byte) bool { return bytes.Equal(x, b) })
}

// Suspicions from fewer than k distinct observers, with removals from fewer than k
// admins, never hand a role over and never make it pending, whatever else is held.
func TestPropertyFewerThanKNeverHandOver(t *testing.T) {
	f := newFixture(t)
	p := newPool(t, f)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 500 {
		obs := append([]string{}, f.obs...)
		r.Shuffle(len(obs), func(i, j int) { obs[i], obs[j] = obs[j], obs[i] })
		obs = obs[:r.IntN(f.charter.K)]
		admins := append([]string{}, f.charter.Admins...)
		r.Shuffle(len(admins), func(i, j int) { admins[i], admins[j] = admins[j], admins[i] })
		admins = admins[:r.IntN(f.charter.K)]
		events := p.draw(r, obs, admins)
		// Every suspicion of the chosen observers, so that each signs many.
		for _, o := range obs {
			events = append(events, p.suspicions[o]...)
		}
		for _, now := range []int64{100, 200, 300, 1000, 100000} {
			st, _ := f.fastState(now, events...)
			if st.State == StateHandedOver || st.State == StatePending {
				t.Fatalf("iteration %d: %d observers %v and %d admins: state %s at t0+%d", i, len(obs), obs, len(admins), st.State, now)
			}
		}
	}
}

// A presence or refutation only cancels: adding one never hands a role over that was
// not, and never makes a handover take effect earlier.
func TestPropertyPresenceOnlyCancels(t *testing.T) {
	f := newFixture(t)
	p := newPool(t, f)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 500 {
		events := p.draw(r, f.obs, nil)
		now := r.Int64N(450)
		before, _ := f.fastState(now, events...)
		extra := p.presences[r.IntN(len(p.presences))]
		after, _ := f.fastState(now, append(events, extra)...)
		if after.State == StateHandedOver && (before.State != StateHandedOver || after.EffectiveAt.Before(before.EffectiveAt)) {
			t.Fatalf("iteration %d: a presence turned %s (effective %v) into %s (effective %v)", i, before.State, before.EffectiveAt, after.State, after.EffectiveAt)
		}
	}
}

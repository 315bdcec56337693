package succession

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
)

// A fixture is an institution of five nodes, four of them observers of one charter
// (k=3) that the fifth signed; durations are seconds so that timelines read easily.
type fixture struct {
	t       testing.TB
	keys    map[string]*identity.PrivateKey // by node id
	nodes   []string                        // all five, sorted
	obs     []string                        // the four observers, sorted
	other   string                          // the fifth node, not an observer
	pub     KeyMap
	kems    map[string]*KEMKey
	kemPub  KEMMap
	charter *Charter
	t0      int64 // the charter's time, Unix seconds

	mu       sync.Mutex
	cache    map[string][]byte      // signed events by their description
	verified map[string]SignedEvent // by bytes; the zero SignedEvent for those that do not verify
}

const (
	fxSuspectAfter = 60
	fxWait         = 30
	fxAcceptWithin = 20
)

var fxT0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func seeds(b byte) ([mldsa65.SeedSize]byte, [ed25519.SeedSize]byte) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	for i := range m {
		m[i], e[i] = b+byte(i), b^byte(i)
	}
	return m, e
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, keys: map[string]*identity.PrivateKey{}, pub: KeyMap{}, kems: map[string]*KEMKey{}, kemPub: KEMMap{}, cache: map[string][]byte{}, verified: map[string]SignedEvent{}}
	for i := range 5 {
		m, e := seeds(byte(0x40 + 0x10*i))
		k := identity.KeyFromSeeds(identity.KindNode, m, e)
		id := k.Public().ID(identity.NodePrefix)
		f.keys[id], f.pub[id] = k, k.Public()
		seed := make([]byte, 32)
		for j := range seed {
			seed[j] = byte(0xa0 + i + j)
		}
		kk, err := KEMKeyFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		f.kems[id], f.kemPub[id] = kk, kk.Public()
		f.nodes = append(f.nodes, id)
	}
	slices.Sort(f.nodes)
	f.obs, f.other = f.nodes[:4], f.nodes[4]
	f.t0 = fxT0.Unix()
	f.charter = f.signCharter(Charter{Tenant: "nhs-trust-a", Name: "caldicott-guardian", Holder: "dr.okafor",
		Successors: []string{"dr.li", "dr.patel"}, Observers: f.obs, K: 3, Admins: []string{"admin.a", "admin.b", "admin.c"},
		SuspectAfter: fxSuspectAfter, Wait: fxWait, AcceptWithin: fxAcceptWithin, Author: "admin.a", Node: f.other, Time: FormatTime(fxT0)})
	return f
}

func (f *fixture) signCharter(c Charter) *Charter {
	f.t.Helper()
	b, err := SignCharter(f.keys[c.Node], c)
	if err != nil {
		f.t.Fatal(err)
	}
	p, err := ParseCharter(b)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := p.Verify(f.pub); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// at is the time t0 + s as the formats spell it.
func (f *fixture) at(s int64) string { return FormatTime(time.Unix(f.t0+s, 0)) }

// now is t0 + s.
func (f *fixture) now(s int64) time.Time { return time.Unix(f.t0+s, 0).UTC() }

// signed signs an event once and caches it: ML-DSA-65 signing is deterministic, so the
// cache changes nothing but the time tests take.
func (f *fixture) signed(desc string, mk func() ([]byte, error)) []byte {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.cache[desc]; ok {
		return b
	}
	b, err := mk()
	if err != nil {
		f.t.Fatalf("%s: %v", desc, err)
	}
	f.cache[desc] = b
	return b
}

// suspicion by observer node (an index into f.obs, or a node id) with since and time
// as offsets from t0.
func (f *fixture) suspicion(node string, since, at int64) []byte {
	return f.signed(fmt.Sprint("s", node, since, at), func() ([]byte, error) {
		return SignSuspicion(f.keys[node], Suspicion{Tenant: f.charter.Tenant, Role: f.charter.Name, Charter: f.charter.Hash(),
			Holder: f.charter.Holder, Node: node, Since: f.at(since), Time: f.at(at)})
	})
}

func (f *fixture) presence(node string, seen, at int64) []byte {
	return f.signed(fmt.Sprint("p", node, seen, at), func() ([]byte, error) {
		return SignPresence(f.keys[node], Presence{Tenant: f.charter.Tenant, Role: f.charter.Name, Holder: f.charter.Holder,
			Node: node, Seen: f.at(seen), Time: f.at(at)})
	})
}

func (f *fixture) refutation(node string, at int64) []byte {
	return f.signed(fmt.Sprint("r", node, at), func() ([]byte, error) {
		return SignRefutation(f.keys[node], Refutation{Tenant: f.charter.Tenant, Role: f.charter.Name, Charter: f.charter.Hash(),
			Holder: f.charter.Holder, Node: node, Reason: "on leave, back on Monday", Time: f.at(at)})
	})
}

func (f *fixture) acceptance(node, successor string, at int64) []byte {
	return f.signed(fmt.Sprint("a", node, successor, at), func() ([]byte, error) {
		return SignAcceptance(f.keys[node], Acceptance{Tenant: f.charter.Tenant, Role: f.charter.Name, Charter: f.charter.Hash(),
			Successor: successor, Node: node, Time: f.at(at)})
	})
}

func (f *fixture) removal(node, admin string, at int64) []byte {
	return f.signed(fmt.Sprint("x", node, admin, at), func() ([]byte, error) {
		return SignRemoval(f.keys[node], Removal{Tenant: f.charter.Tenant, Role: f.charter.Name, Charter: f.charter.Hash(),
			Holder: f.charter.Holder, Admin: admin, Node: node, Reason: "resigned", Time: f.at(at)})
	})
}

// state is StateFromBytes at t0 + now, failing the test on error.
func (f *fixture) state(now int64, events ...[]byte) RoleState {
	f.t.Helper()
	st, err := StateFromBytes(f.charter, events, f.pub, f.now(now))
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// fastState is state with each event verified once for the whole test (the property
// tests call State thousands of times over one pool): events that do not verify are
// left out and counted.
func (f *fixture) fastState(now int64, events ...[]byte) (RoleState, int) {
	f.t.Helper()
	var ok []SignedEvent
	bad := 0
	for _, b := range events {
		f.mu.Lock()
		se, known := f.verified[string(b)]
		f.mu.Unlock()
		if !known {
			var err error
			if se, err = VerifyEvent(b, f.pub); err != nil {
				se = SignedEvent{}
			}
			f.mu.Lock()
			f.verified[string(b)] = se
			f.mu.Unlock()
		}
		if se.Event() == nil {
			bad++
			continue
		}
		ok = append(ok, se)
	}
	st, err := State(f.charter, ok, f.now(now))
	if err != nil {
		f.t.Fatal(err)
	}
	return st, bad
}

// forge signs b's members again with key, keeping the node it names: a signature by
// the wrong key.
func forgeSuspicion(t testing.TB, key *identity.PrivateKey, s Suspicion) []byte {
	t.Helper()
	s.V, s.Sig = SuspicionVersion, nil
	if err := s.validate(); err != nil {
		t.Fatal(err)
	}
	body, err := encode(&s, s.format())
	if err != nil {
		t.Fatal(err)
	}
	sig := key.Sign(SuspicionDomain, body)
	s.Sig = &sig
	b, err := encode(&s, s.format())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

package succession_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/succession"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// vectors is the published test-vector file described in docs/succession.md.
// Regenerate with: go test ./succession -run TestVectors -update
type vectors struct {
	Comment       string        `json:"comment"`
	RandomSeed    uint64        `json:"random_seed"`
	Nodes         []nodeVector  `json:"nodes"`
	KEMStatements []string      `json:"kem_statements"`
	Charter       docVector     `json:"charter"`
	Events        []eventVector `json:"events"`
	States        []stateVector `json:"states"`
	Certificates  []docVector   `json:"certificates"`
	Letter        letterVector  `json:"letter"`
}

type nodeVector struct {
	Name        string `json:"name"`
	MLDSA65Seed string `json:"mldsa65_seed_hex"`
	Ed25519Seed string `json:"ed25519_seed_hex"`
	KEMSeed     string `json:"kem_seed_hex"`
	ID          string `json:"id"`
}

type docVector struct {
	Name          string `json:"name,omitempty"`
	Canonical     string `json:"canonical"`
	Hash          string `json:"hash"`
	SignedMessage string `json:"signed_message_hex,omitempty"`
}

type eventVector struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Canonical string `json:"canonical"`
	Hash      string `json:"hash"`
}

type stateVector struct {
	Name   string               `json:"name"`
	Events []string             `json:"events"` // names of the events held
	Now    string               `json:"now"`
	State  succession.RoleState `json:"state"`
}

type letterVector struct {
	Plaintext string   `json:"plaintext"`
	Canonical string   `json:"canonical"`
	Hash      string   `json:"hash"`
	Released  []string `json:"released"` // by observers 0, 1 and 2 to node-4, after the "accepted" state
}

func vectorSeeds(b byte) ([mldsa65.SeedSize]byte, [ed25519.SeedSize]byte, []byte) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	k := make([]byte, 32)
	for i := range m {
		m[i], e[i], k[i] = b+byte(i), b^byte(i), b+0x80+byte(i)
	}
	return m, e, k
}

const vectorRandomSeed = 16

// generate builds every vector from fixed seeds, a fixed clock and (for the letter's
// HPKE encapsulations, nonce and shares) crypto/rand fixed by testing/cryptotest.
func generate(t *testing.T) *vectors {
	cryptotest.SetGlobalRandom(t, vectorRandomSeed)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	at := func(s int64) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	v := &vectors{
		Comment:    "Succession (role-*/1, node-kem/1) test vectors; see docs/succession.md. Regenerate: go test ./succession -run TestVectors -update",
		RandomSeed: vectorRandomSeed,
	}
	keys := succession.KeyMap{}
	kems := succession.KEMMap{}
	var nodes []*identity.PrivateKey
	var kemKeys []*succession.KEMKey
	for i := range 5 {
		m, e, k := vectorSeeds(byte(0x30 + 0x10*i))
		key := identity.KeyFromSeeds(identity.KindNode, m, e)
		kk, err := succession.KEMKeyFromSeed(k)
		if err != nil {
			t.Fatal(err)
		}
		id := key.Public().ID(identity.NodePrefix)
		nodes, kemKeys, keys[id], kems[id] = append(nodes, key), append(kemKeys, kk), key.Public(), kk.Public()
		v.Nodes = append(v.Nodes, nodeVector{Name: "node-" + string(rune('0'+i)), MLDSA65Seed: hex.EncodeToString(m[:]),
			Ed25519Seed: hex.EncodeToString(e[:]), KEMSeed: hex.EncodeToString(k), ID: id})
		st, err := succession.SignKEM(key, id, kk.Public(), t0)
		if err != nil {
			t.Fatal(err)
		}
		v.KEMStatements = append(v.KEMStatements, string(st))
	}
	id := func(i int) string { return v.Nodes[i].ID }
	observers := []string{id(0), id(1), id(2), id(3)}
	slices.Sort(observers)
	cb, err := succession.SignCharter(nodes[4], succession.Charter{Tenant: "nhs-trust-a", Name: "caldicott-guardian", Holder: "dr.okafor",
		Successors: []string{"dr.li", "dr.patel"}, Observers: observers, K: 3, Admins: []string{"admin.a", "admin.b", "admin.c"},
		SuspectAfter: 60, Wait: 30, AcceptWithin: 20, Author: "admin.a", Node: id(4), Time: succession.FormatTime(t0)})
	if err != nil {
		t.Fatal(err)
	}
	charter, err := succession.ParseCharter(cb)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := *charter
	unsigned.Sig = nil
	body, err := unsigned.Encode()
	if err != nil {
		t.Fatal(err)
	}
	v.Charter = docVector{Canonical: string(cb), Hash: charter.Hash(), SignedMessage: hex.EncodeToString(identity.Message(succession.CharterDomain, body))}

	c := charter
	node := func(i int) (*identity.PrivateKey, string) { return nodes[i], id(i) }
	events := map[string][]byte{}
	add := func(name string, b []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e, err := succession.ParseEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		events[name] = b
		v.Events = append(v.Events, eventVector{Name: name, Kind: e.Kind(), Canonical: string(b), Hash: e.Hash()})
	}
	suspect := func(name string, i int, since, when int64) {
		k, n := node(i)
		b, err := succession.SignSuspicion(k, succession.Suspicion{Tenant: c.Tenant, Role: c.Name, Charter: c.Hash(), Holder: c.Holder,
			Node: n, Since: succession.FormatTime(at(since)), Time: succession.FormatTime(at(when))})
		add(name, b, err)
	}
	suspect("suspicion-0", 0, 0, 60)
	suspect("suspicion-1", 1, 0, 65)
	suspect("suspicion-2", 2, 0, 70)
	suspect("suspicion-by-non-observer", 4, 0, 66)
	{
		k, n := node(4)
		b, err := succession.SignPresence(k, succession.Presence{Tenant: c.Tenant, Role: c.Name, Holder: c.Holder, Node: n,
			Seen: succession.FormatTime(at(80)), Time: succession.FormatTime(at(85))})
		add("presence", b, err)
		b, err = succession.SignRefutation(k, succession.Refutation{Tenant: c.Tenant, Role: c.Name, Charter: c.Hash(), Holder: c.Holder, Node: n,
			Reason: "on leave, back on Monday", Time: succession.FormatTime(at(95))})
		add("refutation", b, err)
		b, err = succession.SignAcceptance(k, succession.Acceptance{Tenant: c.Tenant, Role: c.Name, Charter: c.Hash(), Successor: "dr.li", Node: n,
			Time: succession.FormatTime(at(105))})
		add("acceptance", b, err)
	}
	for i, a := range []string{"admin.a", "admin.b", "admin.c"} {
		k, n := node(i)
		b, err := succession.SignRemoval(k, succession.Removal{Tenant: c.Tenant, Role: c.Name, Charter: c.Hash(), Holder: c.Holder, Admin: a,
			Node: n, Reason: "resigned with immediate effect", Time: succession.FormatTime(at(int64(10 * (i + 1))))})
		add("removal-"+a, b, err)
	}

	states := []struct {
		name   string
		events []string
		now    int64
	}{
		{"suspected", []string{"suspicion-0", "suspicion-1", "suspicion-by-non-observer"}, 200},
		{"pending", []string{"suspicion-0", "suspicion-1", "suspicion-2"}, 80},
		{"offered", []string{"suspicion-0", "suspicion-1", "suspicion-2"}, 100},
		{"accepted", []string{"suspicion-0", "suspicion-1", "suspicion-2", "acceptance"}, 110},
		{"cascaded", []string{"suspicion-0", "suspicion-1", "suspicion-2"}, 125},
		{"cancelled-by-presence", []string{"suspicion-0", "suspicion-1", "suspicion-2", "presence"}, 100},
		{"cancelled-by-refutation", []string{"suspicion-0", "suspicion-1", "suspicion-2", "refutation"}, 100},
		{"removed", []string{"removal-admin.a", "removal-admin.b", "removal-admin.c"}, 30},
	}
	var accepted succession.RoleState
	for _, s := range states {
		var held [][]byte
		for _, n := range s.events {
			held = append(held, events[n])
		}
		st, err := succession.StateFromBytes(c, held, keys, at(s.now))
		if err != nil {
			t.Fatal(err)
		}
		v.States = append(v.States, stateVector{Name: s.name, Events: s.events, Now: succession.FormatTime(at(s.now)), State: st})
		if st.Certificate != nil && (s.name == "accepted" || s.name == "removed") {
			v.Certificates = append(v.Certificates, docVector{Name: s.name, Canonical: string(st.Certificate), Hash: st.CertificateHash})
		}
		if s.name == "accepted" {
			accepted = st
		}
	}

	plain := "Caldicott log: records office, cabinet 3.\nRegistry credential is in the sealed envelope in the safe."
	lk, ln := node(4)
	lb, err := succession.SealLetter(lk, ln, c, "dr.okafor", []byte(plain), kems, at(1))
	if err != nil {
		t.Fatal(err)
	}
	l, err := succession.ParseLetter(lb)
	if err != nil {
		t.Fatal(err)
	}
	v.Letter = letterVector{Plaintext: plain, Canonical: string(lb), Hash: l.Hash()}
	for _, o := range observers[:3] {
		i := slices.IndexFunc(v.Nodes, func(n nodeVector) bool { return n.ID == o })
		r, err := l.Release(accepted, kemKeys[i], nodes[i], o, kems, at(111))
		if err != nil {
			t.Fatal(err)
		}
		v.Letter.Released = append(v.Letter.Released, string(r))
	}
	return v
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	v := generate(t)
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./succession -run TestVectors -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the code generates: the formats changed (update docs/succession.md and regenerate with -update)", path)
	}
	checkVectors(t, want)
}

// checkVectors reads the published file as another implementation would and checks
// what can be checked from it alone: every document parses and re-encodes to itself,
// every signature verifies, the hashes match, the certificates verify, the states
// follow from the events, and the letter opens with node-4's KEM seed and the released
// shares.
func checkVectors(t *testing.T, file []byte) {
	var v vectors
	if err := json.Unmarshal(file, &v); err != nil {
		t.Fatal(err)
	}
	keys := succession.KeyMap{}
	var kemKeys []*succession.KEMKey
	for _, n := range v.Nodes {
		m, _ := hex.DecodeString(n.MLDSA65Seed)
		e, _ := hex.DecodeString(n.Ed25519Seed)
		k, _ := hex.DecodeString(n.KEMSeed)
		key := identity.KeyFromSeeds(identity.KindNode, [32]byte(m), [32]byte(e))
		if key.Public().ID(identity.NodePrefix) != n.ID {
			t.Fatalf("%s: the seeds give id %s", n.Name, key.Public().ID(identity.NodePrefix))
		}
		keys[n.ID] = key.Public()
		kk, err := succession.KEMKeyFromSeed(k)
		if err != nil {
			t.Fatal(err)
		}
		kemKeys = append(kemKeys, kk)
	}
	for i, s := range v.KEMStatements {
		st, err := succession.ParseKEM([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Verify(keys); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(st.Public().Bytes(), kemKeys[i].Public().Bytes()) {
			t.Fatalf("kem_statements[%d] does not state node-%d's key", i, i)
		}
	}
	c, err := succession.ParseCharter([]byte(v.Charter.Canonical))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(keys); err != nil || c.Hash() != v.Charter.Hash {
		t.Fatalf("charter: %v, hash %s", err, c.Hash())
	}
	sm, _ := hex.DecodeString(v.Charter.SignedMessage)
	if !ed25519.Verify(keys[c.Node].Ed25519, sm, c.Sig.Ed25519) {
		t.Fatal("charter: signed_message_hex is not what the Ed25519 signature signs")
	}
	events := map[string][]byte{}
	for _, e := range v.Events {
		ev, err := succession.VerifyEvent([]byte(e.Canonical), keys)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		if ev.Event().Hash() != e.Hash || ev.Event().Kind() != e.Kind {
			t.Fatalf("%s: hash or kind differs", e.Name)
		}
		events[e.Name] = []byte(e.Canonical)
	}
	for _, s := range v.States {
		var held [][]byte
		for _, n := range s.Events {
			held = append(held, events[n])
		}
		now, err := time.Parse(time.RFC3339, s.Now)
		if err != nil {
			t.Fatal(err)
		}
		st, err := succession.StateFromBytes(c, held, keys, now)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(st)
		b, _ := json.Marshal(s.State)
		if !bytes.Equal(a, b) {
			t.Fatalf("state %s does not follow from its events:\n%s\n%s", s.Name, a, b)
		}
	}
	for _, cv := range v.Certificates {
		cert, err := succession.ParseCertificate([]byte(cv.Canonical))
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.Verify(c, keys); err != nil || cert.Hash() != cv.Hash {
			t.Fatalf("certificate %s: %v", cv.Name, err)
		}
	}
	l, err := succession.ParseLetter([]byte(v.Letter.Canonical))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Verify(c, keys); err != nil || l.Hash() != v.Letter.Hash {
		t.Fatalf("letter: %v", err)
	}
	var released [][]byte
	for _, r := range v.Letter.Released {
		released = append(released, []byte(r))
	}
	plain, err := l.Open(kemKeys[4], v.Nodes[4].ID, released, keys)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != v.Letter.Plaintext {
		t.Fatalf("the letter opens to %q", plain)
	}
}

package consent

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/policy"
)

// t0 is the fixed clock of the tests and vectors.
var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// seeds makes the fixed key seeds the vectors publish: byte i of the ML-DSA-65 seed is
// b+i and of the Ed25519 seed b^i (as oar/testdata and fleet/testdata do).
func seeds(b byte) ([mldsa65.SeedSize]byte, [ed25519.SeedSize]byte) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	for i := range m {
		m[i], e[i] = b+byte(i), b^byte(i)
	}
	return m, e
}

// institution is one institution with one node: its root key, the node's key, ids.
type institution struct {
	name       string
	root, node *identity.PrivateKey
	rootID     string
	nodeID     string
	rootSeed   byte
	nodeSeed   byte
}

func newInstitution(name string, rootSeed, nodeSeed byte) *institution {
	rm, re := seeds(rootSeed)
	nm, ne := seeds(nodeSeed)
	in := &institution{name: name, rootSeed: rootSeed, nodeSeed: nodeSeed,
		root: identity.KeyFromSeeds(identity.KindRoot, rm, re), node: identity.KeyFromSeeds(identity.KindNode, nm, ne)}
	in.rootID, in.nodeID = in.root.Public().ID(identity.RootPrefix), in.node.Public().ID(identity.NodePrefix)
	return in
}

// signer is how another node knows this one: its node keys and its institution.
func (in *institution) signer() Signer {
	return Signer{Key: in.node.Public(), Institution: in.rootID}
}

// fixture: the hospital (the data's origin), the practice and the regional centre
// (audiences), and a third institution that should never be able to use a grant.
type fixture struct {
	hospital, practice, regional, third *institution
}

func newFixture() *fixture {
	return &fixture{
		hospital: newInstitution("hospital", 0x10, 0x80),
		practice: newInstitution("practice", 0x20, 0x90),
		regional: newInstitution("regional", 0x30, 0xa0),
		third:    newInstitution("third", 0x40, 0xb0),
	}
}

// invokeGrant is the first story's grant: a clinician at the small hospital lets her
// case go to the regional centre's oncology brain.
func (fx *fixture) invokeGrant() Grant {
	return Grant{
		ID:       "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
		Grantor:  Grantor{Principal: "dr.adeyemi", Tenant: "oncology", Clearance: policy.OfficialSensitive},
		Origin:   Origin{Node: fx.hospital.nodeID, Institution: fx.hospital.rootID},
		Audience: Audience{Institution: fx.regional.rootID, Node: fx.regional.nodeID},
		Scope:    Scope{Action: ActionInvoke, Brain: "oncology-mdt", Max: policy.OfficialSensitive},
		Purpose:  "direct care: second opinion on case 4411 from the regional tumour board",
		Issued:   "2026-03-02T09:00:00Z",
		Expires:  "2026-04-01T09:00:00Z",
		Uses:     3,
	}
}

// memoryGrant is the second story's grant: Dr Okafor at the hospital lets her practice
// principal read what the hospital holds about two of her cases.
func (fx *fixture) memoryGrant() Grant {
	return Grant{
		ID:       "00112233445566778899aabbccddeeff",
		Grantor:  Grantor{Principal: "okafor", Tenant: "cardiology", Clearance: policy.Secret},
		Origin:   Origin{Node: fx.hospital.nodeID, Institution: fx.hospital.rootID},
		Audience: Audience{Institution: fx.practice.rootID, Principal: "dr.okafor@" + fx.practice.rootID},
		Scope:    Scope{Action: ActionMemoryRead, Subjects: []string{"case-1187", "case-2290"}, Max: policy.OfficialSensitive},
		Purpose:  "continuity of care: follow-up of my hospital patients at the practice",
		Issued:   "2026-03-02T09:00:00Z",
		Expires:  "2026-03-09T09:00:00Z",
		Retain:   true,
	}
}

// invokeUse is the regional centre serving the first story's call.
func (fx *fixture) invokeUse() Use {
	return Use{Institution: fx.regional.rootID, Node: fx.regional.nodeID, From: fx.hospital.nodeID, Tenant: "oncology",
		Action: ActionInvoke, Brain: "oncology-mdt", Classification: policy.OfficialSensitive, Time: t0.Add(time.Hour)}
}

// memoryUse is the hospital releasing to Dr Okafor's practice principal.
func (fx *fixture) memoryUse() Use {
	return Use{Institution: fx.practice.rootID, Node: fx.practice.nodeID, Principal: "dr.okafor@" + fx.practice.rootID,
		From: fx.hospital.nodeID, Tenant: "cardiology", Action: ActionMemoryRead, Subjects: []string{"case-2290"},
		Classification: policy.Official, Time: t0.Add(time.Hour)}
}

func mustSign(t testing.TB, key *identity.PrivateKey, g Grant) []byte {
	t.Helper()
	b, err := Sign(key, g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, b []byte) *Grant {
	t.Helper()
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func wantCode(t testing.TB, err error, want Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want %s", want)
	}
	if got := CodeOf(err); got != want {
		t.Fatalf("got %v (code %q); want code %s", err, got, want)
	}
}

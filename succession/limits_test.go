package succession

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
)

// The caps must hold the largest document the other caps allow, or a valid charter,
// event, certificate or letter could not be written. Each is built here at its largest
// (ids of MaxIDLen bytes, full lists, longest reasons) with signatures of real size.
func TestCapsHoldTheLargest(t *testing.T) {
	sig := &identity.Signature{MLDSA65: make([]byte, mldsa65.SignatureSize), Ed25519: make([]byte, ed25519.SignatureSize)}
	node := func(i int) string {
		return fmt.Sprintf("node_%s%c%c", strings.Repeat("a", MaxIDLen-7), 'a'+i/26, 'a'+i%26)
	}
	id := func(p string, i int) string {
		return fmt.Sprintf("%s%s%02d", p, strings.Repeat("x", MaxIDLen-len(p)-2), i)
	}
	list := func(n int, f func(int) string) []string {
		var l []string
		for i := range n {
			l = append(l, f(i))
		}
		return l
	}
	hash := strings.Repeat("ab", 32)
	when := "2026-03-01T09:00:00Z"
	reason := strings.Repeat("é", MaxReasonLen/2)

	c := &Charter{V: CharterVersion, Tenant: id("t", 0), Name: id("r", 0), Seq: MaxSeq, Prev: hash, Holder: id("h", 0),
		Successors: list(MaxSuccessors, func(i int) string { return id("s", i) }), Observers: list(MaxObservers, node), K: MaxObservers,
		Admins: list(MaxAdmins, func(i int) string { return id("a", i) }), SuspectAfter: MaxDuration, Wait: MaxDuration, AcceptWithin: MaxDuration,
		Author: id("a", 0), Node: node(99), Time: when, Sig: sig}
	rem := &Removal{V: RemovalVersion, Tenant: id("t", 0), Role: id("r", 0), Charter: hash, Holder: id("h", 0), Admin: id("a", 0),
		Node: node(1), Reason: reason, Time: when, Sig: sig}
	ref := &Refutation{V: RefutationVersion, Tenant: id("t", 0), Role: id("r", 0), Charter: hash, Holder: id("h", 0),
		Node: node(1), Reason: reason, Time: when, Sig: sig}
	sus := &Suspicion{V: SuspicionVersion, Tenant: id("t", 0), Role: id("r", 0), Charter: hash, Holder: id("h", 0),
		Node: node(1), Since: when, Time: when, Sig: sig}
	l := &Letter{V: LetterVersion, ID: strings.Repeat("0", 32), Tenant: id("t", 0), Role: id("r", 0), Charter: hash, Holder: id("h", 0),
		Node: node(99), Time: when, K: MaxObservers, Nonce: make([]byte, letterNonceSize), Ciphertext: make([]byte, MaxLetterPlaintext+letterTagSize), Sig: sig}
	for i := range MaxObservers {
		l.Shares = append(l.Shares, LetterShare{Observer: node(i), Commitment: hash, Sealed: make([]byte, sealedShareSize)})
	}
	rs := &ReleasedShare{V: ShareVersion, Letter: hash, Tenant: id("t", 0), Role: id("r", 0), Charter: hash, Certificate: hash,
		Successor: id("s", 0), Node: node(1), To: node(2), Sealed: make([]byte, sealedShareSize), Time: when, Sig: sig}

	check := func(name string, v interface {
		validate() error
		format() format
	}) int {
		t.Helper()
		if err := v.validate(); err != nil {
			t.Fatalf("the largest %s is invalid: %v", name, err)
		}
		b, err := encode(v, v.format())
		if err != nil {
			t.Fatalf("the largest %s: %v", name, err)
		}
		t.Logf("largest %s: %d bytes (cap %d)", name, len(b), v.format().max)
		return len(b)
	}
	check("charter", c)
	check("suspicion", sus)
	check("refutation", ref)
	removal := check("removal", rem)
	check("released share", rs)
	letter := check("letter", l)

	// A fed/1 record adds its own members (node id, seq, prev, time, kind) and
	// signatures around a body: well under 8 KiB. The largest letter must leave that
	// room inside fleet.MaxRecordSize (64 KiB), so that the fleet can carry it.
	if letter+8<<10 > 64<<10 {
		t.Fatalf("the largest letter (%d bytes) leaves no room for a fed/1 record around it", letter)
	}
	// The largest certificate: k removals of the largest size.
	cert := &Certificate{V: CertificateVersion, Basis: BasisRemoval, Tenant: id("t", 0), Role: id("r", 0), Charter: hash,
		From: id("h", 0), To: id("s", 0), Effective: when}
	rb, _ := encode(rem, rem.format())
	for range max(MaxObservers, MaxAdmins) {
		cert.Evidence = append(cert.Evidence, rb)
	}
	b, err := encodeCertificate(cert)
	if err != nil {
		t.Fatalf("the largest certificate: %v", err)
	}
	t.Logf("largest certificate: %d bytes (cap %d; %d removals of %d)", len(b), MaxCertificateSize, len(cert.Evidence), removal)
}

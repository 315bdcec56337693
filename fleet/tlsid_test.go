package fleet

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
)

// testProtos is the ALPN list the handshake tests offer on both sides.
var testProtos = []string{"sios-test/1"}

func mustTLSCert(t testing.TB, n *identity.Node, now time.Time) tls.Certificate {
	t.Helper()
	c, err := NewTLSCertificate(n, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func enrolJSON(t testing.TB, c identity.Certificate) []byte {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// craft makes a certificate from tmpl for the key pub, signed by signer as issuer parent
// (nil: self-signed).
func craft(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) []byte {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func edPub(n *identity.Node) ed25519.PublicKey { return n.Key.Ed25519().Public().(ed25519.PublicKey) }

func trustOf(tr Trust) func() Trust { return func() Trust { return tr } }

// side is one end of a test connection.
type side struct {
	state tls.ConnectionState
	local string
	err   error
}

// exchange completes the handshake, then writes one byte and reads the other side's. In
// TLS 1.3 the client finishes its handshake before the server has checked the client's
// certificate, so only the read tells the client that the server refused it.
func exchange(tc *tls.Conn) side {
	s := side{local: tc.LocalAddr().String()}
	if s.err = tc.Handshake(); s.err != nil {
		return s
	}
	s.state = tc.ConnectionState()
	if _, s.err = tc.Write([]byte{1}); s.err != nil {
		return s
	}
	_, s.err = io.ReadFull(tc, make([]byte, 1))
	return s
}

// handshake connects a client with ccfg to a server with scfg over loopback TCP.
func handshake(t testing.TB, scfg, ccfg *tls.Config) (server, client side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan side, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		done <- exchange(tls.Server(c, scfg))
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	client = exchange(tls.Client(c, ccfg))
	c.Close()
	return <-done, client
}

// refusals records the calls of a server's onRefuse.
type refusals struct {
	mu      sync.Mutex
	remotes []string
	errs    []error
}

func (r *refusals) add(remote string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.remotes = append(r.remotes, remote)
	r.errs = append(r.errs, err)
}

func TestNewTLSCertificate(t *testing.T) {
	fx := newFixture(t)
	c := mustTLSCert(t, fx.a1, t0)
	leaf := c.Leaf
	if leaf.Subject.CommonName != fx.a1.ID() {
		t.Errorf("CN %q, want %s", leaf.Subject.CommonName, fx.a1.ID())
	}
	if !leaf.NotBefore.Equal(t0.Add(-time.Hour)) || !leaf.NotAfter.Equal(t0.Add(30*24*time.Hour)) {
		t.Errorf("valid %s .. %s, want an hour before %s for 30 days", leaf.NotBefore, leaf.NotAfter, t0)
	}
	if !edPub(fx.a1).Equal(leaf.PublicKey) {
		t.Error("leaf key is not the node's Ed25519 key")
	}
	if leaf.IsCA {
		t.Error("leaf is a CA")
	}
	var ext *pkix.Extension
	for i, e := range leaf.Extensions {
		if e.Id.Equal(EnrolmentOID) {
			ext = &leaf.Extensions[i]
		}
	}
	if ext == nil {
		t.Fatal("no enrolment extension")
	}
	if ext.Critical {
		t.Error("enrolment extension is critical")
	}
	var got identity.Certificate
	if err := json.Unmarshal(ext.Value, &got); err != nil || got.NodeID != fx.a1.ID() || got.Signature == nil {
		t.Errorf("enrolment extension holds %+v (%v)", got, err)
	}

	// A node whose key is not the one its certificate certifies gets no TLS certificate.
	mixed := &identity.Node{Key: fx.a1.Key, Cert: fx.a2.Cert}
	if _, err := NewTLSCertificate(mixed, t0); err == nil || !strings.Contains(err.Error(), fx.a2.ID()) {
		t.Errorf("mismatched node: err %v, want a refusal naming %s", err, fx.a2.ID())
	}
}

func TestVerifyPeer(t *testing.T) {
	fx := newFixture(t)
	a1, a2, b1 := fx.a1, fx.a2, fx.b1
	rootA, rootB := fx.rootA.ID(identity.RootPrefix), fx.rootB.ID(identity.RootPrefix)
	// leaf makes a1-like leaves: node n's key signs a template for CN cn holding ext.
	leaf := func(n *identity.Node, cn string, ext []byte, edit func(*x509.Certificate)) []byte {
		tmpl := leafTemplate(cn, ext, t0)
		if edit != nil {
			edit(tmpl)
		}
		return craft(t, tmpl, nil, edPub(n), n.Key.Ed25519())
	}
	good := func(n *identity.Node) []byte { return leaf(n, n.ID(), enrolJSON(t, n.Cert), nil) }
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tampered := a1.Cert
	tampered.Name = "mallory"

	tests := []struct {
		name  string
		raw   [][]byte
		trust Trust
		now   time.Time
		want  []string // substrings of the error; nil: accepted
		is    error
	}{
		{name: "a1", raw: [][]byte{good(a1)}},
		{name: "b1 trusting both", raw: [][]byte{good(b1)}},
		{name: "last valid second", raw: [][]byte{good(a1)}, now: t0.Add(30 * 24 * time.Hour)},
		{name: "no certificate", want: []string{"presented no TLS certificate"}},
		{name: "two certificates", raw: [][]byte{good(a1), good(a2)}, want: []string{"presented 2 TLS certificates"}},
		{name: "not DER", raw: [][]byte{[]byte("garbage")}, want: []string{"does not parse"}},
		{name: "ECDSA key",
			raw:  [][]byte{craft(t, leafTemplate(a1.ID(), enrolJSON(t, a1.Cert), t0), nil, &ecKey.PublicKey, ecKey)},
			want: []string{a1.ID(), "ECDSA, not the node's Ed25519 key"}},
		{name: "signed by another key",
			raw:  [][]byte{craft(t, leafTemplate(a1.ID(), enrolJSON(t, a1.Cert), t0), nil, edPub(a1), a2.Key.Ed25519())},
			want: []string{a1.ID(), "not self-signed by its key"}},
		{name: "issuer is not the subject",
			raw: [][]byte{craft(t, leafTemplate(a1.ID(), enrolJSON(t, a1.Cert), t0),
				&x509.Certificate{Subject: pkix.Name{CommonName: "some CA"}}, edPub(a1), a1.Key.Ed25519())},
			want: []string{"issuer is not its subject"}},
		{name: "expired", raw: [][]byte{good(a1)}, now: t0.Add(30*24*time.Hour + time.Second),
			want: []string{a1.ID(), rootA, "expired at 2026-03-31T12:00:00Z"}},
		{name: "not yet valid", raw: [][]byte{good(a1)}, now: t0.Add(-2 * time.Hour),
			want: []string{a1.ID(), rootA, "not valid before 2026-03-01T11:00:00Z"}},
		{name: "untrusted root", raw: [][]byte{good(b1)}, trust: fx.onlyA,
			want: []string{b1.ID(), rootB, "trusted institution root"}, is: ErrUntrusted},
		{name: "no extension",
			raw:  [][]byte{leaf(a1, a1.ID(), nil, func(c *x509.Certificate) { c.ExtraExtensions = nil })},
			want: []string{a1.ID(), "no enrolment extension (1.3.6.1.4.1.64655.1.1)"}},
		{name: "garbage extension", raw: [][]byte{leaf(a1, a1.ID(), []byte("not json"), nil)},
			want: []string{a1.ID(), "not an enrolment certificate"}},
		{name: "oversized extension",
			raw:  [][]byte{leaf(a1, a1.ID(), []byte(strings.Repeat(" ", MaxEnrolmentExtension+1)), nil)},
			want: []string{a1.ID(), "65537 bytes, more than the 65536 allowed (MaxEnrolmentExtension)"}},
		{name: "unknown member in extension",
			raw:  [][]byte{leaf(a1, a1.ID(), []byte(`{"extra":1,`+string(enrolJSON(t, a1.Cert)[1:])), nil)},
			want: []string{a1.ID(), `unknown object member name "extra"`}},
		{name: "repeated member in extension",
			raw:  [][]byte{leaf(a1, a1.ID(), []byte(`{"name":"mallory",`+string(enrolJSON(t, a1.Cert)[1:])), nil)},
			want: []string{a1.ID(), `duplicate object member name "name"`}},
		{name: "differently cased member in extension",
			raw:  [][]byte{leaf(a1, a1.ID(), []byte(strings.Replace(string(enrolJSON(t, a1.Cert)), `"name":`, `"Name":`, 1)), nil)},
			want: []string{a1.ID(), `unknown object member name "Name"`}},
		{name: "data after the certificate",
			raw:  [][]byte{leaf(a1, a1.ID(), append(enrolJSON(t, a1.Cert), " {}"...), nil)},
			want: []string{a1.ID(), "not an enrolment certificate", "trailing data"}},
		{name: "tampered enrolment", raw: [][]byte{leaf(a1, a1.ID(), enrolJSON(t, tampered), nil)},
			want: []string{a1.ID(), rootA, "enrolment certificate does not verify", "signature"}},
		{name: "another node's enrolment", raw: [][]byte{leaf(a1, a2.ID(), enrolJSON(t, a2.Cert), nil)},
			want: []string{a2.ID(), "not the Ed25519 key its enrolment certificate certifies"}},
		{name: "common name is another node", raw: [][]byte{leaf(a1, a2.ID(), enrolJSON(t, a1.Cert), nil)},
			want: []string{"names node " + a2.ID() + ", its enrolment certificate " + a1.ID()}},
		{name: "common name is not printable", raw: [][]byte{leaf(a1, "x\ny", enrolJSON(t, a1.Cert), nil)},
			want: []string{`names node "x\ny"`}},
		{name: "unknown critical extension",
			raw: [][]byte{leaf(a1, a1.ID(), enrolJSON(t, a1.Cert), func(c *x509.Certificate) {
				c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}})
			})},
			want: []string{"unknown critical extension 1.2.3.4"}},
		{name: "critical enrolment extension",
			raw: [][]byte{leaf(a1, a1.ID(), nil, func(c *x509.Certificate) {
				c.ExtraExtensions = []pkix.Extension{{Id: EnrolmentOID, Critical: true, Value: enrolJSON(t, a1.Cert)}}
			})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trust, now := fx.both, t0
			if tt.trust.roots != nil {
				trust = tt.trust
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			c, err := VerifyPeer(tt.raw, trust, now)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				leaf, _ := x509.ParseCertificate(tt.raw[0])
				if c.NodeID != leaf.Subject.CommonName {
					t.Fatalf("accepted %s for a leaf naming %s", c.NodeID, leaf.Subject.CommonName)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %s, want refused", c.NodeID)
			}
			var pe *PeerError
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T, not *PeerError: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q does not wrap %q", err, tt.is)
			}
		})
	}
}

func TestTLSHandshake(t *testing.T) {
	fx := newFixture(t)
	now := time.Now()
	tests := []struct{ server, client *identity.Node }{
		{fx.a1, fx.a2}, {fx.a2, fx.a1}, // one institution
		{fx.a1, fx.b1}, {fx.b1, fx.a1}, // two
	}
	for _, tt := range tests {
		t.Run(tt.server.Cert.Name+"←"+tt.client.Cert.Name, func(t *testing.T) {
			var ref refusals
			scfg := ServerTLSConfig(mustTLSCert(t, tt.server, now), trustOf(fx.both), testProtos, ref.add)
			ccfg := ClientTLSConfig(mustTLSCert(t, tt.client, now), trustOf(fx.both), testProtos, tt.server.ID())
			server, client := handshake(t, scfg, ccfg)
			if server.err != nil || client.err != nil {
				t.Fatalf("server: %v; client: %v", server.err, client.err)
			}
			if len(ref.errs) != 0 {
				t.Errorf("onRefuse called: %v", ref.errs)
			}
			pv := NewPeerVerifier(trustOf(fx.both))
			for _, s := range []struct {
				name string
				side side
				peer *identity.Node
			}{{"server", server, tt.client}, {"client", client, tt.server}} {
				cs := s.side.state
				if cs.Version != tls.VersionTLS13 {
					t.Errorf("%s: version %s, want TLS 1.3", s.name, tls.VersionName(cs.Version))
				}
				if cs.CurveID != tls.X25519MLKEM768 {
					t.Errorf("%s: key exchange %s, want X25519MLKEM768", s.name, cs.CurveID)
				}
				if cs.NegotiatedProtocol != testProtos[0] {
					t.Errorf("%s: ALPN %q, want %q", s.name, cs.NegotiatedProtocol, testProtos[0])
				}
				c, err := pv.Peer(cs)
				if err != nil || c.NodeID != s.peer.ID() {
					t.Errorf("%s: Peer = %v, %v; want %s", s.name, c, err, s.peer.ID())
				}
			}
		})
	}
}

func TestTLSHandshakeRefused(t *testing.T) {
	fx := newFixture(t)
	now := time.Now()
	cert := func(n *identity.Node) tls.Certificate { return mustTLSCert(t, n, now) }
	tests := []struct {
		name     string
		server   *tls.Config
		client   *tls.Config
		refusing string // "server" or "client"
		is       error
		want     []string // substrings of the refusing side's error
	}{
		{name: "untrusted client",
			server:   ServerTLSConfig(cert(fx.a1), trustOf(fx.onlyA), testProtos, nil),
			client:   ClientTLSConfig(cert(fx.b1), trustOf(fx.both), testProtos, fx.a1.ID()),
			refusing: "server", is: ErrUntrusted, want: []string{fx.b1.ID(), fx.rootB.ID(identity.RootPrefix)}},
		{name: "untrusted server",
			server:   ServerTLSConfig(cert(fx.b1), trustOf(fx.both), testProtos, nil),
			client:   ClientTLSConfig(cert(fx.a1), trustOf(fx.onlyA), testProtos, ""),
			refusing: "client", is: ErrUntrusted, want: []string{fx.b1.ID()}},
		{name: "wrong peer",
			server:   ServerTLSConfig(cert(fx.a1), trustOf(fx.both), testProtos, nil),
			client:   ClientTLSConfig(cert(fx.a2), trustOf(fx.both), testProtos, fx.b1.ID()),
			refusing: "client", is: ErrWrongPeer, want: []string{fx.a1.ID(), "not the node dialled (" + fx.b1.ID() + ")"}},
		{name: "expired client certificate",
			server:   ServerTLSConfig(cert(fx.a1), trustOf(fx.both), testProtos, nil),
			client:   ClientTLSConfig(mustTLSCert(t, fx.a2, now.Add(-31*24*time.Hour)), trustOf(fx.both), testProtos, ""),
			refusing: "server", want: []string{fx.a2.ID(), "expired"}},
		{name: "client without certificate",
			server:   ServerTLSConfig(cert(fx.a1), trustOf(fx.both), testProtos, nil),
			client:   &tls.Config{InsecureSkipVerify: true, NextProtos: testProtos},
			refusing: "server", want: []string{"certificate"}},
		{name: "client offering TLS 1.2 only",
			server:   ServerTLSConfig(cert(fx.a1), trustOf(fx.both), testProtos, nil),
			client:   tls12Only(ClientTLSConfig(cert(fx.a2), trustOf(fx.both), testProtos, "")),
			refusing: "server", want: []string{"version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, client := handshake(t, tt.server, tt.client)
			if server.err == nil || client.err == nil {
				t.Fatalf("connected (server: %v; client: %v), want refused", server.err, client.err)
			}
			err := server.err
			if tt.refusing == "client" {
				err = client.err
			}
			t.Logf("%s refused: %v", tt.refusing, err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%s error %q does not say %q", tt.refusing, err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%s error %q does not wrap %q", tt.refusing, err, tt.is)
			}
		})
	}
}

func tls12Only(c *tls.Config) *tls.Config {
	c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	return c
}

func TestTLSHandshakeOnRefuse(t *testing.T) {
	fx := newFixture(t)
	now := time.Now()
	var ref refusals
	scfg := ServerTLSConfig(mustTLSCert(t, fx.a1, now), trustOf(fx.onlyA), testProtos, ref.add)
	ccfg := ClientTLSConfig(mustTLSCert(t, fx.b1, now), trustOf(fx.both), testProtos, fx.a1.ID())
	server, client := handshake(t, scfg, ccfg)
	if server.err == nil || client.err == nil {
		t.Fatalf("b1 connected to a server trusting only A (server: %v; client: %v)", server.err, client.err)
	}
	if len(ref.errs) != 1 {
		t.Fatalf("onRefuse called %d times, want once", len(ref.errs))
	}
	err := ref.errs[0]
	if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), fx.b1.ID()) {
		t.Errorf("onRefuse error %q, want ErrUntrusted naming %s", err, fx.b1.ID())
	}
	var pe *PeerError
	if !errors.As(err, &pe) || pe.Node != fx.b1.ID() || pe.Root != fx.rootB.ID(identity.RootPrefix) {
		t.Errorf("onRefuse error %#v, want a *PeerError for b1 of root B", err)
	}
	if ref.remotes[0] != client.local {
		t.Errorf("onRefuse remote %q, want the client's address %s", ref.remotes[0], client.local)
	}
}

func TestPeerVerifier(t *testing.T) {
	fx := newFixture(t)
	now := time.Now()
	state := func(n *identity.Node, at time.Time) tls.ConnectionState {
		return tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{mustTLSCert(t, n, at).Leaf}}
	}
	var mu sync.Mutex
	trust := fx.both
	pv := NewPeerVerifier(func() Trust { mu.Lock(); defer mu.Unlock(); return trust })

	a1, a2, b1 := state(fx.a1, now), state(fx.a2, now), state(fx.b1, now)
	for range 2 { // the second round is answered from the cache
		for _, s := range []struct {
			cs tls.ConnectionState
			n  *identity.Node
		}{{a1, fx.a1}, {a2, fx.a2}, {b1, fx.b1}} {
			if c, err := pv.Peer(s.cs); err != nil || c.NodeID != s.n.ID() {
				t.Fatalf("Peer = %v, %v; want %s", c, err, s.n.ID())
			}
		}
	}
	if len(pv.cache) != 3 || len(pv.roots) != 2 {
		t.Errorf("cache holds %d leaves and %d roots, want 3 and 2", len(pv.cache), len(pv.roots))
	}

	// A cached leaf is refused once its root is no longer trusted.
	mu.Lock()
	trust = fx.onlyA
	mu.Unlock()
	if _, err := pv.Peer(b1); !errors.Is(err, ErrUntrusted) {
		t.Errorf("b1 after unpinning root B: %v, want ErrUntrusted", err)
	}
	if _, err := pv.Peer(a1); err != nil {
		t.Errorf("a1 after unpinning root B: %v", err)
	}
	if _, err := pv.Peer(state(fx.a1, now.Add(-31*24*time.Hour))); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired leaf: %v, want refused", err)
	}
	if _, err := pv.Peer(tls.ConnectionState{HandshakeComplete: true}); err == nil {
		t.Error("no peer certificate accepted")
	}
	if _, err := pv.Peer(tls.ConnectionState{PeerCertificates: a1.PeerCertificates}); err == nil {
		t.Error("incomplete handshake accepted")
	}

	// A leaf of an untrusted root is refused and not remembered.
	strict := NewPeerVerifier(trustOf(fx.onlyA))
	if _, err := strict.Peer(b1); !errors.Is(err, ErrUntrusted) {
		t.Errorf("b1 trusting only A: %v, want ErrUntrusted", err)
	}
	if len(strict.cache) != 0 || len(strict.roots) != 0 {
		t.Errorf("untrusted leaf cached: %d leaves, %d roots", len(strict.cache), len(strict.roots))
	}

	// The cache forgets everything when full.
	pv.mu.Lock()
	for i := len(pv.cache); i < maxPeerCache; i++ {
		pv.cache[sha256.Sum256([]byte(strconv.Itoa(i)))] = &peerLeaf{}
	}
	pv.mu.Unlock()
	if _, err := pv.Peer(state(fx.a2, now.Add(time.Minute))); err != nil { // a leaf not cached yet
		t.Fatal(err)
	}
	if len(pv.cache) != 1 || len(pv.roots) != 1 {
		t.Errorf("full cache holds %d leaves and %d roots after a miss, want 1 and 1", len(pv.cache), len(pv.roots))
	}
}

// FuzzVerifyPeer: VerifyPeer never panics on a leaf's bytes, refuses with a *PeerError,
// and accepts only a leaf that names the node it proves to be.
func FuzzVerifyPeer(f *testing.F) {
	fx := newFixture(f)
	for _, n := range []*identity.Node{fx.a1, fx.b1} {
		f.Add(mustTLSCert(f, n, t0).Certificate[0])
	}
	noExt := leafTemplate(fx.a1.ID(), nil, t0)
	noExt.ExtraExtensions = nil
	f.Add(craft(f, noExt, nil, edPub(fx.a1), fx.a1.Key.Ed25519()))
	f.Add(craft(f, leafTemplate(fx.a1.ID(), []byte(`{"v":"sios-cert/1"}`), t0), nil, edPub(fx.a1), fx.a1.Key.Ed25519()))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := VerifyPeer([][]byte{raw}, fx.both, t0)
		if err != nil {
			var pe *PeerError
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T, not *PeerError: %v", err, err)
			}
			return
		}
		leaf, err := x509.ParseCertificate(raw)
		if err != nil {
			t.Fatalf("accepted a leaf that does not parse: %v", err)
		}
		if c.NodeID != leaf.Subject.CommonName {
			t.Fatalf("accepted node %s for a leaf naming %q", c.NodeID, leaf.Subject.CommonName)
		}
	})
}

// BenchmarkHandshake measures complete mutual-TLS handshakes on loopback, each with a
// fresh TCP connection and no session resumption: "verified" with the node identity
// checks on both sides, "unverified" with the same certificates and no checks, the
// baseline that shows what the checks cost.
func BenchmarkHandshake(b *testing.B) {
	fx := newFixture(b)
	now := time.Now()
	scert, ccert := mustTLSCert(b, fx.a1, now), mustTLSCert(b, fx.a2, now)
	// The server config lives as long as the node; a client config is made per dial, as
	// the transport does, so only the server remembers the peer's leaf.
	verified := func() (*tls.Config, func() *tls.Config) {
		return ServerTLSConfig(scert, trustOf(fx.both), testProtos, nil),
			func() *tls.Config { return ClientTLSConfig(ccert, trustOf(fx.both), testProtos, fx.a1.ID()) }
	}
	unverified := func() (*tls.Config, func() *tls.Config) {
		return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{scert}, ClientAuth: tls.RequireAnyClientCert, NextProtos: testProtos},
			func() *tls.Config {
				return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ccert}, InsecureSkipVerify: true, NextProtos: testProtos}
			}
	}
	for _, bm := range []struct {
		name string
		cfgs func() (*tls.Config, func() *tls.Config)
	}{{"verified", verified}, {"unverified", unverified}} {
		b.Run(bm.name, func(b *testing.B) {
			scfg, ccfg := bm.cfgs()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						exchange(tls.Server(c, scfg))
					}()
				}
			}()
			n := 0
			for b.Loop() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				s := exchange(tls.Client(c, ccfg()))
				c.Close()
				if s.err != nil {
					b.Fatal(s.err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

package fleet

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// Mutual TLS between nodes. A node's TLS certificate is self-signed with its Ed25519
// node key and carries its enrolment certificate in an extension; a peer is accepted
// when that enrolment certificate verifies, chains to a pinned institution root, and
// certifies the very key that signed the TLS handshake. Web PKI plays no part.

// EnrolmentOID identifies the X.509 extension of a node's TLS certificate that holds its
// enrolment certificate (identity.Certificate) as JSON. The extension is not critical.
// The arc 1.3.6.1.4.1.64655 is sios's private enterprise number; never reuse .1.1.
var EnrolmentOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 64655, 1, 1}

const (
	// maxPeerCache is the most verified leaves a PeerVerifier remembers; it forgets them
	// all when full.
	maxPeerCache = 4096
	// tlsBackdate and tlsLifetime bound a TLS certificate's validity around its making:
	// the backdate absorbs clock skew between nodes.
	tlsBackdate = time.Hour
	tlsLifetime = 30 * 24 * time.Hour
)

// keyExchanges is the only key exchange fleet TLS offers or accepts: hybrid
// post-quantum ML-KEM-768 with X25519.
var keyExchanges = []tls.CurveID{tls.X25519MLKEM768}

// ErrWrongPeer is returned when the peer is a trusted node, but not the one dialled.
var ErrWrongPeer = errors.New("not the node dialled")

// NewTLSCertificate makes the node's TLS certificate, valid from an hour before now for
// 30 days. It must be made again before then.
func NewTLSCertificate(n *identity.Node, now time.Time) (tls.Certificate, error) {
	key := n.Key.Ed25519()
	pub := key.Public().(ed25519.PublicKey)
	certified, err := n.Cert.Node.Parse()
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("node %s: enrolment certificate: %v", n.ID(), err)
	}
	if !certified.Ed25519.Equal(pub) {
		return tls.Certificate{}, fmt.Errorf("node %s: its key is not the one its enrolment certificate certifies", n.ID())
	}
	enrol, err := json.Marshal(n.Cert)
	if err != nil {
		return tls.Certificate{}, err
	}
	if len(enrol) > MaxEnrolmentExtension {
		return tls.Certificate{}, fmt.Errorf("node %s: enrolment certificate is %d bytes, more than the %d a peer accepts (MaxEnrolmentExtension)",
			n.ID(), len(enrol), MaxEnrolmentExtension)
	}
	tmpl := leafTemplate(n.ID(), enrol, now)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("node %s: TLS certificate: %v", n.ID(), err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("node %s: TLS certificate: %v", n.ID(), err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// leafTemplate is the TLS certificate of node id carrying enrol in its extension.
// The serial number is left to x509.CreateCertificate, which picks a random one.
func leafTemplate(id string, enrol []byte, now time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: id},
		NotBefore:             now.Add(-tlsBackdate),
		NotAfter:              now.Add(tlsLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		ExtraExtensions:       []pkix.Extension{{Id: EnrolmentOID, Value: enrol}},
	}
}

// PeerError is a refused peer: who it claimed to be (either may be empty) and why.
type PeerError struct {
	Node, Root string
	Err        error
}

func (e *PeerError) Error() string {
	switch {
	case e.Node != "" && e.Root != "":
		return fmt.Sprintf("peer %s (root %s): %v", e.Node, e.Root, e.Err)
	case e.Node != "":
		return fmt.Sprintf("peer %s: %v", e.Node, e.Err)
	}
	return fmt.Sprintf("peer: %v", e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

// claimed makes a name taken from a peer's certificate safe to print: ids are
// [a-z0-9_], anything else is quoted and shortened.
func claimed(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return strconv.QuoteToASCII(short(s))
		}
	}
	return short(s)
}

// peerLeaf is what the checks of a leaf that depend on nothing but its bytes establish.
// The validity period and the pinned root are checked on each use: time passes and the
// trust store changes.
type peerLeaf struct {
	cert                identity.Certificate
	rootKey             identity.PublicKey
	notBefore, notAfter time.Time
}

// VerifyPeer checks a peer's presented certificate chain (rawCerts[0] is the leaf; a sios
// node presents nothing else) and returns its enrolment certificate. Errors are *PeerError.
func VerifyPeer(rawCerts [][]byte, trust Trust, now time.Time) (*identity.Certificate, error) {
	if err := checkChainLen(len(rawCerts)); err != nil {
		return nil, err
	}
	p, err := parseLeaf(rawCerts[0])
	if err != nil {
		return nil, err
	}
	if err := p.check(trust, now); err != nil {
		return nil, err
	}
	c := p.cert
	return &c, nil
}

func checkChainLen(n int) error {
	switch {
	case n == 0:
		return &PeerError{Err: errors.New("presented no TLS certificate")}
	case n > 1:
		return &PeerError{Err: fmt.Errorf("presented %d TLS certificates; a node presents one, self-signed", n)}
	}
	return nil
}

// parseLeaf makes the checks of a leaf that depend only on its bytes. Errors are *PeerError.
func parseLeaf(raw []byte) (*peerLeaf, error) {
	leaf, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, &PeerError{Err: fmt.Errorf("TLS certificate does not parse: %v", err)}
	}
	pe := &PeerError{Node: claimed(leaf.Subject.CommonName)}
	refuse := func(format string, a ...any) (*peerLeaf, error) {
		pe.Err = fmt.Errorf(format, a...)
		return nil, pe
	}
	pub, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok {
		return refuse("TLS certificate key is %v, not the node's Ed25519 key", leaf.PublicKeyAlgorithm)
	}
	// Not CheckSignatureFrom(leaf): that demands a CA certificate, and the leaf is none.
	if !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		return refuse("TLS certificate is not self-signed: its issuer is not its subject")
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return refuse("TLS certificate is not self-signed by its key: %v", err)
	}
	var ext []byte
	found := false
	for _, e := range leaf.Extensions {
		if e.Id.Equal(EnrolmentOID) {
			ext, found = e.Value, true
		}
	}
	for _, id := range leaf.UnhandledCriticalExtensions {
		if !id.Equal(EnrolmentOID) {
			return refuse("TLS certificate has an unknown critical extension %v", id)
		}
	}
	if !found {
		return refuse("TLS certificate has no enrolment extension (%v)", EnrolmentOID)
	}
	if len(ext) > MaxEnrolmentExtension {
		return refuse("enrolment extension is %d bytes, more than the %d allowed (MaxEnrolmentExtension)", len(ext), MaxEnrolmentExtension)
	}
	p := &peerLeaf{notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
	// Unknown members are refused (they would not be covered by the root's signature),
	// and so are repeated and differently cased ones, which readers could take apart.
	if err := jcs.DecodeStrict(ext, &p.cert); err != nil {
		return refuse("enrolment extension is not an enrolment certificate: %v", err)
	}
	pe.Node, pe.Root = claimed(p.cert.NodeID), claimed(p.cert.RootID)
	nodeKey, rootKey, err := p.cert.Verify()
	if err != nil {
		return refuse("enrolment certificate does not verify: %v", err)
	}
	p.rootKey = rootKey
	if !nodeKey.Ed25519.Equal(pub) {
		return refuse("TLS certificate key is not the Ed25519 key its enrolment certificate certifies")
	}
	if cn := leaf.Subject.CommonName; cn != p.cert.NodeID {
		return refuse("TLS certificate names node %s, its enrolment certificate %s", claimed(cn), p.cert.NodeID)
	}
	return p, nil
}

// check makes the checks that depend on the moment and on the trust store.
func (p *peerLeaf) check(trust Trust, now time.Time) error {
	pe := &PeerError{Node: p.cert.NodeID, Root: p.cert.RootID}
	switch {
	case now.Before(p.notBefore):
		pe.Err = fmt.Errorf("TLS certificate is not valid before %s (is a clock wrong?)", p.notBefore.UTC().Format(time.RFC3339))
	case now.After(p.notAfter):
		pe.Err = fmt.Errorf("TLS certificate expired at %s", p.notAfter.UTC().Format(time.RFC3339))
	case !trust.Has(p.cert.RootID, p.rootKey):
		pe.Err = ErrUntrusted
	default:
		return nil
	}
	return pe
}

// ServerTLSConfig is the configuration that answers other nodes: TLS 1.3 only, a client
// certificate required and checked as VerifyPeer does against trust(), called on each
// handshake, with a PeerVerifier of its own remembering the leaves it has verified.
// A refused client is passed to onRefuse (if not nil) with its remote address
// before the handshake fails.
//
// Each handshake runs on a copy of these settings made by GetConfigForClient, the one
// place that learns the remote address: set ALPN names through protos, as changes to the
// returned config (or to clones of it) do not reach the handshake.
// The key exchange is X25519MLKEM768 only: a peer that cannot do post-quantum key
// exchange is refused rather than quietly downgraded.
func ServerTLSConfig(cert tls.Certificate, trust func() Trust, protos []string, onRefuse func(remote string, err error)) *tls.Config {
	pv := NewPeerVerifier(trust)
	verify := func(remote string) func(tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			_, err := pv.verify(cs.PeerCertificates, time.Now())
			if err != nil && onRefuse != nil {
				onRefuse(remote, err)
			}
			return err
		}
	}
	base := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: keyExchanges,
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAnyClientCert,
		NextProtos:       protos,
	}
	cfg := base.Clone()
	cfg.VerifyConnection = verify("") // used only if GetConfigForClient is taken away
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		remote := ""
		if hello.Conn != nil {
			remote = hello.Conn.RemoteAddr().String()
		}
		c := base.Clone()
		c.VerifyConnection = verify(remote)
		return c, nil
	}
	return cfg
}

// ClientTLSConfig is the configuration for dialling another node: TLS 1.3 only, the
// server checked as VerifyPeer does against trust(), called on each handshake (with a
// PeerVerifier of its own, so reuse the config to save repeated checks), and, when
// wantNode is not "", required to be that node (else the error wraps ErrWrongPeer).
// The key exchange is X25519MLKEM768 only, as for the server.
func ClientTLSConfig(cert tls.Certificate, trust func() Trust, protos []string, wantNode string) *tls.Config {
	pv := NewPeerVerifier(trust)
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: keyExchanges,
		Certificates:     []tls.Certificate{cert},
		NextProtos:       protos,
		// The server's certificate is self-signed: its identity is the enrolment
		// certificate VerifyConnection checks, not a Web PKI chain.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			c, err := pv.verify(cs.PeerCertificates, time.Now())
			if err != nil {
				return err
			}
			if wantNode != "" && c.NodeID != wantNode {
				return &PeerError{Node: c.NodeID, Root: c.RootID, Err: fmt.Errorf("%w (%s)", ErrWrongPeer, claimed(wantNode))}
			}
			return nil
		},
	}
}

// PeerVerifier tells who the peer of a TLS connection is, for HTTP handlers (r.TLS) and
// the like. It remembers the leaves it has verified whose root was trusted then, so that
// a peer seen before costs a hash and a trust lookup, not a certificate verification.
// It is safe for concurrent use.
type PeerVerifier struct {
	trust func() Trust

	mu    sync.Mutex
	cache map[[sha256.Size]byte]*peerLeaf // guarded by mu; by SHA-256 of the leaf
	// roots holds one copy of each root key the cached leaves share (a parsed ML-DSA-65
	// key is tens of KiB); guarded by mu, cleared with cache.
	roots map[string]identity.PublicKey
}

// NewPeerVerifier returns a verifier that checks peers against trust(), called on each use.
func NewPeerVerifier(trust func() Trust) *PeerVerifier {
	return &PeerVerifier{trust: trust, cache: map[[sha256.Size]byte]*peerLeaf{}, roots: map[string]identity.PublicKey{}}
}

// Peer returns the verified enrolment certificate of the peer of a completed handshake,
// checked as VerifyPeer does: the leaf's validity period and its root are checked again
// on every call. Errors are *PeerError.
func (v *PeerVerifier) Peer(cs tls.ConnectionState) (*identity.Certificate, error) {
	if !cs.HandshakeComplete {
		return nil, &PeerError{Err: errors.New("TLS handshake not complete")}
	}
	return v.verify(cs.PeerCertificates, time.Now())
}

// verify checks a handshake's peer chain, from the cache when it can.
func (v *PeerVerifier) verify(certs []*x509.Certificate, now time.Time) (*identity.Certificate, error) {
	if err := checkChainLen(len(certs)); err != nil {
		return nil, err
	}
	trust := v.trust()
	raw := certs[0].Raw
	sum := sha256.Sum256(raw)
	v.mu.Lock()
	p := v.cache[sum]
	v.mu.Unlock()
	if p == nil {
		var err error
		if p, err = parseLeaf(raw); err != nil {
			return nil, err
		}
		// Only leaves of trusted roots are kept, so that strangers cannot fill the cache
		// with roots of their own.
		if err := p.check(trust, now); err != nil {
			return nil, err
		}
		v.mu.Lock()
		if len(v.cache) >= maxPeerCache {
			clear(v.cache)
			clear(v.roots)
		}
		// The root id is derived from the root key, so leaves of one root share its key.
		if k, ok := v.roots[p.cert.RootID]; ok {
			p.rootKey = k
		} else {
			v.roots[p.cert.RootID] = p.rootKey
		}
		v.cache[sum] = p
		v.mu.Unlock()
	} else if err := p.check(trust, now); err != nil {
		return nil, err
	}
	c := p.cert
	return &c, nil
}

package fleet

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/jcs"
)

// The local trust store: the institution roots this node's operator has pinned, one
// file each in DIR/trust/roots/, and the TPM endorsement keys accepted from each
// institution's nodes, one file per institution in DIR/trust/eks/. A node always
// trusts its own institution's root. Trust is decided here, locally; nothing in the
// fleet can add to it.

// RootFileVersion is the "v" of an exported root public key.
const RootFileVersion = "sios-root/1"

// maxRootFile bounds a root file read from outside.
const maxRootFile = 64 << 10

// RootFile is an institution root's public key as operators hand it to each other.
type RootFile struct {
	V      string `json:"v"`
	RootID string `json:"root_id"`
	identity.PublicKeyJSON
}

// ExportRoot describes the root that enrolled this node.
func ExportRoot(cert identity.Certificate) RootFile {
	return RootFile{V: RootFileVersion, RootID: cert.RootID, PublicKeyJSON: cert.Root}
}

// ParseRoot decodes a root file and checks that its id matches its keys.
func ParseRoot(data []byte) (RootFile, identity.PublicKey, error) {
	var rf RootFile
	if len(data) > maxRootFile {
		return rf, identity.PublicKey{}, fmt.Errorf("root file is %d bytes, more than %d (maxRootFile)", len(data), maxRootFile)
	}
	// Strictly: a root file comes from another institution, and a member that one
	// reader takes and another skips or overrides has no place in what decides trust.
	if err := jcs.DecodeStrict(data, &rf); err != nil {
		return rf, identity.PublicKey{}, fmt.Errorf("not a root file: %v", err)
	}
	if rf.V != RootFileVersion {
		return rf, identity.PublicKey{}, fmt.Errorf("root file v is %q, want %q", rf.V, RootFileVersion)
	}
	pub, err := rf.PublicKeyJSON.Parse()
	if err != nil {
		return rf, identity.PublicKey{}, err
	}
	if id := pub.ID(identity.RootPrefix); id != rf.RootID {
		return rf, identity.PublicKey{}, fmt.Errorf("root_id %s does not match the keys (they are %s's)", rf.RootID, id)
	}
	return rf, pub, nil
}

func rootsDir(dataDir string) string { return filepath.Join(dataDir, "trust", "roots") }

// AddRoot pins the root in data (a RootFile) in dataDir's trust store and returns it.
// Pinning a root already pinned changes nothing.
func AddRoot(dataDir string, data []byte) (RootFile, error) {
	rf, _, err := ParseRoot(data)
	if err != nil {
		return rf, err
	}
	dir := rootsDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return rf, err
	}
	out, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return rf, err
	}
	return rf, files.Replace(filepath.Join(dir, rf.RootID+".json"), append(out, '\n'), 0o644)
}

// TrustedRoot is one pinned root and where it came from, with the endorsement keys
// pinned for its institution's TPM-attested nodes.
type TrustedRoot struct {
	RootID string `json:"root_id"`
	Own    bool   `json:"own"` // this node's own institution
	File   string `json:"file,omitempty"`
	// EKSHA256 lists the pinned EK hashes and EKCAs the pinned EK CA certificates.
	EKSHA256 []string  `json:"ek_sha256,omitempty"`
	EKCAs    []TrustCA `json:"ek_cas,omitempty"`
	EKFile   string    `json:"ek_file,omitempty"`
	// OwnEKSHA256 is this node's own TPM's EK, accepted for its own institution.
	OwnEKSHA256 string `json:"own_ek_sha256,omitempty"`
}

// TrustCA is a pinned EK CA certificate as 'sios trust list' shows it.
type TrustCA struct {
	Subject string `json:"subject"`
	SHA256  string `json:"sha256"` // of the DER certificate
}

// LoadTrust returns the roots this node trusts: its own institution's and every one
// pinned in the store, with the EKs pinned for each institution's TPM-attested nodes.
// A node whose key is sealed to a TPM also accepts its own TPM's EK for its own
// institution (its evidence, DIR/node.evidence, must bind its certificate's keys). A
// file in the store that does not verify is an error naming it.
func LoadTrust(dataDir string, own identity.Certificate) (Trust, []TrustedRoot, error) {
	ownPub, err := own.Root.Parse()
	if err != nil {
		return Trust{}, nil, err
	}
	keys := []identity.PublicKey{ownPub}
	list := []TrustedRoot{{RootID: own.RootID, Own: true}}
	names, err := filepath.Glob(filepath.Join(rootsDir(dataDir), "*.json"))
	if err != nil {
		return Trust{}, nil, err
	}
	sort.Strings(names)
	eks, ekFiles, err := loadEKs(dataDir)
	if err != nil {
		return Trust{}, nil, err
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return Trust{}, nil, err
		}
		rf, pub, err := ParseRoot(data)
		if err != nil {
			return Trust{}, nil, fmt.Errorf("%s: %v", name, err)
		}
		if strings.TrimSuffix(filepath.Base(name), ".json") != rf.RootID {
			return Trust{}, nil, fmt.Errorf("%s holds root %s: the file name must be its id", name, rf.RootID)
		}
		if rf.RootID == own.RootID {
			continue
		}
		keys = append(keys, pub)
		list = append(list, TrustedRoot{RootID: rf.RootID, File: name})
	}
	if ownEK, err := ownEK(dataDir, own); err != nil {
		return Trust{}, nil, err
	} else if ownEK != "" {
		p := eks[own.RootID]
		p.EKSHA256 = append(p.EKSHA256, ownEK)
		eks[own.RootID] = p
		list[0].OwnEKSHA256 = ownEK
	}
	trust := NewTrust(keys...)
	for rootID, p := range eks {
		if _, ok := trust.roots[rootID]; ok {
			trust = trust.WithEKPolicy(rootID, p)
		}
	}
	for i := range list {
		ek := ekFiles[list[i].RootID]
		if ek == nil {
			continue
		}
		list[i].EKSHA256, list[i].EKFile = ek.EKSHA256, ek.path
		for _, c := range ek.certs {
			sum := sha256.Sum256(c.Raw)
			list[i].EKCAs = append(list[i].EKCAs, TrustCA{Subject: c.Subject.String(), SHA256: hex.EncodeToString(sum[:])})
		}
	}
	return trust, list, nil
}

// ownEK is the EK of this node's own TPM ("" when its key is not sealed to one): the
// EK its evidence names, once the evidence is shown to bind the certificate's keys.
func ownEK(dataDir string, own identity.Certificate) (string, error) {
	ev, err := tpm.ReadEvidence(dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	keys, _, err := own.Verify()
	if err != nil {
		return "", err
	}
	v, err := tpm.Verify(ev, own.NodeID, keys, tpm.Policy{EKSHA256: []string{ev.Binding.EKSHA256}})
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(dataDir, tpm.EvidenceFile), err)
	}
	return v.EKSHA256, nil
}

// EKTrustVersion is the "v" of an institution's EK trust file.
const EKTrustVersion = "sios-ek-trust/1"

// maxEKTrustFile bounds an EK trust file, and MaxPinnedEKs and MaxPinnedEKCAs what one
// may hold: enough for a fleet's worth of machines and every manufacturer's CA.
const (
	maxEKTrustFile = 4 << 20
	MaxPinnedEKs   = 10000
	MaxPinnedEKCAs = 256
)

// EKTrust is the endorsement keys an operator accepts from one institution's nodes
// (DIR/trust/eks/ROOTID.json): EKs pinned by hash (tpm.EKSHA256) and EK CA
// certificates (DER), any of which an EK certificate may chain to.
type EKTrust struct {
	V           string   `json:"v"`
	Institution string   `json:"institution"` // root id
	EKSHA256    []string `json:"ek_sha256"`
	CAs         [][]byte `json:"ek_cas"`

	path  string
	certs []*x509.Certificate
	pool  *x509.CertPool
}

func eksDir(dataDir string) string { return filepath.Join(dataDir, "trust", "eks") }

// ParseEKTrust decodes an EK trust file, checking every hash and certificate.
func ParseEKTrust(data []byte) (*EKTrust, error) {
	if len(data) > maxEKTrustFile {
		return nil, fmt.Errorf("EK trust file is larger than %d bytes (maxEKTrustFile)", maxEKTrustFile)
	}
	var et EKTrust
	if err := jcs.DecodeStrict(data, &et); err != nil {
		return nil, fmt.Errorf("not an EK trust file: %v", err)
	}
	if err := et.check(); err != nil {
		return nil, err
	}
	return &et, nil
}

// check validates the members and parses the certificates.
func (et *EKTrust) check() error {
	if et.V != EKTrustVersion {
		return fmt.Errorf("EK trust file v is %q, want %q", short(et.V), EKTrustVersion)
	}
	if !validRootID(et.Institution) {
		return fmt.Errorf("institution %q is not a root id", short(et.Institution))
	}
	if et.EKSHA256 == nil || et.CAs == nil {
		return errors.New("ek_sha256 and ek_cas are required (an empty list pins none)")
	}
	if len(et.EKSHA256) > MaxPinnedEKs || len(et.CAs) > MaxPinnedEKCAs {
		return fmt.Errorf("at most %d EK hashes (MaxPinnedEKs) and %d EK CAs (MaxPinnedEKCAs) per institution", MaxPinnedEKs, MaxPinnedEKCAs)
	}
	for _, h := range et.EKSHA256 {
		if !tpm.ValidEKSHA256(h) {
			return fmt.Errorf("ek_sha256 %q is not 64 lowercase hex digits", short(h))
		}
	}
	et.certs, et.pool = nil, nil
	if len(et.CAs) > 0 {
		et.pool = x509.NewCertPool()
	}
	for i, der := range et.CAs {
		_, certs, err := tpm.ParseEKCAs(der)
		if err != nil {
			return fmt.Errorf("ek_cas[%d]: %v", i, err)
		}
		if len(certs) != 1 || !bytes.Equal(certs[0].Raw, der) {
			return fmt.Errorf("ek_cas[%d] must be one DER certificate", i)
		}
		et.certs = append(et.certs, certs[0])
		et.pool.AddCert(certs[0])
	}
	return nil
}

// Policy is the EK policy of this file, for tpm.Verify.
func (et *EKTrust) Policy() tpm.Policy {
	return tpm.Policy{EKSHA256: slices.Clone(et.EKSHA256), CAs: et.pool}
}

// AddEK pins, for institution rootID's nodes, an endorsement key by its hash (ekSHA256,
// tpm.EKSHA256) or the EK CA certificates in caData (PEM, or one DER certificate), in
// dataDir's trust store, and returns the institution's EK trust as it now stands.
// Pinning what is already pinned changes nothing.
func AddEK(dataDir, rootID, ekSHA256 string, caData []byte) (*EKTrust, error) {
	if !validRootID(rootID) {
		return nil, fmt.Errorf("institution %q is not a root id (root_…, as 'sios trust list' shows)", short(rootID))
	}
	if (ekSHA256 == "") == (caData == nil) {
		return nil, errors.New("pin either an EK hash or EK CA certificates")
	}
	path := filepath.Join(eksDir(dataDir), rootID+".json")
	et := &EKTrust{V: EKTrustVersion, Institution: rootID, EKSHA256: []string{}, CAs: [][]byte{}}
	if data, err := os.ReadFile(path); err == nil {
		if et, err = ParseEKTrust(data); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if et.Institution != rootID {
			return nil, fmt.Errorf("%s holds the EKs of %s: the file name must be its institution", path, et.Institution)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if ekSHA256 != "" {
		if !tpm.ValidEKSHA256(ekSHA256) {
			return nil, fmt.Errorf("EK hash %q is not 64 lowercase hex digits (the SHA-256 of the EK's public key in PKIX DER form)", short(ekSHA256))
		}
		if !slices.Contains(et.EKSHA256, ekSHA256) {
			et.EKSHA256 = append(et.EKSHA256, ekSHA256)
		}
	} else {
		_, certs, err := tpm.ParseEKCAs(caData)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if !slices.ContainsFunc(et.CAs, func(d []byte) bool { return bytes.Equal(d, c.Raw) }) {
				et.CAs = append(et.CAs, c.Raw)
			}
		}
	}
	if err := et.check(); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(et, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(eksDir(dataDir), 0o700); err != nil {
		return nil, err
	}
	if err := files.Replace(path, append(out, '\n'), 0o644); err != nil {
		return nil, err
	}
	et.path = path
	return et, nil
}

// RemoveEK un-pins, for institution rootID's nodes, an endorsement key by its hash or
// the EK CA certificates in caData, in dataDir's trust store, and returns the
// institution's EK trust as it now stands. Un-pinning what is not pinned is an error
// naming it.
func RemoveEK(dataDir, rootID, ekSHA256 string, caData []byte) (*EKTrust, error) {
	et, err := CheckRemoveEK(dataDir, rootID, ekSHA256, caData)
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(et, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := files.Replace(et.path, append(out, '\n'), 0o644); err != nil {
		return nil, err
	}
	return et, nil
}

// CheckRemoveEK is RemoveEK without writing: the institution's EK trust as it would
// stand, or why the key or the CAs cannot be un-pinned.
func CheckRemoveEK(dataDir, rootID, ekSHA256 string, caData []byte) (*EKTrust, error) {
	if (ekSHA256 == "") == (caData == nil) {
		return nil, errors.New("un-pin either an EK hash or EK CA certificates")
	}
	path := filepath.Join(eksDir(dataDir), rootID+".json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no TPM endorsement keys are pinned for institution %s ('sios trust list' shows them)", short(rootID))
	}
	if err != nil {
		return nil, err
	}
	et, err := ParseEKTrust(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if ekSHA256 != "" {
		i := slices.Index(et.EKSHA256, ekSHA256)
		if i < 0 {
			return nil, fmt.Errorf("EK %s is not pinned for institution %s ('sios trust list' shows the EKs pinned)", short(ekSHA256), short(rootID))
		}
		et.EKSHA256 = slices.Delete(et.EKSHA256, i, i+1)
	} else {
		_, certs, err := tpm.ParseEKCAs(caData)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			i := slices.IndexFunc(et.CAs, func(d []byte) bool { return bytes.Equal(d, c.Raw) })
			if i < 0 {
				return nil, fmt.Errorf("EK CA %q is not pinned for institution %s", short(c.Subject.String()), short(rootID))
			}
			et.CAs = slices.Delete(et.CAs, i, i+1)
		}
	}
	if err := et.check(); err != nil {
		return nil, err
	}
	et.path = path
	return et, nil
}

// loadEKs reads every EK trust file of the store, by institution. A file that does not
// verify is an error naming it.
func loadEKs(dataDir string) (map[string]tpm.Policy, map[string]*EKTrust, error) {
	names, err := filepath.Glob(filepath.Join(eksDir(dataDir), "*.json"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	policies, byRoot := map[string]tpm.Policy{}, map[string]*EKTrust{}
	for _, name := range names {
		data, err := files.ReadFileCapped(name, maxEKTrustFile, "maxEKTrustFile")
		if err != nil {
			return nil, nil, err
		}
		et, err := ParseEKTrust(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", name, err)
		}
		if strings.TrimSuffix(filepath.Base(name), ".json") != et.Institution {
			return nil, nil, fmt.Errorf("%s holds the EKs of %s: the file name must be its institution", name, et.Institution)
		}
		et.path = name
		policies[et.Institution], byRoot[et.Institution] = et.Policy(), et
	}
	return policies, byRoot, nil
}

// RemoveRoot un-pins institution rootID in dataDir's trust store, with the EKs pinned
// for its nodes, and returns the files removed. This node's own institution cannot be
// un-pinned; a root that is not pinned is an error.
func RemoveRoot(dataDir string, own identity.Certificate, rootID string) ([]string, error) {
	if !validRootID(rootID) {
		return nil, fmt.Errorf("%q is not a root id (root_…, as 'sios trust list' shows)", short(rootID))
	}
	if rootID == own.RootID {
		return nil, fmt.Errorf("%s is this node's own institution: it cannot be un-pinned", rootID)
	}
	root := filepath.Join(rootsDir(dataDir), rootID+".json")
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("institution %s is not pinned here ('sios trust list' shows the roots trusted)", rootID)
	}
	var removed []string
	for _, path := range []string{root, filepath.Join(eksDir(dataDir), rootID+".json")} {
		switch err := os.Remove(path); {
		case err == nil:
			removed = append(removed, path)
			if err := files.SyncDir(filepath.Dir(path)); err != nil {
				return removed, err
			}
		case !errors.Is(err, os.ErrNotExist):
			return removed, err
		}
	}
	return removed, nil
}

// RootIDOf is the root id a 'sios trust remove' argument names: a root id itself, or
// a root file (made by 'sios root export') whose root it is.
func RootIDOf(arg string) (string, error) {
	if validRootID(arg) {
		return arg, nil
	}
	data, err := files.ReadFileCapped(arg, maxRootFile, "maxRootFile")
	if err != nil {
		return "", fmt.Errorf("%q is neither a root id (root_…) nor a readable root file: %v", short(arg), err)
	}
	rf, _, err := ParseRoot(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", arg, err)
	}
	return rf.RootID, nil
}

package tpm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
)

// EvidenceFile is the data-directory file holding the node's evidence (canonical JSON,
// public: it is published in the node's identity federation record).
const EvidenceFile = "node.evidence"

// InitResult says what Init created.
type InitResult struct {
	*identity.InitResult
	Evidence *Evidence
	EKSHA256 string
	// Note is non-empty when the TPM's EK certificate had to be left out of the
	// evidence; it says why. Verifiers must then pin the EK by its hash.
	Note string
}

// Init creates a node identity in dir whose key is sealed to t (to the current values
// of the SHA-256 pcrs, when given): identity.InitSealed with Seal, then the evidence,
// written to dir/node.evidence. The seeds are never written to disk in the clear. A
// root key Init generates (rootKeyPath "") is, as with identity.Init, a plain file in
// dir: move it offline.
func Init(t *TPM, dir, name, rootKeyPath string, pcrs []int, now time.Time) (*InitResult, error) {
	res := &InitResult{}
	var err error
	res.InitResult, err = identity.InitSealed(dir, name, rootKeyPath, now, func(key *identity.PrivateKey) ([]byte, error) {
		kf, err := t.Seal(key, pcrs)
		if err != nil {
			return nil, err
		}
		if res.Evidence, res.Note, err = t.Evidence(kf, key.Public()); err != nil {
			return nil, err
		}
		return kf.Marshal()
	})
	if err != nil {
		return nil, err
	}
	if err := writeEvidence(dir, res.Evidence); err != nil {
		return nil, err
	}
	res.EKSHA256 = res.Evidence.Binding.EKSHA256
	return res, nil
}

func writeEvidence(dir string, ev *Evidence) error {
	b, err := ev.Marshal()
	if err != nil {
		return err
	}
	return files.Replace(filepath.Join(dir, EvidenceFile), b, 0o644)
}

// Node is a node identity bound to a TPM, loaded for a running node.
type Node struct {
	*identity.Node
	// Evidence is the node's evidence, as published in its identity record.
	Evidence *Evidence
	// EKSHA256 names the TPM's endorsement key.
	EKSHA256 string
	// Attestor answers peers' challenges. Close it (Node.Close) before the TPM.
	Attestor *Attestor
}

// Close releases the node's objects in the TPM.
func (n *Node) Close() error { return n.Attestor.Close() }

// ReadKeyFile reads and parses dir's sealed node key file, with identity.ReadKeyFile's
// checks. Its TPM member is where the TPM was at init: what start-up opens unless the
// operator names another address.
func ReadKeyFile(dir string) (*KeyFile, error) {
	path := filepath.Join(dir, identity.NodeKeyFile)
	b, err := identity.ReadKeyFile(path)
	if err != nil {
		return nil, err
	}
	kf, err := ParseKeyFile(b)
	if err != nil {
		return nil, &identity.KeyFileError{Path: path, Err: err}
	}
	return kf, nil
}

// Load unseals dir's node key with t and loads the identity (identity.LoadSealed),
// the evidence (made again if dir/node.evidence is missing, as after an init that was
// interrupted before writing it) and the attestor. It fails with ErrOtherTPM or
// ErrPCRChanged, inside an *identity.KeyFileError naming node.key, when the key cannot
// be unsealed here.
func Load(t *TPM, dir string) (*Node, error) {
	var kf *KeyFile
	id, err := identity.LoadSealed(dir, func(b []byte) (*identity.PrivateKey, error) {
		var err error
		if kf, err = ParseKeyFile(b); err != nil {
			return nil, err
		}
		return t.Unseal(kf)
	})
	if err != nil {
		return nil, err
	}
	evPath := filepath.Join(dir, EvidenceFile)
	ev, err := ReadEvidence(dir)
	if errors.Is(err, os.ErrNotExist) {
		if ev, _, err = t.Evidence(kf, id.Public()); err != nil {
			return nil, err
		}
		err = writeEvidence(dir, ev)
	}
	if err != nil {
		return nil, err
	}
	// The node's own evidence must verify for its own keys, pinning its own EK.
	v, err := Verify(ev, id.ID(), id.Public(), Policy{EKSHA256: []string{ev.Binding.EKSHA256}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", evPath, err)
	}
	a, err := t.Attestor(kf, ev)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", evPath, err)
	}
	return &Node{Node: id, Evidence: ev, EKSHA256: v.EKSHA256, Attestor: a}, nil
}

// ReadEvidence reads and parses dir/node.evidence without the TPM (which a running
// node holds): for showing a node's attestation (sios id) and publishing it.
func ReadEvidence(dir string) (*Evidence, error) {
	path := filepath.Join(dir, EvidenceFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEvidenceSize+1))
	if err != nil {
		return nil, err
	}
	ev, err := ParseEvidence(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return ev, nil
}

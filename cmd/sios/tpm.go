package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/ledger"
)

// A node initialised with 'sios init --tpm' has its key sealed to a TPM
// (docs/attestation.md): 'sios up' unseals it at start and holds the TPM while it runs;
// commands that sign without a running node unseal it for the moment they need it.

// keySealed reports whether dir's node key is sealed to a TPM, reading the key file's
// version only: the TPM is not opened.
func keySealed(dir string) (bool, error) {
	b, err := identity.ReadKeyFile(filepath.Join(dir, identity.NodeKeyFile))
	if err != nil {
		return false, err
	}
	var v struct {
		V string `json:"v"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return false, &identity.KeyFileError{Path: filepath.Join(dir, identity.NodeKeyFile), Err: fmt.Errorf("is corrupt: %v", err)}
	}
	return v.V == identity.SealedKeyVersion, nil
}

// openTPMNode unseals dir's node key with its TPM, at addr or, when addr is "", where
// 'sios init --tpm' found it (where says which). closeTPM releases the node's objects
// in the TPM and the TPM itself.
func openTPMNode(dir, addr string) (n *tpm.Node, where string, closeTPM func(), err error) {
	kf, err := tpm.ReadKeyFile(dir)
	if err != nil {
		return nil, "", nil, err
	}
	where = cmp.Or(addr, kf.TPM)
	t, err := tpm.Open(where)
	if err != nil {
		hint := "start the TPM simulator, or name where the TPM is now with --tpm DEVICE|HOST:PORT"
		if addr != "" {
			hint = "check the address given with --tpm"
		}
		return nil, "", nil, withHint(fmt.Errorf("the node key is sealed to a TPM, which cannot be opened: %w", err), hint)
	}
	n, err = tpm.Load(t, dir)
	if err != nil {
		t.Close()
		return nil, "", nil, withHint(err, tpmLoadHint(err, where))
	}
	return n, where, func() { n.Close(); t.Close() }, nil
}

// tpmLoadHint says what an operator can do about a sealed key that does not unseal.
func tpmLoadHint(err error, where string) string {
	switch {
	case errors.Is(err, tpm.ErrOtherTPM):
		return fmt.Sprintf("the TPM at %s is not the one this node's key was sealed to: a node's identity cannot move to another TPM. "+
			"If its TPM is elsewhere, name it with --tpm; otherwise initialise a new node here with 'sios init --tpm'", where)
	case errors.Is(err, tpm.ErrPCRChanged):
		return "the machine's boot state (firmware, boot loader, Secure Boot policy or a later measurement) is not what the key was sealed to: " +
			"boot it as it was at 'sios init', or initialise a new node"
	}
	return ""
}

// loadSealedNode unseals the node key for a command that signs while no node runs. A
// running node holds the TPM (a simulator serves one client at a time), and the ledger:
// that is reported as the ledger being in use.
func (e *env) loadSealedNode() (*identity.Node, error) {
	if admin.Dial(e.dataDir) != nil {
		return nil, withHint(&ledger.LockedError{Dir: e.ledgerDir()},
			"the node's key is sealed to the TPM the running node holds: run this command through it, or stop it first")
	}
	n, _, closeTPM, err := openTPMNode(e.dataDir, "")
	if err != nil {
		return nil, err
	}
	closeTPM()
	return n.Node, nil
}

// evidence is the node's canonical TPM evidence (DIR/node.evidence), nil when its key
// is not sealed to a TPM.
func (e *env) evidence() ([]byte, error) {
	ev, err := tpm.ReadEvidence(e.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ev.Marshal()
}

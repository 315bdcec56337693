package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
)

func (e *env) ledgerDir() string { return filepath.Join(e.dataDir, "ledger") }

// loadNode loads the node identity (unsealing a key sealed to a TPM), with a hint
// when the directory is not initialised.
func (e *env) loadNode() (*identity.Node, error) {
	n, err := identity.Load(e.dataDir)
	if errors.Is(err, identity.ErrKeySealed) {
		return e.loadSealedNode()
	}
	if errors.Is(err, identity.ErrNoIdentity) {
		return nil, withHint(err, fmt.Sprintf("run 'sios --data %s init' first", e.dataDir))
	}
	return n, err
}

// loadCert loads and verifies the public identity only: enough to read and verify the
// log, without the node's secret key.
func (e *env) loadCert() (*identity.Certificate, identity.PublicKey, error) {
	path := filepath.Join(e.dataDir, identity.NodeCertFile)
	cert, err := identity.LoadCertificate(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, identity.PublicKey{}, withHint(fmt.Errorf("%w: %s", identity.ErrNoIdentity, e.dataDir),
			fmt.Sprintf("run 'sios --data %s init' first", e.dataDir))
	}
	if err != nil {
		return nil, identity.PublicKey{}, err
	}
	pub, _, err := cert.Verify()
	if err != nil {
		return nil, identity.PublicKey{}, fmt.Errorf("%s: %v", path, err)
	}
	return &cert, pub, nil
}

// openLedger opens the node's ledger for writing.
func (e *env) openLedger(ctx context.Context, opts ledger.Options) (*ledger.Ledger, error) {
	n, err := e.loadNode()
	if err != nil {
		return nil, err
	}
	return ledger.Open(ctx, e.ledgerDir(), n, opts)
}

// openReader opens the node's ledger for reading up to its latest checkpoint.
func (e *env) openReader() (*ledger.Reader, *identity.Certificate, error) {
	cert, pub, err := e.loadCert()
	if err != nil {
		return nil, nil, err
	}
	r, err := ledger.OpenReader(e.ledgerDir(), cert.NodeID, pub)
	return r, cert, err
}

// hintFor suggests a next step for errors that commands share.
func hintFor(err error) string {
	var kf *identity.KeyFileError
	var le *ledger.LockedError
	switch {
	case errors.As(err, &kf):
		return kf.Hint
	case errors.As(err, &le):
		return "stop the other sios process first, or run this command through it"
	}
	return ""
}

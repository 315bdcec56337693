// Package tpm binds a sios node's identity to a TPM 2.0 chip.
//
// A TPM cannot hold ML-DSA-65 or Ed25519 keys, so it holds what makes the node's
// software keys usable only on this machine, and vouches for them:
//
//   - Sealing: the node's seeds are sealed under the TPM's storage root key (SRK, a
//     primary key the TPM re-derives from its owner-hierarchy seed), optionally to PCR
//     values. The key file on disk (identity.SealedKeyVersion) is useless with any other
//     TPM, after the owner hierarchy is cleared, or when a named PCR has changed; each
//     case fails with an error naming it (ErrOtherTPM, ErrPCRChanged).
//   - Evidence: an attestation key (AK, a restricted signing key resident in the TPM)
//     signs a binding statement naming the node id, both public keys and the SHA-256
//     of the TPM's endorsement key (EK). Verify checks it against a Policy of accepted
//     EKs (pinned hashes or EK certificate authorities).
//   - Exchange: a verifier's Challenge carries a fresh nonce and a credential made
//     for the EK and the AK's name (TPM2_MakeCredential done in software); only the TPM
//     holding that EK, with that AK loaded, can activate it. The Answer returns the
//     credential's secret and a quote over the nonce signed by the AK. Pending.Check
//     accepts it only when both hold: the AK is in that TPM, and the TPM is live now.
//
// Formats are canonical JSON (RFC 8785), published in docs/attestation.md. The package
// is pure Go (github.com/google/go-tpm); nothing in sios needs a TPM unless asked to.
package tpm

import (
	"errors"
	"sync"

	"github.com/google/go-tpm/tpm2/transport"
)

// TPM is an open connection to a TPM 2.0. Its methods are safe for concurrent use: a
// TPM runs one command at a time, so each operation holds the connection for all of
// its commands (the sessions and transient objects it needs must not interleave with
// another operation's on a TPM without a resource manager, such as swtpm).
type TPM struct {
	addr string

	mu sync.Mutex
	tr transport.TPMCloser // guarded by mu
}

// Addr is the address the TPM was opened at.
func (t *TPM) Addr() string { return t.addr }

// Close closes the connection. An Attestor using it must be closed first.
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tr == nil {
		return nil
	}
	err := t.tr.Close()
	t.tr = nil
	return err
}

// do runs f with the connection held.
func (t *TPM) do(f func(tr transport.TPM) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tr == nil {
		return errors.New("TPM connection is closed")
	}
	return f(t.tr)
}

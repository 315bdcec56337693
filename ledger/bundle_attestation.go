package ledger

import (
	"fmt"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/jcs"
)

// verifyAttestation checks a bundle's TPM evidence, if any: it must bind the
// certificate's node id and keys to the EK it names (docs/attestation.md section 7,
// with that EK pinned). It returns "tpm" and the EK's hash, or "software" when the
// bundle carries no evidence. Whether that EK is one to trust is the verifier's call,
// as the institution root is.
func (b *Bundle) verifyAttestation(nodePub identity.PublicKey) (kind, ekSHA256 string, err error) {
	if len(b.Attestation) == 0 {
		return "software", "", nil
	}
	// The bundle document may be indented (sios writes it so): the evidence inside
	// is checked in its canonical form, which is what was signed.
	canon, err := jcs.Canonicalize(b.Attestation)
	if err != nil {
		return "", "", fmt.Errorf("bundle attestation: %v", err)
	}
	v, err := tpm.VerifyBinding(canon, b.Certificate.NodeID, nodePub)
	if err != nil {
		return "", "", fmt.Errorf("bundle attestation: %w", err)
	}
	return "tpm", v.EKSHA256, nil
}

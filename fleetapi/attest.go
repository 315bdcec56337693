package fleetapi

import (
	"errors"
	"net/http"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/internal/files"
)

// attest answers a peer's TPM challenge (fleet.AttestPath; docs/attestation.md
// section 8) with this node's TPM. Any trusted peer may ask, at any time: that is how
// it learns that this node's TPM is here now. What the TPM said when it could not
// answer stays in this node's log.
func (a *API) attest(w http.ResponseWriter, r *http.Request, _ *identity.Certificate) error {
	body, err := files.ReadCapped(r.Body, tpm.MaxChallengeSize, "MaxChallengeSize")
	if err != nil {
		http.Error(w, "challenge: "+oneLine(err), http.StatusRequestEntityTooLarge)
		return nil
	}
	ans, err := fleet.AnswerChallenge(a.cfg.Attestor, body)
	switch {
	case errors.Is(err, fleet.ErrNoTPM):
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil
	case errors.Is(err, fleet.ErrBadChallenge):
		http.Error(w, oneLine(err), http.StatusBadRequest)
		return nil
	case err != nil:
		return err // 500 "internal error"; the TPM's words go to this node's log only
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(ans)
	return nil
}

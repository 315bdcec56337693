package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/oar"
)

// Attestation kinds of an identity record. Only append to this list.
const (
	AttestSoftware = "software" // keys held in files on the node
	AttestTPM      = "tpm"      // keys sealed to a TPM, which vouches for them (Evidence)
)

// IdentityBody is the body of an identity record: the node's enrolment certificate and,
// for attestation tpm, its TPM evidence.
type IdentityBody struct {
	Attestation string               `json:"attestation"`
	Certificate identity.Certificate `json:"certificate"`
	// Evidence is the node's TPM evidence (identity/tpm.Evidence, canonical
	// sios-tpm-evidence/1, docs/attestation.md): present exactly when Attestation is
	// AttestTPM. Log.Add verifies it under the EK policy of the node's institution.
	Evidence json.RawMessage `json:"evidence,omitempty"`

	evidence *tpm.Evidence // parsed Evidence; set by validate
}

// PostureBody is the highest classification the node is accredited for (oar.Classifications).
type PostureBody struct {
	Classification string `json:"classification"`
}

// Brain is one brain a node offers.
type Brain struct {
	ID             string `json:"id"`
	Kind           string `json:"kind"` // brain.KindDomain or brain.KindOperational
	Classification string `json:"classification"`
}

// BrainsBody is the full set of brains the node offers; it replaces any earlier set.
type BrainsBody struct {
	Brains []Brain `json:"brains"`
}

// LimitsBody is the request rate the node can sustain.
type LimitsBody struct {
	RequestsPerMinute uint64 `json:"requests_per_minute"`
}

// AuditBody names the audit schema the node writes, e.g. oar.Version.
type AuditBody struct {
	Schema string `json:"schema"`
}

// EndpointsBody holds the node's addresses, each host:port.
type EndpointsBody struct {
	API   string `json:"api"`
	Fleet string `json:"fleet"`
}

// WithdrawBody withdraws what an earlier record stated: with Brain "", the whole of
// Kind (posture, brains, limits, audit or endpoints); with Kind "brains" and Brain set,
// that one brain.
type WithdrawBody struct {
	Kind  string `json:"kind"`
	Brain string `json:"brain"`
}

// decodeBody decodes raw as the body of kind and validates it. Unknown members are
// caught by the caller's re-encoding check.
func decodeBody(kind string, raw json.RawMessage) (any, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("body of a %q record must be a JSON object", short(kind))
	}
	if kind == KindRole || kind == KindKEM {
		return decodeSuccession(kind, raw) // fleet/succession.go
	}
	var v any
	switch kind {
	case KindIdentity:
		v = new(IdentityBody)
	case KindPosture:
		v = new(PostureBody)
	case KindBrains:
		v = new(BrainsBody)
	case KindLimits:
		v = new(LimitsBody)
	case KindAudit:
		v = new(AuditBody)
	case KindEndpoints:
		v = new(EndpointsBody)
	case KindWithdraw:
		v = new(WithdrawBody)
	default:
		return nil, fmt.Errorf("kind %q is not one of %v", short(kind), Kinds)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, fmt.Errorf("%s body: %v", kind, err)
	}
	if err := v.(interface{ validate() error }).validate(); err != nil {
		return nil, fmt.Errorf("%s body: %v", kind, err)
	}
	return v, nil
}

func (b *IdentityBody) validate() error {
	if b.Attestation != AttestSoftware && b.Attestation != AttestTPM {
		return fmt.Errorf("attestation %q is not %q or %q", short(b.Attestation), AttestSoftware, AttestTPM)
	}
	if b.Certificate.Signature == nil {
		return fmt.Errorf("certificate is not signed")
	}
	switch {
	case b.Attestation == AttestTPM && len(b.Evidence) == 0:
		return fmt.Errorf("attestation %q needs evidence", AttestTPM)
	case b.Attestation != AttestTPM && len(b.Evidence) > 0:
		return fmt.Errorf("evidence is allowed only with attestation %q", AttestTPM)
	case b.Attestation == AttestTPM:
		ev, err := tpm.ParseEvidence(b.Evidence)
		if err != nil {
			return err
		}
		b.evidence = ev
	}
	return nil // the certificate and the evidence are verified by Log.Add, against the caller's trust
}

func (b *PostureBody) validate() error { return checkClass("classification", b.Classification) }

func (b *BrainsBody) validate() error {
	if b.Brains == nil {
		return fmt.Errorf("brains is required (an empty list offers none)")
	}
	if len(b.Brains) > MaxBrains {
		return fmt.Errorf("%d brains, more than the limit of %d (MaxBrains)", len(b.Brains), MaxBrains)
	}
	seen := make(map[string]bool, len(b.Brains))
	for i, br := range b.Brains {
		if !validBrainID(br.ID) {
			return fmt.Errorf("brains[%d].id %q is not 1 to %d bytes of a-z, 0-9 and '-' (MaxIDLen)", i, short(br.ID), MaxIDLen)
		}
		if seen[br.ID] {
			return fmt.Errorf("brains[%d].id %q appears twice", i, br.ID)
		}
		seen[br.ID] = true
		if br.Kind != brain.KindDomain && br.Kind != brain.KindOperational {
			return fmt.Errorf("brains[%d].kind %q is not %q or %q", i, short(br.Kind), brain.KindDomain, brain.KindOperational)
		}
		if err := checkClass(fmt.Sprintf("brains[%d].classification", i), br.Classification); err != nil {
			return err
		}
	}
	return nil
}

func (b *LimitsBody) validate() error {
	if b.RequestsPerMinute > MaxSeq {
		return fmt.Errorf("requests_per_minute is more than 2^53")
	}
	return nil
}

func (b *AuditBody) validate() error {
	if b.Schema == "" || len(b.Schema) > MaxIDLen {
		return fmt.Errorf("schema must be 1 to %d bytes (MaxIDLen)", MaxIDLen)
	}
	return nil
}

func (b *EndpointsBody) validate() error {
	if err := checkAddr("api", b.API); err != nil {
		return err
	}
	return checkAddr("fleet", b.Fleet)
}

func (b *WithdrawBody) validate() error {
	switch b.Kind {
	case KindPosture, KindLimits, KindAudit, KindEndpoints:
		if b.Brain != "" {
			return fmt.Errorf("brain must be \"\" when withdrawing %s", b.Kind)
		}
	case KindBrains:
		if b.Brain != "" && !validBrainID(b.Brain) {
			return fmt.Errorf("brain %q is not a brain id", short(b.Brain))
		}
	default:
		return fmt.Errorf("kind %q cannot be withdrawn (only %s, %s, %s, %s, %s)", short(b.Kind), KindPosture, KindBrains, KindLimits, KindAudit, KindEndpoints)
	}
	return nil
}

func checkClass(name, c string) error {
	if oar.ClassificationRank(c) < 0 {
		return fmt.Errorf("%s %q is not one of %v", name, short(c), oar.Classifications)
	}
	return nil
}

// checkAddr requires host:port with a non-empty host and a port 1..65535 in its one
// decimal spelling.
func checkAddr(name, a string) error {
	if len(a) > MaxAddrLen {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d (MaxAddrLen)", name, len(a), MaxAddrLen)
	}
	host, port, err := net.SplitHostPort(a)
	n, perr := strconv.Atoi(port)
	if err != nil || host == "" || perr != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Errorf("%s %q is not host:port", name, short(a))
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%s %q: host holds a space, control or non-ASCII byte", name, short(a))
		}
	}
	return nil
}

// validBrainID is the brain package's rule: 1 to MaxIDLen bytes of a-z, 0-9 and '-',
// neither starting nor ending with '-'.
func validBrainID(id string) bool {
	if id == "" || len(id) > MaxIDLen || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

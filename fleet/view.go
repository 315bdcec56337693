package fleet

import (
	"maps"
	"slices"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
)

// NodeView is what a node's feed currently states, with withdrawals applied: what
// routing reads. Empty members have not been stated or have been withdrawn.
type NodeView struct {
	Node        string
	Name        string // from the enrolment certificate
	Institution string // root id of the certificate's issuer
	// Attestation is what the identity record states (AttestSoftware or AttestTPM);
	// for tpm its evidence verified, and EKSHA256 names its endorsement key. It is a
	// claim until the node answers a challenge (Fleet.Peers reports that).
	Attestation string
	EKSHA256    string
	Posture     string // highest classification accredited for
	Brains      []Brain
	// RequestsPerMinute is the rate the node can sustain; HasLimits says whether it was stated.
	RequestsPerMinute uint64
	HasLimits         bool
	AuditSchema       string
	Endpoints         *EndpointsBody
	Seq               uint64 // the head of the feed
	Time              string // time of the head record
	Forked            bool   // the feed has forked: do not route to this node
}

func (v *NodeView) apply(r *Record) {
	v.Seq, v.Time = r.Seq, r.Time
	switch b := r.content.(type) {
	case *PostureBody:
		v.Posture = b.Classification
	case *BrainsBody:
		v.Brains = slices.Clone(b.Brains)
	case *LimitsBody:
		v.RequestsPerMinute, v.HasLimits = b.RequestsPerMinute, true
	case *AuditBody:
		v.AuditSchema = b.Schema
	case *EndpointsBody:
		e := *b
		v.Endpoints = &e
	case *WithdrawBody:
		switch b.Kind {
		case KindPosture:
			v.Posture = ""
		case KindBrains:
			if b.Brain == "" {
				v.Brains = nil
			} else {
				v.Brains = slices.DeleteFunc(slices.Clone(v.Brains), func(x Brain) bool { return x.ID == b.Brain })
			}
		case KindLimits:
			v.RequestsPerMinute, v.HasLimits = 0, false
		case KindAudit:
			v.AuditSchema = ""
		case KindEndpoints:
			v.Endpoints = nil
		}
	}
}

// View returns the current state of every node in the log, ordered by node id.
func (l *Log) View() []NodeView {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]NodeView, 0, len(l.feeds))
	for _, id := range slices.Sorted(maps.Keys(l.feeds)) {
		v := l.feeds[id].view
		v.Brains = slices.Clone(v.Brains)
		if v.Endpoints != nil {
			e := *v.Endpoints
			v.Endpoints = &e
		}
		out = append(out, v)
	}
	return out
}

// NodeView returns the current state of one node's feed.
func (l *Log) NodeView(node string) (NodeView, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.feeds[node]
	if f == nil {
		return NodeView{}, false
	}
	v := f.view
	v.Brains = slices.Clone(v.Brains)
	if v.Endpoints != nil {
		e := *v.Endpoints
		v.Endpoints = &e
	}
	return v, true
}

// Evidence returns the verified TPM evidence of a node whose identity record says
// attestation tpm.
func (l *Log) Evidence(node string) (*tpm.Evidence, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.feeds[node]
	if f == nil || f.evidence == nil {
		return nil, false
	}
	return f.evidence, true
}

// Key returns the public keys of a node whose identity record the log holds.
func (l *Log) Key(node string) (identity.PublicKey, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.feeds[node]
	if f == nil {
		return identity.PublicKey{}, false
	}
	return f.key, true
}

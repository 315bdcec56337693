package node

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// FeedDir is where a node keeps its own federation feed.
func FeedDir(dataDir string) string { return filepath.Join(dataDir, "fleet", "feed") }

// publishFeed brings the node's own federation feed up to date with what it is now:
// its posture (the backend accreditation), the brains it offers, its audit schema and
// the rate of peers' calls it serves.
// A record is appended only when what it states changed, so restarts add nothing.
func (n *Node) publishFeed(now time.Time, posture policy.Level) (*fleet.Publisher, error) {
	var evidence []byte // the identity record of a node sealed to a TPM carries its evidence
	if n.tpm != nil {
		var err error
		if evidence, err = n.tpm.Evidence.Marshal(); err != nil {
			return nil, err
		}
	}
	p, err := fleet.OpenAttestedPublisher(FeedDir(n.dataDir), n.id, evidence, now)
	if err != nil {
		return nil, err
	}
	latest := map[string][]byte{}
	for _, raw := range p.Records(0) {
		if r, err := fleet.Parse(raw); err == nil {
			latest[r.Kind] = r.Body
		}
	}
	brains := fleet.BrainsBody{}
	for _, b := range n.brains.All() {
		brains.Brains = append(brains.Brains, fleet.Brain{ID: b.ID, Kind: b.Kind, Classification: b.Classification})
	}
	for _, want := range []struct {
		kind string
		body any
	}{
		{fleet.KindPosture, fleet.PostureBody{Classification: posture.String()}},
		{fleet.KindBrains, brains},
		{fleet.KindAudit, fleet.AuditBody{Schema: oar.Version}},
		{fleet.KindLimits, fleet.LimitsBody{RequestsPerMinute: uint64(n.cfg.PeerRequestsPerMinute)}},
	} {
		b, err := json.Marshal(want.body)
		if err != nil {
			return nil, err
		}
		if c, err := jcs.Canonicalize(b); err == nil && bytes.Equal(c, latest[want.kind]) {
			continue
		}
		if _, err := p.Publish(want.kind, want.body, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}

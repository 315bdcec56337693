package invoke

import (
	"maps"
	"slices"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/policy"
)

// Model is one brain a principal may use, as /v1/models lists it.
type Model struct {
	ID             string
	Kind           string
	Classification string
	Title          string
	// OwnedBy is the peer offering the brain; empty for this node's own.
	OwnedBy string
	// Created is when the brain became available here (Unix seconds): the node's start.
	Created int64
}

// Models lists the brains pr may invoke (with OFFICIAL data): "auto", this node's
// brains, then the brains only peers offer that policy lets pr send to one of them (to
// a peer of another institution, only under one of pr's grants).
func (p *Pipeline) Models(pr *policy.Principal) []Model {
	created := p.cfg.Started.Unix()
	out := []Model{{ID: "auto", Title: "Deterministic router: picks the domain brain for the prompt", Kind: "router", Created: created}}
	for _, b := range p.cfg.Brains.All() {
		if d := p.decideInvoke(pr, b, policy.Official); d.Allow {
			out = append(out, Model{ID: b.ID, Kind: b.Kind, Classification: b.Classification, Title: b.Title, Created: created})
		}
	}
	f := p.fleetOf()
	if f == nil {
		return out
	}
	offered := f.Offered()
	for _, id := range slices.Sorted(maps.Keys(offered)) {
		if _, local := p.cfg.Brains.Get(id); local {
			continue
		}
		rb, _ := remoteBrainOf(f, id, offered[id])
		probe := &Invocation{Principal: pr, remote: rb, data: policy.Official}
		for _, peer := range rb.peers {
			var grant *consent.Entry
			if peer.Institution != p.cfg.Identity.Cert.RootID {
				if grant, _ = p.findGrant(probe, peer); grant == nil {
					continue
				}
			}
			if d := p.decidePeer(pr, rb.brain, peer, policy.Official, grant); d.Allow {
				out = append(out, Model{ID: id, Kind: rb.brain.Kind, Classification: rb.brain.Classification,
					Title: "offered by peer " + peer.NodeID, OwnedBy: peer.NodeID, Created: created})
				break
			}
		}
	}
	return out
}

// RouteCandidate is one place a brain can run, in order of preference.
type RouteCandidate struct {
	NodeID      string `json:"node_id"`
	Local       bool   `json:"local,omitempty"`
	Institution string `json:"institution"`
	State       string `json:"state"`
	Posture     string `json:"posture"`
	Attestation string `json:"attestation,omitempty"`
	RTTMicros   int64  `json:"rtt_us,omitempty"`
}

// Routes is the route table: for each brain this node or a live peer offers, the
// candidates that could run it — this node first, then peers by health and latency.
// Routes to dead or forked peers are withdrawn. Policy narrows the list per request.
func (p *Pipeline) Routes() map[string][]RouteCandidate {
	out := map[string][]RouteCandidate{}
	id := p.cfg.Identity
	attest := p.cfg.Attestation
	if attest == "" {
		attest = fleet.AttestSoftware
	}
	for _, b := range p.cfg.Brains.All() {
		out[b.ID] = []RouteCandidate{{NodeID: id.ID(), Local: true, Institution: id.Cert.RootID, State: fleet.StateAlive,
			Posture: p.cfg.Posture.String(), Attestation: attest}}
	}
	f := p.fleetOf()
	if f == nil {
		return out
	}
	for bid := range f.Offered() {
		for _, peer := range f.Candidates(bid) {
			out[bid] = append(out[bid], RouteCandidate{NodeID: peer.NodeID, Institution: peer.Institution, State: peer.State,
				Posture: peer.Posture, Attestation: peer.Attestation, RTTMicros: peer.RTTMicros})
		}
	}
	return out
}

func usageOf(prompt, completion, total int) backend.Usage {
	return backend.Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: total}
}

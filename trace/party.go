package trace

import (
	"encoding/json"

	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/succession"
)

// A record's parties are other nodes' signed contributions, each a canonical JSON
// object naming its format in "v". These are the formats a trace follows.

// party is one parsed party of a record.
type party struct {
	raw      []byte
	v        string
	envelope *fleet.Envelope
	reply    *fleet.Reply
	request  *decision.Request
	ballot   *decision.Ballot
	outcome  *decision.Outcome
	verified *decision.Outcome // outcome, once VerifyOutcome has re-derived it
	role     succession.Event  // a succession event (succession.go)
	err      error             // the party is of a known format but does not parse
}

// parseParty reads a party by its "v"; a format the trace does not know has only v.
func parseParty(raw []byte) *party {
	p := &party{raw: raw}
	var head struct {
		V string `json:"v"`
	}
	json.Unmarshal(raw, &head)
	p.v = head.V
	switch p.v {
	case fleet.EnvelopeVersion, fleet.EnvelopeVersion2: // fed-call/2 carries a consent grant
		p.envelope, p.err = fleet.ParseEnvelope(raw)
	case fleet.ReplyVersion:
		p.reply, p.err = fleet.ParseReply(raw)
	case decision.RequestVersion:
		p.request, p.err = decision.ParseRequest(raw)
	case decision.BallotVersion:
		p.ballot, p.err = decision.ParseBallot(raw)
	case decision.OutcomeVersion:
		p.outcome, p.err = decision.ParseOutcome(raw)
	default:
		p.role, _, p.err = parseRoleEvent(p.v, raw)
	}
	return p
}

// signers are the nodes whose signatures a party carries.
func (p *party) signers() []string {
	switch {
	case p.err != nil:
		return nil
	case p.envelope != nil:
		return []string{p.envelope.Origin}
	case p.reply != nil:
		return []string{p.reply.Responder}
	case p.request != nil:
		return []string{p.request.Origin}
	case p.ballot != nil:
		return []string{p.ballot.Node}
	case p.role != nil:
		return []string{p.role.Signer()}
	case p.outcome != nil:
		out := []string{p.outcome.ParsedRequest().Origin}
		for _, b := range p.outcome.Ballots {
			if x, err := decision.ParseBallot(b); err == nil {
				out = append(out, x.Node)
			}
		}
		return out
	}
	return nil
}

// Parties are the nodes whose signed bytes a record holds: the nodes that may ask for
// it (Server.Part serves a record only to one of them).
func Parties(rec *oar.Record) []string {
	var out []string
	for _, raw := range rec.Parties {
		out = append(out, parseParty(raw).signers()...)
	}
	return out
}

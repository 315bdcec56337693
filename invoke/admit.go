package invoke

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The admit stage: the perimeter's rate limits (the principal's across all brains,
// then the brain's own), then the admission record, made durable before any byte of
// the request goes to a backend or a peer; its receipt goes out with the answer.

func (p *Pipeline) admit(ctx context.Context, inv *Invocation) error {
	pr := inv.Principal
	if ok, wait := p.limits.Take("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst); !ok {
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-principal"}}
		return p.refuse(ctx, inv, &Error{Code: CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", pr.ID, wait.Round(time.Millisecond))})
	}
	if b := inv.brain; b != nil {
		if ok, wait := p.limits.Take("brain/"+b.ID, b.RateLimit.RequestsPerMinute, b.RateLimit.Burst); !ok {
			inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-brain"}}
			return p.refuse(ctx, inv, &Error{Code: CodeRateLimited, RetryAfter: wait,
				Message: fmt.Sprintf("brain %s is over its rate limit of %d requests per minute; retry after %s",
					b.ID, b.RateLimit.RequestsPerMinute, wait.Round(time.Millisecond))})
		}
	}
	if inv.remote != nil {
		inv.note("route", "remote")
		inv.note("peer", inv.peers[0].peer.NodeID)
		if g := inv.peers[0].grant; g != nil {
			if err := p.useGrant(ctx, inv, g); err != nil {
				return err
			}
		}
	}
	if d := inv.descent; d != nil {
		inv.noteAny("consent", map[string]string{"grant": d.grant.ID, "grant_hash": d.hash, "holder": d.holder.NodeID})
	}
	// The admission record is durable before anything leaves for a backend or a peer:
	// a request whose record cannot be written is not served.
	rec := inv.admissionRecord()
	prep, err := p.cfg.Ledger.Prepare(rec)
	if err != nil {
		return fmt.Errorf("audit record: %w", err)
	}
	inv.admission, inv.Record = rec, hex.EncodeToString(prep.Hash)
	// Durable, not yet sealed: the seal (a signature over every record of a few
	// milliseconds) is made while the backend or the peer works, and the receipt is
	// awaited only where it goes out (receipt).
	w, err := p.cfg.Ledger.WritePrepared(context.WithoutCancel(ctx), prep)
	if err != nil {
		p.cfg.Log.Error("admission record", "err", err)
		return errAudit()
	}
	inv.written = w
	return nil
}

// receipt is the admission record's receipt, waiting for its seal if need be (at
// most about the ledger's seal delay after admission). A seal that cannot be made
// means the ledger has failed: the answer does not go out without its receipt.
func (p *Pipeline) receipt(ctx context.Context, inv *Invocation) (*oar.Receipt, error) {
	if inv.written == nil {
		return nil, nil
	}
	rc, err := inv.written.Receipt(context.WithoutCancel(ctx))
	if err != nil {
		p.cfg.Log.Error("admission record's seal", "err", err)
		return nil, errAudit()
	}
	return rc, nil
}

// admissionRecord is the record of the request as the stages so far decided it.
func (inv *Invocation) admissionRecord() *oar.Record {
	rec := inv.record(oar.ActionBrainInvoke)
	if inv.data.Valid() {
		rec.Classification = inv.data.String()
	}
	rec.Inputs = []oar.Digest{oar.DigestOf("messages", messagesJSON(inv.Messages))}
	// Each image and each result of the caller's own tools, digested on its own.
	var results []map[string]string
	for i, m := range inv.Messages {
		for j, part := range m.Parts {
			if part.Type == "image_url" && part.ImageURL != nil && len(rec.Inputs) < oar.MaxDigests {
				rec.Inputs = append(rec.Inputs, oar.DigestOf(fmt.Sprintf("messages[%d].content[%d].image", i, j), []byte(part.ImageURL.URL)))
			}
		}
		if m.Role == "tool" {
			results = append(results, map[string]string{"call_id": oar.Bounded(m.ToolCallID, oar.MaxOutsideValue), "name": oar.Bounded(toolNameOf(inv.Messages[:i], m.ToolCallID), oar.MaxOutsideValue)})
			if len(rec.Inputs) < oar.MaxDigests {
				rec.Inputs = append(rec.Inputs, oar.DigestOf(fmt.Sprintf("messages[%d].tool_result", i), []byte(m.Content)))
			}
		}
	}
	if len(results) > 0 {
		inv.noteAny("client_tool_results", results)
	}
	if len(inv.Params.Tools) > 0 {
		var names []string
		for _, t := range inv.Params.Tools {
			names = append(names, oar.Bounded(t.Function.Name, oar.MaxOutsideValue))
		}
		inv.noteAny("client_tools", names)
	}
	rec.Resource = "brain/" + inv.brainID()
	rec.Decision = inv.Decision
	rec.Links = inv.links
	if inv.Peer != nil {
		// Served for a peer: the record carries the peer's signed envelope (and with
		// it the grant the call came under).
		rec.Parties = []json.RawMessage{inv.Peer.Envelope}
		inv.note("origin", inv.Peer.Origin)
		inv.note("call", inv.Peer.Call)
		if g := inv.Peer.Grant; g != nil {
			inv.note("consent", g.ID)
		}
	}
	if len(inv.detail) > 0 {
		rec.Detail = mustJSON(inv.detail)
	}
	return rec
}

// toolNameOf is the name of the tool the call id was made to, from the assistant
// messages before it.
func toolNameOf(before []Message, callID string) string {
	for i := len(before) - 1; i >= 0; i-- {
		for _, tc := range before[i].ToolCalls {
			if tc.ID == callID {
				return tc.Function.Name
			}
		}
	}
	return ""
}

// useGrant records one use of the grant that lets inv's data go to another institution,
// before the admission record and before anything is sent: the use is on disk (the
// store's) and in the log (consent.use, which the admission record links to), or the
// request is refused. A grant revoked, expired or used up since it was found is refused
// here with its code.
func (p *Pipeline) useGrant(ctx context.Context, inv *Invocation, g *consent.Entry) error {
	en, err := p.cfg.Consent.Use(g.Grant.ID, time.Now())
	if err != nil {
		if consent.CodeOf(err) == "" {
			p.cfg.Log.Error("consent store: use", "grant", g.Grant.ID, "err", err)
		}
		e := consentOutcome(err)
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"consent"}}
		inv.note("code", string(e.Code))
		inv.note("consent", g.Grant.ID)
		return p.refuse(ctx, inv, e)
	}
	rec, h, err := p.useRecord(inv.Principal, en, inv.data, map[string]any{"peer": inv.peers[0].peer.NodeID, "brain": inv.brainID()})
	if err != nil {
		return err
	}
	if err := p.writeNow(ctx, rec); err != nil {
		p.cfg.Log.Error("audit consent use", "err", err)
		return errAudit()
	}
	inv.used = en
	inv.links = append(inv.links, oar.Link{Rel: "consent", RecordHash: h})
	inv.noteAny("consent", map[string]string{"grant": en.Grant.ID, "grant_hash": consent.Hash(en.Raw)})
	return nil
}

// useRecord is the consent.use record of the use of grant en (as Store.Use returned it)
// for pr's data of level data, with what the use was for (about: the peer, the brain,
// …) in its detail, ready for the ledger, and its hash.
func (p *Pipeline) useRecord(pr *policy.Principal, en *consent.Entry, data policy.Level, about map[string]any) (*oar.Record, string, error) {
	detail := map[string]any{"grant": en.Grant.ID, "grant_hash": consent.Hash(en.Raw), "used": en.Used, "remaining": en.Remaining()}
	for k, v := range about {
		detail[k] = v
	}
	rec := &oar.Record{Tenant: pr.Tenant, Actor: actorOf(pr), Action: oar.ActionConsentUse, Resource: "consent/" + en.Grant.ID,
		Classification: data.String(), Decision: &oar.Decision{Effect: "allow", Policies: []string{"consent"}}, Detail: mustJSON(detail)}
	h, err := p.prepare(rec)
	if err != nil {
		return nil, "", err
	}
	return rec, h, nil
}

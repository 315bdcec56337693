package invoke

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Clearance descent at the requesting node (docs/consent.md, sections 9.2 and 10.3): a
// principal who works in two places brings, with a request for one of this node's
// brains, a memory.read grant made at the other institution naming her here. The node
// checks the grant before it admits the request (its form, its signature by its
// origin's keys from the fleet log, that she is its audience, and its own policy);
// after the admission record, and before the brain runs, it asks the holding node for
// a governed memory search on her behalf (a fed-call/2 envelope carrying the grant),
// verifies the signed answer, records consent.receive, and gives the brain what was
// released as retrieved passages for this request only. Nothing released is stored
// unless the grant lets the receiver retain it, and then under her tenant, with the
// grant and the holder as its source.

// HolderBrain is the brain a governed memory search names: the operational brain whose
// work recall is.
const HolderBrain = "memory-recall"

// descent is the grant a request brought and what became of it.
type descent struct {
	grant  *consent.Grant
	raw    []byte
	hash   string
	holder fleet.Peer
	// Filled by descend.
	released []ReleasedMemory
	ceiling  policy.Level
	record   string // hash of the consent.receive record
}

// checkDescent checks the grant inv brings, before admission: nothing is sent to its
// holder unless this node finds it well formed, signed by its origin, addressed to
// inv's principal here, in scope and unexpired, and its holder reachable.
func (p *Pipeline) checkDescent(inv *Invocation) *Error {
	deny := func(e *Error) *Error {
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"consent"}}
		inv.note("code", string(e.Code))
		return e
	}
	g, err := consent.Parse(inv.Consent)
	if err != nil {
		return deny(consentOutcome(err))
	}
	inv.note("consent", g.ID)
	pr, id := inv.Principal, p.cfg.Identity
	var signer consent.Signer
	if key, ok := p.cfg.FleetLog.Key(g.Origin.Node); ok {
		signer.Key = key
		if v, ok := p.cfg.FleetLog.NodeView(g.Origin.Node); ok {
			signer.Institution = v.Institution
		}
	}
	err = consent.Verify(g, signer, consent.Use{
		Institution: id.Cert.RootID, Node: id.ID(), Principal: pr.ID + "@" + id.Cert.RootID, From: g.Origin.Node,
		Tenant: g.Grantor.Tenant, Action: consent.ActionMemoryRead, Subjects: g.Scope.Subjects,
		Classification: policy.Official, Time: time.Now(),
	})
	if err != nil {
		return deny(consentOutcome(err))
	}
	var holder *fleet.Peer
	if f := p.fleetOf(); f != nil {
		for _, c := range f.Candidates(HolderBrain) {
			if c.NodeID == g.Origin.Node {
				holder = &c
				break
			}
		}
	}
	if holder == nil {
		return deny(errorf(CodeRemoteUnavailable, "grant %s is held by node %s, which is not reachable now", g.ID, g.Origin.Node))
	}
	inv.descent = &descent{grant: g, raw: inv.Consent, hash: consent.Hash(inv.Consent), holder: *holder}
	return nil
}

// descend asks the holder for what the grant releases for this request, after the
// admission record: it sends the search, verifies the answer, records consent.receive
// (durable before anything released is used) and keeps what came back on inv.
func (p *Pipeline) descend(ctx context.Context, inv *Invocation) *Error {
	d, pr, id := inv.descent, inv.Principal, p.cfg.Identity
	// She may read no higher here than her clearance, and what comes back flows on to
	// the brain: the holder is told the lower of the two.
	d.ceiling = min(pr.Clearance, p.flowsTo(inv))
	sp := SearchPayload{Query: cutUTF8(lastUser(inv.Messages), memory.MaxQueryBytes), Subjects: d.grant.Scope.Subjects}
	if sp.check() != nil {
		sp.Query = "" // a question the holder could not take is not sent: the newest memories are
	}
	body, err := jcs.Marshal(&sp)
	if err != nil {
		p.cfg.Log.Error("consent search payload", "err", err)
		return errorf(CodeInternal, "could not make the memory search")
	}
	now := time.Now()
	env, err := fleet.SealEnvelope(id.Key, fleet.Envelope{
		Origin: id.ID(), Target: d.holder.NodeID, Issued: oar.FormatTime(now), Expires: oar.FormatTime(now.Add(remoteTimeout)),
		Principal: pr.ID, Tenant: pr.Tenant, Clearance: d.ceiling.String(), Classification: policy.Official.String(),
		Brain: HolderBrain, PayloadDigest: sha256Hex(body), Consent: d.raw,
	})
	if err != nil {
		p.cfg.Log.Error("seal envelope", "err", err)
		return errorf(CodeInternal, "could not sign the memory search")
	}
	cctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	res := &remoteResult{peer: d.holder.NodeID, envelope: env}
	ans, err := p.fleetOf().MemorySearch(cctx, d.holder, &fleet.CallRequest{Envelope: env, Payload: body})
	what := fmt.Sprintf("memory search under grant %s", d.grant.ID)
	p.checkAnswer(cctx, what, d.holder, ans, err, res)
	var ro *ReleaseOutput
	if res.err == nil {
		if ro, err = ParseReleaseOutput(res.output); err == nil {
			err = d.check(ro)
		}
		if err != nil {
			p.cfg.Log.Warn("release refused", "peer", d.holder.NodeID, "reason", err)
			res.err = errorf(CodeRemoteInvalidReply, "%s: holder %s released what the grant and this request do not allow (%v)", what, d.holder.NodeID, err)
		}
	}
	retained := 0
	if res.err == nil && ro.Retain && d.grant.Retain {
		retained = p.retain(ctx, inv, ro)
	}
	if e := p.recordReceipt(ctx, inv, res, ro, retained); e != nil {
		return e
	}
	if res.err != nil {
		return res.err
	}
	d.released = ro.Memories
	return nil
}

// check refuses a release that is not what the grant and this request allow: another
// grant's, above the ceiling asked for or the grant's maximum, about a subject the
// grant does not name, or more than was asked for.
func (d *descent) check(ro *ReleaseOutput) error {
	g := d.grant
	if ro.Grant != g.ID {
		return fmt.Errorf("it is under grant %s", ro.Grant)
	}
	top := min(d.ceiling, g.Scope.Max)
	if ro.MaxClassification > top {
		return fmt.Errorf("its ceiling %s is above %s", ro.MaxClassification, top)
	}
	if len(ro.Memories) > len(g.Scope.Subjects)*ReleasePerSubject {
		return fmt.Errorf("it holds %d memories, more than %d per subject", len(ro.Memories), ReleasePerSubject)
	}
	for _, m := range ro.Memories {
		if m.Classification > ro.MaxClassification {
			return fmt.Errorf("memory %s is %s, above its ceiling %s", m.ID, m.Classification, ro.MaxClassification)
		}
		if _, ok := slices.BinarySearch(g.Scope.Subjects, m.Subject); !ok {
			return fmt.Errorf("memory %s is about a subject the grant does not name", m.ID)
		}
	}
	return nil
}

// recordReceipt records consent.receive: the envelope sent and the holder's signed
// reply (which names the holder's consent.release record), the output's digest, or
// the refusal as received. The completion record of the request links to it.
func (p *Pipeline) recordReceipt(ctx context.Context, inv *Invocation, res *remoteResult, ro *ReleaseOutput, retained int) *Error {
	d, pr := inv.descent, inv.Principal
	detail := map[string]any{"grant": d.grant.ID, "grant_hash": d.hash, "holder": d.holder.NodeID, "call": fleet.CallHash(res.envelope)}
	if res.replyRecord != "" {
		detail["holder_record"] = res.replyRecord
	}
	rec := &oar.Record{Tenant: pr.Tenant, Actor: actorOf(pr), Action: oar.ActionConsentReceive, Resource: "consent/" + d.grant.ID,
		Links: []oar.Link{{Rel: "admission", RecordHash: inv.Record}}, Parties: []json.RawMessage{res.envelope}}
	if res.reply != nil {
		rec.Parties = append(rec.Parties, res.reply)
	}
	if res.err != nil {
		rec.Decision = &oar.Decision{Effect: "deny", Policies: []string{"consent"}}
		detail["code"] = string(res.err.Code)
	} else {
		rec.Decision = &oar.Decision{Effect: "allow", Policies: []string{"consent"}}
		rec.Classification = ro.MaxClassification.String()
		rec.Outputs = []oar.Digest{{Name: "release_output", SHA256: res.outDigest, Size: int64(len(res.output))}}
		ids := make([]string, len(ro.Memories))
		for i, m := range ro.Memories {
			ids[i] = m.ID
		}
		detail["memories"], detail["ceiling"], detail["retained"] = ids, ro.MaxClassification.String(), retained
	}
	rec.Detail = mustJSON(detail)
	h, err := p.prepare(rec)
	if err != nil {
		p.cfg.Log.Error("consent receive record", "err", err)
		return errAudit()
	}
	if err := p.writeNow(ctx, rec); err != nil {
		p.cfg.Log.Error("audit consent receive", "err", err)
		return errAudit()
	}
	d.record = h
	return nil
}

// retain stores what was released in inv's principal's tenant, as the grant allows,
// each with the grant and its holder as source, under this node's policy
// (memory.write). It returns how many it stored.
func (p *Pipeline) retain(ctx context.Context, inv *Invocation, ro *ReleaseOutput) int {
	d, pr := inv.descent, inv.Principal
	source := "consent:" + d.grant.ID + "@" + d.holder.NodeID
	n := 0
	for _, m := range ro.Memories {
		dec := p.memoryDecision(pr, policy.ActionMemoryWrite, m.Subject, m.Classification)
		if !dec.Allow {
			continue
		}
		if _, _, err := p.cfg.Memory.Add(ctx, actorOf(pr), decisionOf(dec), memory.NewMemory{Tenant: pr.Tenant, Subject: m.Subject,
			Classification: m.Classification, Source: source, Text: m.Text}); err != nil {
			p.cfg.Log.Error("retain released memory", "grant", d.grant.ID, "err", err)
			continue
		}
		n++
	}
	return n
}

// releasedPassages are what the holder released, as the builtin backend's retrieval
// gives passages, each saying where it came from.
func (d *descent) releasedPassages() []builtin.Passage {
	out := make([]builtin.Passage, 0, len(d.released))
	for _, m := range d.released {
		created, _ := time.Parse(time.RFC3339Nano, m.Created)
		out = append(out, builtin.Passage{ID: m.ID, Subject: m.Subject, Classification: m.Classification.String(), Created: created,
			Text: m.Text, From: fmt.Sprintf("released by %s under grant %s", d.holder.NodeID, d.grant.ID)})
	}
	return out
}

// releasedPrompt is what the holder released, for a model's system prompt.
func (d *descent) releasedPrompt() string {
	if len(d.released) == 0 {
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n\nPassages released by node %s under consent grant %s, for this request only (cite them by their ids):\n",
		d.holder.NodeID, d.grant.ID)
	for _, m := range d.released {
		fmt.Fprintf(&sb, "[%s] (subject %s, %s, %s) %s\n", m.ID, m.Subject, m.Classification, m.Created, m.Text)
	}
	return sb.String()
}

// cutUTF8 cuts s to at most n bytes on a character boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

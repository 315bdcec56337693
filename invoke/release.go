package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Clearance descent at the holding node (docs/consent.md, sections 6 and 10.4): a peer
// asks, on behalf of one of its principals and under a memory.read grant this node
// made, for what the grant releases. The fleet API has verified the envelope and the
// grant; Release decides the rest — the release ceiling, this node's policy, the
// grant's state (used last, so that a use is consumed only by a release that will be
// made) — searches the grantor's tenant, keeps only what the release rule allows, and
// records consent.release before anything is answered.

// SearchPayload is the payload of a governed memory search (fleet.MemorySearchPath): the
// requester's question and the subjects it asks about. Its canonical JSON is what the
// envelope's payload_digest covers.
type SearchPayload struct {
	Query    string   `json:"query"`           // the question, 0 to memory.MaxQueryBytes
	Subjects []string `json:"subjects"`        // 1 to consent.MaxSubjects, sorted, no repeats
	Limit    int      `json:"limit,omitempty"` // memories per subject, 1 to MaxReleasePerSubject; 0: ReleasePerSubject
}

// ParseSearchPayload reads a search payload strictly: canonical JSON, exactly these
// members, every one within its cap.
func ParseSearchPayload(b []byte) (*SearchPayload, error) {
	if len(b) > fleet.MaxSearchPayload {
		return nil, fmt.Errorf("search payload is %d bytes, more than the limit of %d (fleet.MaxSearchPayload)", len(b), fleet.MaxSearchPayload)
	}
	var sp SearchPayload
	if err := jcs.Unmarshal(b, &sp); err != nil {
		return nil, fmt.Errorf("search payload is not {query, subjects, limit} in canonical JSON: %v", err)
	}
	if err := sp.check(); err != nil {
		return nil, err
	}
	return &sp, nil
}

func (sp *SearchPayload) check() error {
	if len(sp.Query) > memory.MaxQueryBytes || !utf8.ValidString(sp.Query) {
		return fmt.Errorf("search query must be valid UTF-8 of at most %d bytes (memory.MaxQueryBytes)", memory.MaxQueryBytes)
	}
	if len(sp.Subjects) == 0 || len(sp.Subjects) > consent.MaxSubjects {
		return fmt.Errorf("search names %d subjects; it names 1 to %d (consent.MaxSubjects)", len(sp.Subjects), consent.MaxSubjects)
	}
	for i, s := range sp.Subjects {
		if err := checkReleaseText(fmt.Sprintf("subjects[%d]", i), s, consent.MaxSubjectLen, "consent.MaxSubjectLen", false); err != nil {
			return err
		}
		if i > 0 && sp.Subjects[i-1] >= s {
			return fmt.Errorf("search subjects must be sorted (by bytes) without repeats")
		}
	}
	if sp.Limit < 0 || sp.Limit > MaxReleasePerSubject {
		return fmt.Errorf("search limit %d is not 1 to %d (MaxReleasePerSubject), or absent", sp.Limit, MaxReleasePerSubject)
	}
	return nil
}

// ReleaseOutput is a served search's output: what the holder released, under which
// grant, up to which classification, and whether the receiver may keep it. The reply's
// output_digest is the SHA-256 of its canonical JSON.
type ReleaseOutput struct {
	Grant             string           `json:"grant"`
	MaxClassification policy.Level     `json:"max_classification"` // the release ceiling
	Retain            bool             `json:"retain"`
	Memories          []ReleasedMemory `json:"memories"`
}

// ReleasedMemory is one memory released.
type ReleasedMemory struct {
	ID             string       `json:"id"`
	Subject        string       `json:"subject"`
	Classification policy.Level `json:"classification"`
	Source         string       `json:"source,omitempty"`
	Created        string       `json:"created"` // oar.FormatTime
	Text           string       `json:"text"`
}

// ParseReleaseOutput reads a release output strictly (canonical JSON, exactly its
// members, every one within its cap). That the memories are what the grant and the
// request allow is checked by the requester (descent.go).
func ParseReleaseOutput(b []byte) (*ReleaseOutput, error) {
	if len(b) > MaxReleaseOutput {
		return nil, fmt.Errorf("release output is %d bytes, more than the limit of %d (MaxReleaseOutput)", len(b), MaxReleaseOutput)
	}
	var ro ReleaseOutput
	if err := jcs.Unmarshal(b, &ro); err != nil {
		return nil, fmt.Errorf("release output is not canonical JSON of its members: %v", err)
	}
	if len(ro.Grant) != 32 || strings.Trim(ro.Grant, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("release output grant %q is not a grant id", oar.Bounded(ro.Grant, 64))
	}
	if !ro.MaxClassification.Valid() {
		return nil, errors.New("release output max_classification is not a classification")
	}
	if ro.Memories == nil || len(ro.Memories) > MaxReleased {
		return nil, fmt.Errorf("release output holds %d memories; at most %d (MaxReleased)", len(ro.Memories), MaxReleased)
	}
	for i, m := range ro.Memories {
		where := fmt.Sprintf("memories[%d]", i)
		if err := checkReleaseText(where+".id", m.ID, 64, "64", false); err != nil {
			return nil, err
		}
		if err := checkReleaseText(where+".subject", m.Subject, consent.MaxSubjectLen, "consent.MaxSubjectLen", false); err != nil {
			return nil, err
		}
		if err := checkReleaseText(where+".source", m.Source, memory.MaxNameBytes, "memory.MaxNameBytes", true); err != nil {
			return nil, err
		}
		if !m.Classification.Valid() {
			return nil, fmt.Errorf("%s.classification is not a classification", where)
		}
		if t, err := time.Parse(time.RFC3339Nano, m.Created); err != nil || oar.FormatTime(t) != m.Created {
			return nil, fmt.Errorf("%s.created is not RFC 3339 UTC as the format requires", where)
		}
		if len(m.Text) > memory.MaxTextBytes || !utf8.ValidString(m.Text) {
			return nil, fmt.Errorf("%s.text must be valid UTF-8 of at most %d bytes (memory.MaxTextBytes)", where, memory.MaxTextBytes)
		}
	}
	return &ro, nil
}

// checkReleaseText requires 1 (0 when empty is allowed) to max bytes of UTF-8 without
// control characters.
func checkReleaseText(name, s string, max int, maxName string, empty bool) error {
	if (s == "" && !empty) || len(s) > max || !utf8.ValidString(s) {
		return fmt.Errorf("%s must be 1 to %d bytes of UTF-8 (%s)", name, max, maxName)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fmt.Errorf("%s holds a control character", name)
		}
	}
	return nil
}

// ReleaseRequest is a governed memory search whose envelope and grant the fleet API
// has verified: the grant is this node's, signed by it, and covers the use (the
// requesting node's institution and node, its principal, the subjects asked).
type ReleaseRequest struct {
	Envelope []byte // the signed envelope, exactly as received
	Call     string // its call hash
	// The requesting node, its institution's root id, and its accreditation as this
	// node's fleet log states it (zero when it states none: nothing is released).
	Origin, Institution string
	Posture             policy.Level
	// The envelope's principal, tenant and clearance: the requester at her own node.
	Principal, Tenant string
	Clearance         policy.Level
	Grant             *consent.Grant
	Search            *SearchPayload
}

// Released is what Release decided: the output to answer with (nil on a refusal), the
// hash of the consent.release record, and the decision it records.
type Released struct {
	Output   []byte
	Record   string
	Decision *oar.Decision
}

// requester is the principal a release is made to, as this node's policy sees it:
// PRINCIPAL@ROOTID in the tenant TENANT@ROOTID (docs/consent.md section 10.4), cleared
// no higher than her node is accredited.
func (rq *ReleaseRequest) requester() *policy.Principal {
	c := rq.Clearance
	if rq.Posture.Valid() {
		c = min(c, rq.Posture)
	}
	return &policy.Principal{ID: rq.Principal + "@" + rq.Institution, Tenant: rq.Tenant + "@" + rq.Institution, Clearance: c}
}

// Release decides and makes a release. A refusal is an *Error with its code; its
// record's hash is in the returned Released either way, for the signed reply to name.
func (p *Pipeline) Release(ctx context.Context, rq *ReleaseRequest) (*Released, error) {
	g := rq.Grant
	pr := rq.requester()
	out := &Released{}
	refuse := func(policies []string, e *Error) (*Released, error) {
		out.Decision = &oar.Decision{Effect: "deny", Policies: policies}
		rec := p.releaseRecord(rq, pr, out.Decision, map[string]any{"code": string(e.Code), "reason": oar.Bounded(e.Message, 512)})
		h, err := p.prepare(rec)
		if err != nil {
			return out, err
		}
		rc, err := p.appendNow(ctx, rec)
		if err != nil {
			p.cfg.Log.Error("audit consent release refusal", "err", err)
			return out, errAudit()
		}
		out.Record, e.Receipt = h, rc
		return out, e
	}
	if ok, wait := p.limits.Take("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst); !ok {
		return refuse([]string{"rate-limit-principal"}, &Error{Code: CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", pr.ID, wait.Round(time.Millisecond))})
	}
	if !rq.Posture.Valid() {
		return refuse([]string{"consent"}, errorf(CodePolicyDenied,
			"node %s states no accreditation in this node's fleet log: nothing is released to a node whose accreditation is not known", rq.Origin))
	}
	// The grantor's clearance here, now: a grantor whose clearance was lowered releases
	// less, and one who no longer has a principal here releases nothing.
	if err := p.cfg.Principals.Refresh(); err != nil {
		p.cfg.Log.Error("reload principals", "err", err)
	}
	grantor, ok := p.cfg.Principals.Get(g.Grantor.Tenant, g.Grantor.Principal)
	if !ok {
		return refuse([]string{"consent"}, errorf(CodePolicyDenied,
			"grant %s: its grantor %s no longer has a principal in tenant %s here, so nothing is released under it", g.ID, g.Grantor.Principal, g.Grantor.Tenant))
	}
	ceiling, err := consent.ReleaseMax(g, grantor.Clearance, pr.Clearance, rq.Posture)
	if err != nil {
		return refuse([]string{"consent"}, errorf(CodePolicyDenied, "%v", err))
	}
	// This node's policy, for each subject asked about, at the ceiling.
	attrs := g.CedarAttrs()
	var allowed []string
	for _, s := range rq.Search.Subjects {
		d := p.cfg.Policy.Decide(policy.Request{
			Principal: *pr, Action: policy.ActionMemoryRead,
			Resource: policy.Resource{Type: policy.ResourceMemory, ID: s, Classification: ceiling, Tenant: g.Grantor.Tenant, Role: roleOfSubject(s)},
			Context:  policy.Context{Tenant: g.Grantor.Tenant, DataClassification: ceiling, TargetAccreditation: rq.Posture, Grant: attrs},
		})
		if !d.Allow {
			return refuse(d.Reasons, errorf(CodePolicyDenied, "this node's policy does not release %s memories under grant %s to %s: %s",
				ceiling, g.ID, pr.ID, denialReason(d)))
		}
		for _, r := range d.Reasons {
			if !slices.Contains(allowed, r) {
				allowed = append(allowed, r)
			}
		}
	}
	slices.Sort(allowed)
	// Last: the use, on disk before anything is released. Revoked, expired and used-up
	// grants are refused here, at the grant's origin, which alone knows.
	en, err := p.cfg.Consent.Use(g.ID, time.Now())
	if err != nil {
		if consent.CodeOf(err) == "" {
			p.cfg.Log.Error("consent store: use", "grant", g.ID, "err", err)
		}
		return refuse([]string{"consent"}, consentOutcome(err))
	}
	g = en.Grant // release under the grant as this node signed and recorded it
	mems, err := p.releasable(ctx, g, ceiling, rq.Search)
	if err != nil {
		p.cfg.Log.Error("consent release: search", "grant", g.ID, "err", err)
		return refuse([]string{"consent"}, errorf(CodeInternal, "the memories could not be searched"))
	}
	ro := ReleaseOutput{Grant: g.ID, MaxClassification: ceiling, Retain: g.Retain, Memories: mems}
	output, err := jcs.Marshal(&ro)
	for err == nil && len(output) > MaxReleaseOutput && len(ro.Memories) > 0 {
		ro.Memories = ro.Memories[:len(ro.Memories)-1]
		output, err = jcs.Marshal(&ro)
	}
	if err != nil {
		p.cfg.Log.Error("consent release: encode", "grant", g.ID, "err", err)
		return refuse([]string{"consent"}, errorf(CodeInternal, "the release could not be encoded"))
	}
	out.Decision = &oar.Decision{Effect: "allow", Policies: allowed}
	ids := make([]string, len(ro.Memories))
	for i, m := range ro.Memories {
		ids[i] = m.ID
	}
	rec := p.releaseRecord(rq, pr, out.Decision, map[string]any{"ceiling": ceiling.String(), "memories": ids,
		"used": en.Used, "remaining": en.Remaining()})
	rec.Classification = ceiling.String()
	rec.Outputs = []oar.Digest{oar.DigestOf("release_output", output)}
	for i, m := range ro.Memories {
		if len(rec.Outputs) >= oar.MaxDigests {
			break
		}
		b, _ := jcs.Marshal(&m)
		rec.Outputs = append(rec.Outputs, oar.DigestOf(fmt.Sprintf("memories[%d]", i), b))
	}
	h, err := p.prepare(rec)
	if err != nil {
		return out, err
	}
	if err := p.writeNow(ctx, rec); err != nil {
		// The use is spent, but nothing is released without its record.
		p.cfg.Log.Error("audit consent release", "err", err)
		return out, errAudit()
	}
	out.Output, out.Record = output, h
	return out, nil
}

// releaseRecord is the consent.release record of rq, with detail added to the grant's
// id and hash and the requesting node. The envelope (which carries the grant) is its
// party; the requester is its actor.
func (p *Pipeline) releaseRecord(rq *ReleaseRequest, pr *policy.Principal, d *oar.Decision, detail map[string]any) *oar.Record {
	g := rq.Grant
	grant, _ := g.Encode()
	detail["grant"], detail["grant_hash"], detail["origin"], detail["call"] = g.ID, consent.Hash(grant), rq.Origin, rq.Call
	detail["subjects"] = len(rq.Search.Subjects)
	return &oar.Record{Tenant: g.Grantor.Tenant, Actor: actorOf(pr), Action: oar.ActionConsentRelease, Resource: "consent/" + g.ID,
		Decision: d, Parties: []json.RawMessage{rq.Envelope}, Inputs: []oar.Digest{oar.DigestOf("envelope", rq.Envelope)},
		Detail: mustJSON(detail)}
}

// releasable searches the grantor's tenant for each subject asked about, at the
// ceiling: the memories that best match the question or, when none does, the newest;
// at most the limit asked per subject and MaxReleased in all; and keeps what the
// release rule allows (consent.Releasable).
func (p *Pipeline) releasable(ctx context.Context, g *consent.Grant, ceiling policy.Level, sp *SearchPayload) ([]ReleasedMemory, error) {
	limit := sp.Limit
	if limit == 0 {
		limit = ReleasePerSubject
	}
	store := p.cfg.Memory.Store
	var found []memory.Memory
	for _, s := range sp.Subjects {
		res, err := store.Search(ctx, memory.Query{Tenant: g.Grantor.Tenant, Subject: s, Clearance: ceiling, Text: sp.Query, Limit: limit})
		if err != nil {
			return nil, err
		}
		if len(res) > 0 {
			for _, r := range res {
				found = append(found, r.Memory)
			}
			continue
		}
		ex, err := store.Export(ctx, g.Grantor.Tenant, s)
		if errors.Is(err, memory.ErrUnknownSubject) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var newest []memory.Memory
		for i := len(ex.Memories) - 1; i >= 0 && len(newest) < limit; i-- {
			if m := ex.Memories[i]; m.Classification <= ceiling {
				newest = append(newest, m)
			}
		}
		found = append(found, newest...)
	}
	kept := consent.Releasable(g, ceiling, found, func(m memory.Memory) consent.Item {
		return consent.Item{Tenant: m.Tenant, Subject: m.Subject, Classification: m.Classification}
	})
	out := []ReleasedMemory{}
	for _, m := range kept {
		if len(out) == MaxReleased {
			break
		}
		rm := ReleasedMemory{ID: m.ID, Subject: m.Subject, Classification: m.Classification, Source: m.Source,
			Created: oar.FormatTime(m.Created), Text: m.Text}
		if _, err := jcs.Marshal(&rm); err != nil || checkReleaseText("source", rm.Source, memory.MaxNameBytes, "", true) != nil {
			p.cfg.Log.Warn("consent release: a memory cannot be released in canonical JSON; left out", "memory", m.ID)
			continue
		}
		out = append(out, rm)
	}
	return out, nil
}

package trace

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Options tune Verify.
type Options struct {
	// Evidence checks a node's hardware attestation evidence against its enrolment
	// certificate and says what it attests (identity/tpm's verifier, where the build
	// has it). Nil: evidence is reported as present and not checked.
	Evidence func(node string, cert identity.Certificate, evidence []byte) (string, error)
}

// Chain is what a verified trace proves: who took part, enrolled by which root, and
// what each record says, with the decision or the remote call it traces.
type Chain struct {
	Subject  ChainRecord    `json:"subject"`
	Roots    []ChainRoot    `json:"roots"`
	Nodes    []ChainNode    `json:"nodes"`
	Records  []ChainRecord  `json:"records"`
	Decision *ChainDecision `json:"decision,omitempty"`
	Calls    []ChainCall    `json:"calls,omitempty"`
	// Unchecked lists what the trace holds that this verifier cannot check (a party of
	// a format it does not know, attestation evidence without a verifier).
	Unchecked []string `json:"unchecked,omitempty"`
}

// ChainRoot is an institution root and the nodes it enrolled.
type ChainRoot struct {
	ID    string   `json:"root_id"`
	Nodes []string `json:"nodes"`
}

// ChainNode is a node: its name, its root, how its identity is attested, and the
// checkpoint its records are proven into.
type ChainNode struct {
	ID          string `json:"node"`
	Name        string `json:"name"`
	Root        string `json:"root_id"`
	Attestation string `json:"attestation"`
	LogSize     uint64 `json:"log_size"`
	LogSource   string `json:"log_source"`
}

// ChainRecord is one record: where it is and what it says.
type ChainRecord struct {
	Node           string   `json:"node"`
	Index          uint64   `json:"index"`
	RecordHash     string   `json:"record_hash"`
	Action         string   `json:"action"`
	Resource       string   `json:"resource,omitempty"`
	Tenant         string   `json:"tenant,omitempty"`
	Actor          string   `json:"actor"`
	Classification string   `json:"classification,omitempty"`
	Effect         string   `json:"effect,omitempty"`
	Policies       []string `json:"policies,omitempty"`
}

// ChainDecision is a decision's outcome and every counted ballot, with the record
// that holds it on its own node.
type ChainDecision struct {
	ID       string              `json:"decision_id"`
	Origin   string              `json:"origin"`
	Rule     string              `json:"rule"`
	Status   string              `json:"status"`
	Outcome  *string             `json:"outcome"`
	Tally    map[string]int      `json:"tally"`
	Ballots  []ChainBallot       `json:"ballots"`
	Rejected []decision.Rejected `json:"rejected,omitempty"`
	Absent   []string            `json:"absent,omitempty"`
}

// ChainBallot is one counted ballot.
type ChainBallot struct {
	Node        string       `json:"node"`
	Institution string       `json:"institution"`
	Brain       string       `json:"brain"`
	Seat        string       `json:"seat"`
	Model       string       `json:"model"`
	Choice      string       `json:"choice"`
	Confidence  float64      `json:"confidence"`
	Record      ChainRecord  `json:"record"`
	Invocation  *ChainRecord `json:"invocation,omitempty"`
}

// ChainCall is a remote brain call: the origin's envelope, the target's signed reply
// and the target's own record of it.
type ChainCall struct {
	Origin       string       `json:"origin"`
	Target       string       `json:"target"`
	Brain        string       `json:"brain"`
	Call         string       `json:"call"`
	Status       string       `json:"status"`
	OutputDigest string       `json:"output_digest,omitempty"`
	TargetRecord *ChainRecord `json:"target_record,omitempty"`
}

// verifier holds what Verify has established so far.
type verifier struct {
	t      *Trace
	opts   Options
	roots  map[string]identity.PublicKey
	keys   map[string]identity.PublicKey // node → verified node key
	certs  map[string]identity.Certificate
	cps    map[string]*ledger.Checkpoint
	recs   []*oar.Record
	hashes []string
	byHash map[string]int
	chain  *Chain
	// parties and checked memoize parsing and signature checks: the same request, or
	// ballot, is held by several records.
	parties map[[32]byte]*party
	checked map[[64]byte]error
}

// party parses raw once per verification.
func (v *verifier) party(raw []byte) *party {
	k := sha256.Sum256(raw)
	if p, ok := v.parties[k]; ok {
		return p
	}
	p := parseParty(raw)
	v.parties[k] = p
	return p
}

// Verify checks a trace with nothing but its own bytes (see the package comment) and
// returns the chain it proves, or an error naming the first part that does not hold.
func Verify(b []byte, opts Options) (*Chain, error) {
	t, err := Parse(b)
	if err != nil {
		return nil, err
	}
	v := &verifier{t: t, opts: opts, roots: map[string]identity.PublicKey{}, keys: map[string]identity.PublicKey{},
		certs: map[string]identity.Certificate{}, cps: map[string]*ledger.Checkpoint{}, byHash: map[string]int{}, chain: &Chain{},
		parties: map[[32]byte]*party{}, checked: map[[64]byte]error{}}
	for _, step := range []func() error{v.checkRoots, v.checkNodes, v.checkLogs, v.checkRecords, v.checkSubject, v.checkLinks, v.checkParties} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return v.chain, nil
}

func (v *verifier) checkRoots() error {
	for i, r := range v.t.Roots {
		key, err := r.Key.Parse()
		if err != nil {
			return fmt.Errorf("roots[%d] (%s): key: %v", i, r.ID, err)
		}
		if id := key.ID(identity.RootPrefix); id != r.ID {
			return fmt.Errorf("roots[%d] (%s): the key is root %s's", i, r.ID, id)
		}
		v.roots[r.ID] = key
	}
	return nil
}

func (v *verifier) checkNodes() error {
	enrolled := map[string][]string{}
	for i, n := range v.t.Nodes {
		part := fmt.Sprintf("nodes[%d] (%s)", i, n.ID)
		pub, rootPub, err := n.Certificate.Verify()
		if err != nil {
			return fmt.Errorf("%s: enrolment certificate: %v", part, err)
		}
		if n.Certificate.NodeID != n.ID || pub.ID(identity.NodePrefix) != n.ID {
			return fmt.Errorf("%s: the enrolment certificate is node %s's", part, n.Certificate.NodeID)
		}
		root, ok := v.roots[n.Certificate.RootID]
		if !ok {
			return fmt.Errorf("%s: enrolled by root %s, which the trace does not name", part, n.Certificate.RootID)
		}
		if !root.Equal(rootPub) {
			return fmt.Errorf("%s: enrolled by a key that is not root %s's", part, n.Certificate.RootID)
		}
		attest := "software (keys in files; no hardware evidence)"
		if len(n.Evidence) > 0 {
			if v.opts.Evidence == nil {
				attest = "hardware evidence present, not checked by this verifier"
				v.chain.Unchecked = append(v.chain.Unchecked, part+": attestation evidence (no verifier for it in this build)")
			} else if attest, err = v.opts.Evidence(n.ID, n.Certificate, n.Evidence); err != nil {
				return fmt.Errorf("%s: attestation evidence: %v", part, err)
			}
		}
		v.keys[n.ID], v.certs[n.ID] = pub, n.Certificate
		enrolled[n.Certificate.RootID] = append(enrolled[n.Certificate.RootID], n.ID)
		v.chain.Nodes = append(v.chain.Nodes, ChainNode{ID: n.ID, Name: n.Certificate.Name, Root: n.Certificate.RootID, Attestation: attest})
	}
	for _, r := range v.t.Roots {
		v.chain.Roots = append(v.chain.Roots, ChainRoot{ID: r.ID, Nodes: enrolled[r.ID]})
	}
	return nil
}

func (v *verifier) checkLogs() error {
	for i, l := range v.t.Logs {
		part := fmt.Sprintf("logs[%d] (%s)", i, l.Node)
		key, ok := v.keys[l.Node]
		if !ok {
			return fmt.Errorf("%s: the trace holds no enrolment certificate for the node", part)
		}
		cp, err := ledger.ParseCheckpoint([]byte(l.Checkpoint), l.Node, key)
		if err != nil {
			return fmt.Errorf("%s: %v", part, err)
		}
		v.cps[l.Node] = cp
		for j := range v.chain.Nodes {
			if v.chain.Nodes[j].ID == l.Node {
				v.chain.Nodes[j].LogSize, v.chain.Nodes[j].LogSource = cp.Size, l.Source
			}
		}
	}
	return nil
}

func (v *verifier) checkRecords() error {
	for i, r := range v.t.Records {
		part := fmt.Sprintf("records[%d] (%s record %d)", i, r.Node, r.Index)
		e, err := oar.Parse(r.Entry)
		if err != nil {
			return fmt.Errorf("%s: %v", part, err)
		}
		if e.Record == nil {
			return fmt.Errorf("%s: the entry is a %s, not a record", part, e.Kind)
		}
		rec := e.Record
		part = fmt.Sprintf("records[%d] (%s record %d, %s)", i, r.Node, r.Index, rec.Action)
		if rec.Node != r.Node {
			return fmt.Errorf("%s: the record is node %s's", part, rec.Node)
		}
		cp, ok := v.cps[r.Node]
		if !ok {
			return fmt.Errorf("%s: the trace holds no checkpoint of the node's log", part)
		}
		if r.Index >= cp.Size {
			return fmt.Errorf("%s: index is beyond the checkpoint's %d entries", part, cp.Size)
		}
		path := make([][]byte, len(r.InclusionProof))
		for j, h := range r.InclusionProof {
			path[j], _ = hex.DecodeString(h)
		}
		leaf := oar.RecordHash(r.Entry)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, leaf, path, cp.Root); err != nil {
			return fmt.Errorf("%s: not in the node's signed checkpoint of size %d: %v", part, cp.Size, err)
		}
		h := hex.EncodeToString(leaf)
		v.recs, v.hashes = append(v.recs, rec), append(v.hashes, h)
		v.byHash[h] = i
		v.chain.Records = append(v.chain.Records, chainRecord(r.Node, r.Index, h, rec))
	}
	return nil
}

func chainRecord(node string, idx uint64, hash string, rec *oar.Record) ChainRecord {
	c := ChainRecord{Node: node, Index: idx, RecordHash: hash, Action: rec.Action, Resource: rec.Resource, Tenant: rec.Tenant,
		Actor: rec.Actor.ID, Classification: rec.Classification}
	if rec.Decision != nil {
		c.Effect, c.Policies = rec.Decision.Effect, rec.Decision.Policies
	}
	return c
}

func (v *verifier) checkSubject() error {
	s := v.t.Subject
	i, ok := v.byHash[s.RecordHash]
	if !ok || v.t.Records[i].Node != s.Node || v.t.Records[i].Index != s.Index {
		return fmt.Errorf("subject: record %d of %s with hash %.16s… is not among the records", s.Index, s.Node, s.RecordHash)
	}
	v.chain.Subject = v.chain.Records[i]
	return nil
}

// checkLinks requires that every record a record links to is in the trace.
func (v *verifier) checkLinks() error {
	for i, rec := range v.recs {
		for _, l := range rec.Links {
			if _, ok := v.byHash[l.RecordHash]; !ok {
				return fmt.Errorf("%s: links to %s record %.16s…, which is not in the trace", v.part(i), l.Rel, l.RecordHash)
			}
		}
	}
	return nil
}

func (v *verifier) part(i int) string {
	r := v.t.Records[i]
	return fmt.Sprintf("records[%d] (%s record %d, %s)", i, r.Node, r.Index, v.recs[i].Action)
}

func (v *verifier) directory(node string) (decision.Contributor, bool) {
	key, ok := v.keys[node]
	if !ok {
		return decision.Contributor{}, false
	}
	return decision.Contributor{Key: key, Institution: v.certs[node].RootID}, true
}

// key is a signer's key, or an error naming the node the trace lacks.
func (v *verifier) key(node string) (identity.PublicKey, error) {
	k, ok := v.keys[node]
	if !ok {
		return k, fmt.Errorf("signed by node %s, whose enrolment certificate the trace does not hold", node)
	}
	return k, nil
}

// checkParties checks every party's signature, and what each record kind says about
// its parties and the records they name.
func (v *verifier) checkParties() error {
	for i, rec := range v.recs {
		ps := make([]*party, len(rec.Parties))
		for j, raw := range rec.Parties {
			p := v.party(raw)
			ps[j] = p
			part := fmt.Sprintf("%s: parties[%d]", v.part(i), j)
			if p.err != nil {
				return fmt.Errorf("%s: %v", part, p.err)
			}
			if err := v.checkSignatureOnce(p, ps); err != nil {
				return fmt.Errorf("%s (%s): %v", part, p.v, err)
			}
		}
		if err := v.checkRecord(i, rec, ps); err != nil {
			return fmt.Errorf("%s: %v", v.part(i), err)
		}
	}
	return nil
}

// checkSignatureOnce is checkSignature, once per party (a ballot: per party and the
// request beside it).
func (v *verifier) checkSignatureOnce(p *party, all []*party) error {
	var k [64]byte
	h := sha256.Sum256(p.raw)
	copy(k[:32], h[:])
	if p.ballot != nil {
		for _, q := range all {
			if q.request != nil {
				r := sha256.Sum256(q.raw)
				copy(k[32:], r[:])
				break
			}
		}
	}
	if err, ok := v.checked[k]; ok {
		return err
	}
	err := v.checkSignature(p, all)
	v.checked[k] = err
	return err
}

// checkSignature checks one party's signatures under its signer's enrolled keys.
func (v *verifier) checkSignature(p *party, all []*party) error {
	switch {
	case p.envelope != nil:
		k, err := v.key(p.envelope.Origin)
		if err != nil {
			return err
		}
		return p.envelope.Verify(k)
	case p.reply != nil:
		k, err := v.key(p.reply.Responder)
		if err != nil {
			return err
		}
		return p.reply.Verify(k)
	case p.request != nil:
		k, err := v.key(p.request.Origin)
		if err != nil {
			return err
		}
		return p.request.Verify(k)
	case p.ballot != nil:
		// A ballot verifies against the request it answers, which its record holds.
		for _, q := range all {
			if q.request != nil {
				if _, err := v.key(p.ballot.Node); err != nil {
					return err
				}
				return decision.Verify(p.ballot, q.request, v.directory)
			}
		}
		return fmt.Errorf("a ballot without the decision request it answers")
	case p.outcome != nil:
		o, err := decision.VerifyOutcome(p.raw, v.directory)
		p.verified = o
		return err
	case p.role != nil:
		return v.checkRoleEvent(p.role)
	}
	v.chain.Unchecked = append(v.chain.Unchecked, fmt.Sprintf("a party of format %q (not a format this verifier knows)", short(p.v)))
	return nil
}

// checkRecord checks the cross-references of the record kinds a trace follows.
func (v *verifier) checkRecord(i int, rec *oar.Record, ps []*party) error {
	node := v.t.Records[i].Node
	find := func(pred func(*party) bool) *party {
		for _, p := range ps {
			if pred(p) {
				return p
			}
		}
		return nil
	}
	env := find(func(p *party) bool { return p.envelope != nil })
	switch rec.Action {
	case oar.ActionDecisionOutcome:
		return v.checkOutcome(i, rec, ps)
	case oar.ActionDecisionRequest:
		req := find(func(p *party) bool { return p.request != nil })
		if req == nil || req.request.Origin != node || rec.Resource != "decision/"+req.request.Hash() {
			return fmt.Errorf("a decision.request record must hold its node's own decision request, named in its resource")
		}
	case oar.ActionDecisionBallot:
		req := find(func(p *party) bool { return p.request != nil })
		b := find(func(p *party) bool { return p.ballot != nil })
		if req == nil || b == nil {
			return fmt.Errorf("a decision.ballot record must hold the decision request and the ballot")
		}
		if b.ballot.Node != node {
			return fmt.Errorf("the ballot is node %s's, not the recording node's", b.ballot.Node)
		}
		if rec.Resource != "decision/"+req.request.Hash() {
			return fmt.Errorf("resource %q does not name the decision %s", short(rec.Resource), req.request.Hash())
		}
		for _, l := range rec.Links {
			if l.Rel != "invocation" {
				continue
			}
			j := v.byHash[l.RecordHash]
			inv := v.recs[j]
			if v.t.Records[j].Node != node || inv.Action != oar.ActionBrainInvoke || inv.Resource != "brain/"+b.ballot.Brain {
				return fmt.Errorf("its invocation link is not node %s's brain.invoke record of brain %s", node, b.ballot.Brain)
			}
			for _, raw := range inv.Parties {
				if e := v.party(raw).envelope; e != nil && (e.Origin != req.request.Origin || e.Target != node || e.Brain != b.ballot.Brain || e.Classification != req.request.Classification) {
					return fmt.Errorf("the envelope of its invocation (%s) is not the origin's call of brain %s at %s", v.part(j), b.ballot.Brain, req.request.Classification)
				}
			}
		}
	case oar.ActionRoleHandover:
		return v.checkHandover(rec, ps) // succession.go
	case oar.ActionBrainInvoke:
		if env != nil && env.envelope.Target != node {
			return fmt.Errorf("it holds an envelope addressed to %s", env.envelope.Target)
		}
	case oar.ActionBrainComplete:
		rep := find(func(p *party) bool { return p.reply != nil })
		if env == nil || rep == nil {
			return nil // a local brain's completion
		}
		return v.checkCall(rec, node, env, rep)
	}
	return nil
}

// checkCall checks a remote call's completion record at its origin: the envelope is
// the origin's, the reply answers it, and the target's record of the call holds the
// same envelope.
func (v *verifier) checkCall(rec *oar.Record, node string, env, rep *party) error {
	e, r := env.envelope, rep.reply
	switch {
	case e.Origin != node:
		return fmt.Errorf("its envelope is %s's, not the recording node's", e.Origin)
	case r.Call != fleet.CallHash(env.raw):
		return fmt.Errorf("the reply answers call %.16s…, not its envelope %.16s…", r.Call, fleet.CallHash(env.raw))
	case r.Responder != e.Target:
		return fmt.Errorf("the reply is %s's, but the envelope went to %s", r.Responder, e.Target)
	}
	if r.Status == fleet.ReplyOK {
		i := slices.IndexFunc(rec.Outputs, func(d oar.Digest) bool { return d.Name == "remote_output" })
		if i < 0 || rec.Outputs[i].SHA256 != r.OutputDigest {
			return fmt.Errorf("its remote_output digest is not the reply's output_digest %.16s…", r.OutputDigest)
		}
	}
	call := ChainCall{Origin: e.Origin, Target: e.Target, Brain: e.Brain, Call: r.Call, Status: r.Status, OutputDigest: r.OutputDigest}
	if r.Record != "" {
		j, ok := v.byHash[r.Record]
		if !ok {
			return fmt.Errorf("the target's record %.16s… of the call (the reply's record) is not in the trace", r.Record)
		}
		tr := v.recs[j]
		if v.t.Records[j].Node != e.Target || tr.Action != oar.ActionBrainInvoke || len(tr.Parties) == 0 || !bytes.Equal(tr.Parties[0], env.raw) {
			return fmt.Errorf("the target's record of the call (%s) is not %s's brain.invoke record holding this envelope", v.part(j), e.Target)
		}
		c := v.chain.Records[j]
		call.TargetRecord = &c
	}
	v.chain.Calls = append(v.chain.Calls, call)
	return nil
}

// checkOutcome checks a decision's outcome record: the outcome verifies and is the
// recording node's, and the request and every counted ballot are in records of the
// trace — the request in this node's decision.request record, each ballot in the
// decision.ballot record of the node that cast it — that the outcome record links to.
func (v *verifier) checkOutcome(i int, rec *oar.Record, ps []*party) error {
	if len(ps) == 0 || ps[0].verified == nil {
		return fmt.Errorf("a decision.outcome record holds its outcome as its first party")
	}
	o := ps[0].verified
	req, node := o.ParsedRequest(), v.t.Records[i].Node
	switch {
	case req.Origin != node:
		return fmt.Errorf("the decision is %s's, not the recording node's", req.Origin)
	case rec.Resource != "decision/"+o.Decision:
		return fmt.Errorf("resource %q does not name the decision %s", short(rec.Resource), o.Decision)
	}
	if j := slices.IndexFunc(rec.Outputs, func(d oar.Digest) bool { return d.Name == "outcome" }); j < 0 || rec.Outputs[j].SHA256 != sha256Hex(ps[0].raw) {
		return fmt.Errorf("its outcome digest is not the outcome's")
	}
	linked := func(rel string, pred func(j int) bool) (int, bool) {
		for _, l := range rec.Links {
			if j := v.byHash[l.RecordHash]; l.Rel == rel && pred(j) {
				return j, true
			}
		}
		return 0, false
	}
	holds := func(j int, raw []byte) bool {
		return slices.ContainsFunc(v.recs[j].Parties, func(p json.RawMessage) bool { return bytes.Equal(p, raw) })
	}
	if _, ok := linked("request", func(j int) bool {
		return v.t.Records[j].Node == node && v.recs[j].Action == oar.ActionDecisionRequest && holds(j, o.Request)
	}); !ok {
		return fmt.Errorf("no decision.request record of %s holding the decision's request is linked and in the trace", node)
	}
	cd := &ChainDecision{ID: o.Decision, Origin: req.Origin, Rule: o.Rule, Status: o.Status, Outcome: o.Result, Tally: o.Tally,
		Rejected: o.Rejected, Absent: o.Absent}
	for _, c := range o.Counted {
		b := c.Ballot
		j, ok := linked("ballot", func(j int) bool {
			return v.t.Records[j].Node == b.Node && v.recs[j].Action == oar.ActionDecisionBallot && holds(j, c.Bytes) && holds(j, o.Request)
		})
		if !ok {
			return fmt.Errorf("the ballot of brain %s on node %s has no record of that node in the trace, linked from the outcome, holding it and the request", b.Brain, b.Node)
		}
		cb := ChainBallot{Node: b.Node, Institution: c.Institution, Brain: b.Brain, Seat: c.Seat, Model: b.Model, Choice: b.Choice,
			Confidence: b.Confidence.Float(), Record: v.chain.Records[j]}
		for _, l := range v.recs[j].Links {
			if k, ok := v.byHash[l.RecordHash]; ok && l.Rel == "invocation" {
				r := v.chain.Records[k]
				cb.Invocation = &r
			}
		}
		cd.Ballots = append(cd.Ballots, cb)
	}
	v.chain.Decision = cd
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// String writes the chain for a person: the roots and who they enrolled, the decision
// or call traced, and where each part is recorded.
func (c *Chain) String() string {
	var b strings.Builder
	s := c.Subject
	fmt.Fprintf(&b, "trace of record %d of %s (%s %s) verifies\n", s.Index, s.Node, s.Action, s.Resource)
	name := map[string]string{}
	for _, n := range c.Nodes {
		name[n.ID] = n.Name
	}
	b.WriteString("\nidentities (compare these roots with the ones you trust):\n")
	for _, r := range c.Roots {
		fmt.Fprintf(&b, "  institution root %s enrolled:\n", r.ID)
		for _, id := range r.Nodes {
			for _, n := range c.Nodes {
				if n.ID == id {
					fmt.Fprintf(&b, "    %s %q — %s; log checkpoint of %d entries (%s copy)\n", n.ID, n.Name, n.Attestation, n.LogSize, n.LogSource)
				}
			}
		}
	}
	if d := c.Decision; d != nil {
		out := "none"
		if d.Outcome != nil {
			out = *d.Outcome
		}
		fmt.Fprintf(&b, "\ndecision %s by %s (%s): %s, outcome %s; tally %s\n", d.ID, d.Origin, d.Rule, d.Status, out, tally(d.Tally))
		fmt.Fprintf(&b, "  asked by %s (tenant %s, %s data) under %s; outcome record %d of %s\n", s.Actor, s.Tenant, s.Classification, policies(s), s.Index, s.Node)
		for _, cb := range d.Ballots {
			fmt.Fprintf(&b, "  %s on %s %q (root %s), model %s: %s (%.3f) — recorded by %s at record %d",
				cb.Brain, cb.Node, name[cb.Node], cb.Institution, cb.Model, cb.Choice, cb.Confidence, cb.Record.Node, cb.Record.Index)
			if inv := cb.Invocation; inv != nil {
				fmt.Fprintf(&b, "; the brain ran under record %d, %s by %s", inv.Index, inv.Effect, strings.Join(inv.Policies, ", "))
			}
			b.WriteString("\n")
		}
		for _, r := range d.Rejected {
			fmt.Fprintf(&b, "  rejected: brain %s of %s (%s): %s\n", r.Brain, r.Node, r.Reason, r.Detail)
		}
		for _, a := range d.Absent {
			fmt.Fprintf(&b, "  absent: %s\n", a)
		}
	}
	for _, call := range c.Calls {
		fmt.Fprintf(&b, "\nremote call of brain %s from %s %q to %s %q: %s, call %.16s…\n", call.Brain, call.Origin, name[call.Origin], call.Target, name[call.Target], call.Status, call.Call)
		fmt.Fprintf(&b, "  asked by %s (tenant %s, %s data) under %s; recorded by %s at record %d\n", s.Actor, s.Tenant, s.Classification, policies(s), s.Node, s.Index)
		if t := call.TargetRecord; t != nil {
			fmt.Fprintf(&b, "  served by %s under %s; recorded by %s at record %d\n", t.Node, policies(*t), t.Node, t.Index)
		}
	}
	b.WriteString("\nrecords (each proven into its node's signed checkpoint):\n")
	for _, r := range c.Records {
		fmt.Fprintf(&b, "  %s record %d: %s %s", r.Node, r.Index, r.Action, r.Resource)
		if r.Effect != "" {
			fmt.Fprintf(&b, " — %s", policies(r))
		}
		b.WriteString("\n")
	}
	for _, u := range c.Unchecked {
		fmt.Fprintf(&b, "not checked: %s\n", u)
	}
	return b.String()
}

func policies(r ChainRecord) string {
	if r.Effect == "" {
		return "no policy decision"
	}
	if len(r.Policies) == 0 {
		return r.Effect
	}
	return r.Effect + " by " + strings.Join(r.Policies, ", ")
}

func tally(t map[string]int) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, t[k]))
	}
	return strings.Join(parts, ", ")
}

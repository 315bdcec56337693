package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/policy"
)

// exitDeny is policy check's status for a deny: distinct from failure (1) and usage (2).
const exitDeny = 3

func runPolicy(ctx context.Context, e *env, args []string) error {
	const usage = "policy check --principal ID --tenant T (--brain ID | --peer NODEID [--peer-posture LEVEL --peer-institution ROOTID --peer-attestation KIND] | --grant FILE) [--grant FILE] [--classification LEVEL] [--json]"
	if len(args) == 0 || args[0] != "check" {
		return usageError("usage: sios [--data DIR] %s", usage)
	}
	fs := newFlags(e, "policy check", usage)
	pid := fs.String("principal", "", "principal id (required)")
	tenant := fs.String("tenant", "", "the principal's tenant (required)")
	brainID := fs.String("brain", "", "brain id: may the principal invoke it here?")
	peerID := fs.String("peer", "", "peer node id: may the principal's request be sent to it (peer.send)? Its attributes come from the running node's fleet unless given")
	peerPosture := fs.String("peer-posture", "", "the peer's accreditation (posture)")
	peerInst := fs.String("peer-institution", "", "the peer's institution root id")
	peerAttest := fs.String("peer-attestation", "", "the peer's attestation kind (software or tpm)")
	class := fs.String("classification", "OFFICIAL", "classification of the data the request would carry")
	grantFile := fs.String("grant", "", "a consent grant (a file 'sios consent grant --json' wrote): policies see it as context.grant; alone, the question is whether the principal may make it (consent.grant)")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 || *pid == "" || *tenant == "" || (*brainID != "" && *peerID != "") || (*brainID == "" && *peerID == "" && *grantFile == "") {
		return usageError("policy check needs --principal, --tenant and one of --brain, --peer or --grant")
	}
	data, err := policy.ParseLevel(*class)
	if err != nil {
		return usageError("--classification: %v", err)
	}
	eng, err := policy.Load(e.dataDir)
	if err != nil {
		return err
	}
	ps, err := policy.OpenPrincipals(e.dataDir)
	if err != nil {
		return err
	}
	p, ok := ps.Get(*tenant, *pid)
	if !ok {
		return withHint(fmt.Errorf("no principal %s in tenant %s", *pid, *tenant), "add one with 'sios principal add'")
	}
	var grant *consent.Grant
	if *grantFile != "" {
		if grant, err = e.grantForPolicy(*grantFile); err != nil {
			return err
		}
	}
	withGrant := func(req policy.Request) policy.Request {
		if grant != nil {
			req.Context.Grant = grant.CedarAttrs()
		}
		return req
	}
	if *peerID != "" {
		req, err := e.peerRequest(ctx, p, *peerID, *peerPosture, *peerInst, *peerAttest, data)
		if err != nil {
			return err
		}
		return decideAndShow(e, eng, withGrant(req), *asJSON)
	}
	if *brainID == "" {
		// May the principal make this grant? As POST /v1/consents asks.
		req := policy.Request{
			Principal: *p, Action: policy.ActionConsentGrant,
			Resource: policy.Resource{Type: policy.ResourceConsent, ID: grant.ID, Classification: grant.Scope.Max, Tenant: p.Tenant},
			Context:  policy.Context{Tenant: p.Tenant, DataClassification: grant.Scope.Max, TargetAccreditation: grant.Scope.Max},
		}
		return decideAndShow(e, eng, withGrant(req), *asJSON)
	}
	cat, err := brain.Load(e.dataDir)
	if err != nil {
		return err
	}
	b, ok := cat.Get(*brainID)
	if !ok {
		return withHint(fmt.Errorf("no brain %q", *brainID), "'sios brains list' shows the catalogue")
	}
	lvl, err := policy.ParseLevel(b.Classification)
	if err != nil {
		return err
	}
	req := policy.Request{
		Principal: *p, Action: policy.ActionInvoke,
		Resource: policy.Resource{Type: policy.ResourceBrain, ID: b.ID, Classification: lvl, Kind: b.Kind},
		Context:  policy.Context{Tenant: p.Tenant, DataClassification: data, TargetAccreditation: lvl},
	}
	return decideAndShow(e, eng, withGrant(req), *asJSON)
}

// grantForPolicy reads a grant for 'policy check'. Policy decides on what a verified
// grant says; a grant this node made is verified with its keys here, and one made
// elsewhere is explained as it reads (the node verifies it against its origin's keys
// before its policy ever sees it).
func (e *env) grantForPolicy(path string) (*consent.Grant, error) {
	raw, err := readGrantFile(path)
	if err != nil {
		return nil, withHint(fmt.Errorf("--grant: %v", err), "give the file 'sios consent grant --json' printed, or the grant itself")
	}
	g, err := consent.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--grant: %v", err)
	}
	if n, err := e.loadNode(); err == nil && g.Origin.Node == n.ID() {
		if err := consent.VerifySignature(g, consent.Signer{Key: n.Public(), Institution: n.Cert.RootID}); err != nil {
			return nil, fmt.Errorf("--grant: %v", err)
		}
	}
	return g, nil
}

// decideAndShow prints the decision (explained, or as JSON) and exits 3 on deny.
func decideAndShow(e *env, eng *policy.Engine, req policy.Request, asJSON bool) error {
	d := eng.Decide(req)
	if asJSON {
		reasons := d.Reasons
		if reasons == nil {
			reasons = []string{}
		}
		if err := printJSON(e.stdout, map[string]any{"decision": d.Effect(), "reasons": reasons, "errors": d.Errors}); err != nil {
			return err
		}
	} else {
		fmt.Fprint(e.stdout, eng.Explain(req))
	}
	if !d.Allow {
		return &cliError{err: fmt.Errorf("denied"), code: exitDeny, quiet: true}
	}
	return nil
}

// peerRequest builds the peer.send question for a peer: its attributes from the flags,
// else from the running node's view of the fleet.
func (e *env) peerRequest(ctx context.Context, p *policy.Principal, peerID, posture, inst, attest string, data policy.Level) (policy.Request, error) {
	if posture == "" || inst == "" || attest == "" {
		admin := admin.Dial(e.dataDir)
		if admin == nil {
			return policy.Request{}, withHint(fmt.Errorf("no node is running to say what peer %s states", peerID),
				"give --peer-posture, --peer-institution and --peer-attestation")
		}
		var peers []fleet.Peer
		if err := admin.Do(ctx, "GET", "/admin/fleet/peers", nil, &peers); err != nil {
			return policy.Request{}, err
		}
		i := slices.IndexFunc(peers, func(x fleet.Peer) bool { return x.NodeID == peerID })
		if i < 0 {
			return policy.Request{}, withHint(fmt.Errorf("the running node knows no peer %s", peerID), "'sios fleet peers' lists them")
		}
		posture, inst, attest = cmp.Or(posture, peers[i].Posture), cmp.Or(inst, peers[i].Institution), cmp.Or(attest, peers[i].Attestation)
	}
	lvl, err := policy.ParseLevel(posture)
	if err != nil {
		return policy.Request{}, usageError("peer posture: %v", err)
	}
	cert, _, err := e.loadCert()
	if err != nil {
		return policy.Request{}, err
	}
	return policy.Request{
		Principal: *p, Action: policy.ActionPeerSend,
		Resource: policy.Resource{Type: policy.ResourcePeer, ID: peerID, Classification: lvl,
			Institution: inst, Attestation: attest, SameInstitution: inst == cert.RootID},
		Context: policy.Context{Tenant: p.Tenant, DataClassification: data, TargetAccreditation: lvl},
	}, nil
}

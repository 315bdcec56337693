package main

import (
	"context"
	"fmt"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/policy"
)

// exitDeny is policy check's status for a deny: distinct from failure (1) and usage (2).
const exitDeny = 3

func runPolicy(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError("usage: sios [--data DIR] policy check --principal ID --tenant T --brain ID [--classification LEVEL] [--json]")
	}
	fs := newFlags(e, "policy check", "policy check --principal ID --tenant T --brain ID [--classification LEVEL] [--json]")
	pid := fs.String("principal", "", "principal id (required)")
	tenant := fs.String("tenant", "", "the principal's tenant (required)")
	brainID := fs.String("brain", "", "brain id (required)")
	class := fs.String("classification", "OFFICIAL", "classification of the data the request would carry")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 || *pid == "" || *tenant == "" || *brainID == "" {
		return usageError("policy check needs --principal, --tenant and --brain")
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
	d := eng.Decide(req)
	if *asJSON {
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

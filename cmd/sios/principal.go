package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/policy"
)

// rolesFlag collects repeated --role flags.
type rolesFlag []string

func (r *rolesFlag) String() string     { return strings.Join(*r, ",") }
func (r *rolesFlag) Set(s string) error { *r = append(*r, s); return nil }

func runPrincipal(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "add" {
		return usageError("usage: sios [--data DIR] principal add --tenant T --id ID --clearance LEVEL [--role R]... [--json]")
	}
	fs := newFlags(e, "principal add", "principal add --tenant T --id ID --clearance LEVEL [--role R]... [--service] [--json]")
	tenant := fs.String("tenant", "", "tenant the principal belongs to (required)")
	id := fs.String("id", "", "principal id (required)")
	clearance := fs.String("clearance", "", "OFFICIAL, OFFICIAL-SENSITIVE, SECRET or TOP-SECRET (required)")
	service := fs.Bool("service", false, "a service rather than a user")
	var roles rolesFlag
	fs.Var(&roles, "role", "a role (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("principal add takes no arguments, got %q", rest[0])
	}
	if *tenant == "" || *id == "" || *clearance == "" {
		return usageError("principal add needs --tenant, --id and --clearance")
	}
	if _, err := policy.ParseLevel(*clearance); err != nil {
		return usageError("--clearance: %v", err)
	}
	kind := "user"
	if *service {
		kind = "service"
	}
	var res admin.PrincipalResponse
	if c := admin.Dial(e.dataDir); c != nil {
		// A node is running: it holds the ledger, so the change goes through it.
		err = c.Do(ctx, "POST", "/admin/principals", admin.PrincipalRequest{Tenant: *tenant, ID: *id, Kind: kind,
			Clearance: *clearance, Roles: roles}, &res)
	} else {
		err = addPrincipalDirect(ctx, e, policy.NewPrincipal{Tenant: *tenant, ID: *id, Kind: kind, Clearance: *clearance, Roles: roles}, &res)
	}
	if err != nil {
		if errors.Is(err, policy.ErrPrincipalExists) || strings.Contains(err.Error(), "already exists") {
			return withHint(err, "principal ids are unique within a tenant")
		}
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "added %s in tenant %s with clearance %s\n", res.ID, res.Tenant, res.Clearance)
	fmt.Fprintf(e.stdout, "API key (shown once; it is stored only as a hash): %s\n", res.APIKey)
	return nil
}

func addPrincipalDirect(ctx context.Context, e *env, np policy.NewPrincipal, res *admin.PrincipalResponse) error {
	n, err := e.loadNode()
	if err != nil {
		return err
	}
	l, err := ledger.Open(ctx, e.ledgerDir(), n, ledger.Options{CheckpointInterval: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer l.Close(context.WithoutCancel(ctx))
	ps, err := policy.OpenPrincipals(e.dataDir)
	if err != nil {
		return err
	}
	r, err := admin.AddPrincipal(ctx, ps, l.Append, "operator", np)
	if err != nil {
		return err
	}
	*res = *r
	return nil
}

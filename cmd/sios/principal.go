package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/policy"
)

// rolesFlag collects repeated --role flags.
type rolesFlag []string

func (r *rolesFlag) String() string     { return strings.Join(*r, ",") }
func (r *rolesFlag) Set(s string) error { *r = append(*r, s); return nil }

const principalUsage = `Usage: sios [--data DIR] principal SUBCOMMAND

Subcommands:
  add         --tenant T --id ID --clearance LEVEL [--role R]... [--service] [--json]
  list        [--json]
  show        ID [--tenant T] [--json]
  remove      ID [--tenant T]             its keys stop working at once
  disable     ID [--tenant T]             kept, but its keys stop working at once
  enable      ID [--tenant T]
  rotate-key  ID [--tenant T] [--name N] [--expires D] [--json]
                                          a new key named N (default "default"), printed once;
                                          the old key of that name stops working at once
  set         ID [--tenant T] [--clearance LEVEL] [--role R]... [--json]

Every change goes through the running node when there is one, else acts on DIR; each is
recorded in the audit log before it takes effect.
`

func runPrincipal(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, principalUsage)
		return usageError("principal needs a subcommand")
	}
	if isHelp(args[0]) {
		fmt.Fprint(e.stdout, principalUsage)
		return nil
	}
	sub := args[0]
	switch sub {
	case "add":
		return runPrincipalAdd(ctx, e, args[1:])
	case "list", "show", "remove", "disable", "enable", "rotate-key", "set":
		return runPrincipalChange(ctx, e, sub, args[1:])
	}
	fmt.Fprint(e.stderr, principalUsage)
	return usageError("unknown principal subcommand %q", sub)
}

func runPrincipalAdd(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "principal add", "principal add --tenant T --id ID --clearance LEVEL [--role R]... [--service] [--json]")
	tenant := fs.String("tenant", "", "tenant the principal belongs to (required)")
	id := fs.String("id", "", "principal id (required)")
	clearance := fs.String("clearance", "", "OFFICIAL, OFFICIAL-SENSITIVE, SECRET or TOP-SECRET (required)")
	service := fs.Bool("service", false, "a service rather than a user")
	var roles rolesFlag
	fs.Var(&roles, "role", "a role (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
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
	np := policy.NewPrincipal{Tenant: *tenant, ID: *id, Kind: kind, Clearance: *clearance, Roles: roles}
	var res admin.PrincipalResponse
	if c := admin.Dial(e.dataDir); c != nil {
		// A node is running: it holds the ledger, so the change goes through it.
		err = c.Do(ctx, "POST", "/admin/principals", admin.PrincipalRequest{Tenant: *tenant, ID: *id, Kind: kind,
			Clearance: *clearance, Roles: roles}, &res)
	} else {
		err = e.withLedger(ctx, func(ps *policy.Principals, l *ledger.Ledger) error {
			r, err := admin.AddPrincipal(ctx, ps, l.Append, "operator", np)
			if err == nil {
				res = *r
			}
			return err
		})
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

// withLedger runs f on the data directory's principal store and ledger, when no node
// holds them.
func (e *env) withLedger(ctx context.Context, f func(*policy.Principals, *ledger.Ledger) error) error {
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
	return f(ps, l)
}

func runPrincipalChange(ctx context.Context, e *env, sub string, args []string) error {
	fs := newFlags(e, "principal "+sub, strings.TrimPrefix(principalUsage, "Usage: "))
	tenant := fs.String("tenant", "", "the principal's tenant (needed when the id is in more than one)")
	name := fs.String("name", "default", "the key's name (rotate-key)")
	expires := fs.Duration("expires", 0, "the new key stops working after this long, e.g. 720h (rotate-key)")
	clearance := fs.String("clearance", "", "the new clearance (set)")
	var roles rolesFlag
	fs.Var(&roles, "role", "a role, repeatable; replaces the roles (set)")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	list, err := e.principals(ctx)
	if err != nil {
		return err
	}
	if sub == "list" {
		if len(rest) > 0 {
			return usageError("principal list takes no arguments")
		}
		if *asJSON {
			return printJSON(e.stdout, list)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tID\tKIND\tCLEARANCE\tROLES\tKEYS\tSTATE")
		for _, p := range list {
			state := "active"
			if p.Disabled {
				state = "disabled"
			}
			var keys []string
			for _, k := range p.Keys {
				keys = append(keys, k.Name)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Tenant, p.ID, p.Kind, p.Clearance, strings.Join(p.Roles, ","), strings.Join(keys, ","), state)
		}
		return tw.Flush()
	}
	if len(rest) != 1 {
		return usageError("principal %s needs one principal ID", sub)
	}
	var found []admin.PrincipalView
	for _, p := range list {
		if p.ID == rest[0] && (*tenant == "" || p.Tenant == *tenant) {
			found = append(found, p)
		}
	}
	switch {
	case len(found) == 0:
		return withHint(fmt.Errorf("no principal %s%s", rest[0], inTenant(*tenant)), "'sios principal list' shows them")
	case len(found) > 1:
		return usageError("principal %s is in more than one tenant: name one with --tenant", rest[0])
	}
	p := found[0]
	if sub == "show" {
		if *asJSON {
			return printJSON(e.stdout, p)
		}
		fmt.Fprintf(e.stdout, "%s in tenant %s: %s, clearance %s, roles %s, disabled %v, created %s\n",
			p.ID, p.Tenant, p.Kind, p.Clearance, strings.Join(p.Roles, ","), p.Disabled, p.Created)
		for _, k := range p.Keys {
			exp := "never expires"
			if k.Expires != "" {
				exp = "expires " + k.Expires
			}
			fmt.Fprintf(e.stdout, "  key %s: created %s, %s\n", k.Name, k.Created, exp)
		}
		return nil
	}
	req := admin.ChangeRequest{Tenant: p.Tenant, ID: p.ID, Op: sub, KeyName: *name, Clearance: *clearance}
	if *expires > 0 {
		req.Expires = time.Now().Add(*expires)
	}
	if len(roles) > 0 {
		r := []string(roles)
		req.Roles = &r
	}
	if sub == "set" && req.Clearance == "" && req.Roles == nil {
		return usageError("principal set needs --clearance or --role")
	}
	var res admin.ChangeResponse
	if c := admin.Dial(e.dataDir); c != nil {
		err = c.Do(ctx, "POST", "/admin/principals/change", req, &res)
	} else {
		err = e.withLedger(ctx, func(ps *policy.Principals, l *ledger.Ledger) error {
			r, err := admin.ChangePrincipal(ctx, ps, l.Append, "operator", req)
			if err == nil {
				res = *r
			}
			return err
		})
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	switch sub {
	case "rotate-key":
		fmt.Fprintf(e.stdout, "key %s of %s issued anew; the previous key of that name no longer works\n", *name, p.ID)
		fmt.Fprintf(e.stdout, "API key (shown once; it is stored only as a hash): %s\n", res.APIKey)
	case "remove":
		fmt.Fprintf(e.stdout, "removed %s from tenant %s: its keys no longer work\n", p.ID, p.Tenant)
	default:
		fmt.Fprintf(e.stdout, "%s %s in tenant %s\n", pastTense(sub), p.ID, p.Tenant)
	}
	return nil
}

func pastTense(op string) string {
	switch op {
	case "disable":
		return "disabled (its keys no longer work)"
	case "enable":
		return "enabled"
	}
	return "changed"
}

func inTenant(t string) string {
	if t == "" {
		return ""
	}
	return " in tenant " + t
}

// principals lists the principals, through the running node or from DIR.
func (e *env) principals(ctx context.Context) ([]admin.PrincipalView, error) {
	var list []admin.PrincipalView
	if c := admin.Dial(e.dataDir); c != nil {
		return list, c.Do(ctx, "GET", "/admin/principals", nil, &list)
	}
	ps, err := policy.OpenPrincipals(e.dataDir)
	if err != nil {
		return nil, err
	}
	list = []admin.PrincipalView{}
	for _, sp := range ps.List() {
		list = append(list, admin.ViewOf(sp))
	}
	return list, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/roles"
	"github.com/sios-project/sios/succession"
)

// sios role: the institution's chartered roles (docs/succession.md). The operator acts
// through the running node's admin socket (for a principal: --as); a principal acts
// through a node's API with its own key (--node URL --api-key K), under policy.

const roleUsage = `Usage: sios [--data DIR] role SUBCOMMAND

Subcommands:
  list            [--tenant T] [--json]
  show            NAME [--tenant T] [--json]
  define          NAME --tenant T --holder ID --successors A,B,… --observers NODEID,… --k K
                  [--admins A,B,…] --suspect-after D --wait D --accept-within D [--json]
  checkin         NAME            the holder is present
  refute          NAME [--reason TEXT]
                                  the holder refuses a pending handover
  accept          NAME            the successor the role is offered to accepts it
  remove          NAME --reason TEXT
                                  one admin of the charter removes the holder (k admins: at once)
  letter deposit  NAME FILE       the holder seals FILE for whoever succeeds
  letter open     NAME [--out FILE]
                                  the successor opens it, on the node they accepted through

Durations are like 30s, 15m, 72h or 30d. Observers are node ids ('sios id', 'sios fleet peers').

Every subcommand takes --json, and either
  --node URL --api-key K   act as that key's principal through a node's API, under policy, or
  (nothing)                act through the running node on DIR as its operator: --tenant T
                           names the role's tenant where the name is not unique, and
                           --as ID the principal an act is for (the holder, successor or admin).
Each act is recorded in the ledger of the node that signs it before it is published.
`

// actResult is an act's answer, from the API or the admin socket.
type actResult struct {
	State      succession.RoleState `json:"state"`
	Event      string               `json:"event,omitempty"`
	Published  bool                 `json:"published"`
	Receipt    *oar.Receipt         `json:"receipt,omitempty"`
	Letter     []byte               `json:"letter,omitempty"`
	LetterHash string               `json:"letter_hash,omitempty"`
}

// roleClient is the node a role command goes through.
type roleClient interface {
	list(ctx context.Context, tenant string) ([]succession.RoleState, error)
	define(ctx context.Context, spec roles.Spec, as string) (*actResult, error)
	act(ctx context.Context, tenant, name, act, as, reason string, letter []byte) (*actResult, error)
}

func runRole(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, roleUsage)
		return usageError("role needs a subcommand")
	}
	if isHelp(args[0]) {
		fmt.Fprint(e.stdout, roleUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	if sub == "letter" {
		if len(args) == 0 || (args[0] != "deposit" && args[0] != "open") {
			return usageError("role letter needs deposit or open")
		}
		sub, args = "letter-"+args[0], args[1:]
	}
	known := []string{"list", "show", "define", "checkin", "refute", "accept", "remove", "letter-deposit", "letter-open"}
	if !slices.Contains(known, sub) {
		fmt.Fprint(e.stderr, roleUsage)
		return usageError("unknown role subcommand %q", sub)
	}
	fs := newFlags(e, "role "+strings.Replace(sub, "-", " ", 1), strings.TrimPrefix(roleUsage, "Usage: "))
	tenant := fs.String("tenant", "", "the role's tenant")
	as := fs.String("as", "", "through the admin socket: the principal the act is for")
	nodeURL := fs.String("node", "", "act as a principal through this node's API (its base URL)")
	apiKey := fs.String("api-key", "", "the principal's API key (default $SIOS_API_KEY)")
	asJSON := fs.Bool("json", false, "print JSON")
	reason := fs.String("reason", "", "the reason (refute, remove)")
	out := fs.String("out", "", "write the opened letter to FILE (letter open)")
	holder := fs.String("holder", "", "the holder: a principal id (define)")
	successors := fs.String("successors", "", "successors in order, comma-separated (define)")
	observers := fs.String("observers", "", "observer node ids, comma-separated (define)")
	admins := fs.String("admins", "", "admins whose removals count, comma-separated (define; none: the role cannot be removed)")
	k := fs.Int("k", 0, "observers (and admins) who must agree (define)")
	suspectAfter := fs.String("suspect-after", "", "silence after which an observer suspects (define)")
	wait := fs.String("wait", "", "time from the k-th suspicion to the handover, during which the holder can refute (define)")
	acceptWithin := fs.String("accept-within", "", "time each successor has to accept (define)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	rc, err := e.roleClient(*nodeURL, *apiKey, *as, sub)
	if err != nil {
		return err
	}
	want := map[string]int{"list": 0, "letter-deposit": 2}
	n, ok := want[sub]
	if !ok {
		n = 1
	}
	if len(rest) != n {
		return usageError("role %s takes %d argument(s), got %d", strings.Replace(sub, "-", " ", 1), n, len(rest))
	}
	if sub == "list" {
		list, err := rc.list(ctx, *tenant)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, list)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tNAME\tSTATE\tHOLDER\tSUCCESSORS\tSUSPICIONS\tK")
		for _, st := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", st.Tenant, st.Name, st.State, orNone(st.Holder), strings.Join(st.Successors, ","), len(st.Suspicions), st.K)
		}
		return tw.Flush()
	}
	name := rest[0]
	if sub == "define" {
		spec := roles.Spec{Tenant: *tenant, Name: name, Holder: *holder, Successors: splitList(*successors), Observers: splitList(*observers),
			K: *k, Admins: splitList(*admins)}
		if *nodeURL == "" && *tenant == "" {
			return usageError("role define needs --tenant")
		}
		if *holder == "" || *successors == "" || *observers == "" || *k == 0 || *suspectAfter == "" || *wait == "" || *acceptWithin == "" {
			return usageError("role define needs --holder, --successors, --observers, --k, --suspect-after, --wait and --accept-within")
		}
		for _, d := range []struct {
			flag, v string
			to      *uint64
		}{{"suspect-after", *suspectAfter, &spec.SuspectAfter}, {"wait", *wait, &spec.Wait}, {"accept-within", *acceptWithin, &spec.AcceptWithin}} {
			if *d.to, err = parseSeconds(d.v); err != nil {
				return usageError("--%s: %v", d.flag, err)
			}
		}
		res, err := rc.define(ctx, spec, *as)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(e.stdout, res)
		}
		fmt.Fprintf(e.stdout, "role %s of tenant %s defined: charter %s (seq %d), published to the institution's nodes\n",
			name, res.State.Tenant, res.State.Charter, res.State.Seq)
		return printRoleReceipt(e, res.Receipt)
	}
	if *nodeURL == "" && *tenant == "" {
		if *tenant, err = tenantOf(ctx, rc, name); err != nil {
			return err
		}
	}
	if sub == "show" {
		list, err := rc.list(ctx, *tenant)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(list, func(st succession.RoleState) bool { return st.Name == name })
		if i < 0 {
			return withHint(fmt.Errorf("no role %q", name), "'sios role list' lists them")
		}
		if *asJSON {
			return printJSON(e.stdout, list[i])
		}
		showRole(e.stdout, list[i])
		return nil
	}
	var letter []byte
	switch sub {
	case "remove":
		if *reason == "" {
			return usageError("role remove needs --reason")
		}
	case "letter-deposit":
		if letter, err = files.ReadFileCapped(rest[1], succession.MaxLetterPlaintext, "MaxLetterPlaintext"); err != nil {
			return err
		}
	}
	res, err := rc.act(ctx, *tenant, name, sub, *as, *reason, letter)
	if err != nil {
		return err
	}
	if sub == "letter-open" {
		if *out != "" {
			if err := files.WriteNew(*out, res.Letter, 0o600); err != nil {
				return err
			}
		} else if !*asJSON {
			_, err := e.stdout.Write(res.Letter)
			return err
		}
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	done := map[string]string{"checkin": "checked in", "refute": "refuted", "accept": "accepted", "remove": "removal signed",
		"letter-deposit": "letter sealed", "letter-open": "letter opened"}[sub]
	what := ""
	switch {
	case sub == "checkin" && !res.Published:
		what = " (the fleet already knew; no presence was due)"
	case res.Event != "":
		what = " (" + res.Event + ")"
	}
	fmt.Fprintf(e.stdout, "%s%s: role %s is %s%s\n", done, what, name, res.State.State, holderNote(res.State))
	return printRoleReceipt(e, res.Receipt)
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func holderNote(st succession.RoleState) string {
	switch {
	case st.Holder != "" && st.State == succession.StateHandedOver:
		return ", held by " + st.Holder + " through " + st.HolderNode
	case st.Holder != "":
		return " (holder " + st.Holder + ")"
	case st.Offer != nil:
		return fmt.Sprintf(", offered to %s until %s", st.Offer.Successor, succession.FormatTime(st.Offer.Until))
	case st.Exhausted:
		return ", offered to nobody: no successor accepted in time"
	}
	return ""
}

func printRoleReceipt(e *env, rc *oar.Receipt) error {
	if rc != nil {
		fmt.Fprintf(e.stdout, "receipt: record %d, hash %s\n", rc.Index, rc.RecordHash)
	}
	return nil
}

func showRole(w io.Writer, st succession.RoleState) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "role:\t%s (tenant %s)\n", st.Name, st.Tenant)
	fmt.Fprintf(tw, "charter:\t%s (seq %d)\n", st.Charter, st.Seq)
	fmt.Fprintf(tw, "state:\t%s%s\n", st.State, holderNote(st))
	if st.Former != "" {
		fmt.Fprintf(tw, "former holder:\t%s (%s, effective %s, certificate %s)\n", st.Former, st.Basis, succession.FormatTime(st.EffectiveAt), st.CertificateHash)
	} else {
		fmt.Fprintf(tw, "holder:\t%s\n", st.Holder)
	}
	fmt.Fprintf(tw, "successors:\t%s\n", strings.Join(st.Successors, ", "))
	fmt.Fprintf(tw, "observers:\t%s (k=%d)\n", strings.Join(st.Observers, ", "), st.K)
	fmt.Fprintf(tw, "last presence:\t%s\n", succession.FormatTime(st.LastPresence))
	if st.State == succession.StatePending {
		fmt.Fprintf(tw, "handover:\tat %s unless the holder is seen or refutes\n", succession.FormatTime(st.EffectiveAt))
	}
	for _, s := range st.Suspicions {
		fmt.Fprintf(tw, "suspicion:\t%s at %s (no presence since %s)\n", s.Observer, succession.FormatTime(s.Time), succession.FormatTime(s.Since))
	}
	for _, r := range st.Removals {
		fmt.Fprintf(tw, "removal:\t%s at %s through %s: %s\n", r.Admin, succession.FormatTime(r.Time), r.Node, r.Reason)
	}
	tw.Flush()
	fmt.Fprintln(w, "history:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range st.History {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", succession.FormatTime(h.Time), h.Action, orNone(h.Principal), orNone(h.Node))
	}
	tw.Flush()
	if len(st.Rejected) > 0 {
		fmt.Fprintln(w, "not counted:")
		for _, r := range st.Rejected {
			fmt.Fprintf(w, "  %s %s from %s: %s\n", r.Kind, r.Event, orNone(r.Node), r.Reason)
		}
	}
}

// parseSeconds reads a duration (30s, 15m, 72h, 30d) in whole seconds.
func parseSeconds(s string) (uint64, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (30s, 15m, 72h, 30d)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration (30s, 15m, 72h, 30d)", s)
		}
	}
	if d < time.Second || d%time.Second != 0 || d > succession.MaxDuration*time.Second {
		return 0, fmt.Errorf("%q must be whole seconds from 1s to %dd (MaxDuration)", s, succession.MaxDuration/86400)
	}
	return uint64(d / time.Second), nil
}

// tenantOf finds the tenant of the role name, when one tenant alone has it.
func tenantOf(ctx context.Context, rc roleClient, name string) (string, error) {
	list, err := rc.list(ctx, "")
	if err != nil {
		return "", err
	}
	var tenants []string
	for _, st := range list {
		if st.Name == name {
			tenants = append(tenants, st.Tenant)
		}
	}
	switch len(tenants) {
	case 0:
		return "", withHint(fmt.Errorf("no role %q", name), "'sios role list' lists them")
	case 1:
		return tenants[0], nil
	}
	return "", usageError("role %q exists in tenants %s: name one with --tenant", name, strings.Join(tenants, ", "))
}

// roleClient is the node a role command acts through: a node's API with a principal's
// key, or the running node's admin socket as its operator.
func (e *env) roleClient(nodeURL, apiKey, as, sub string) (roleClient, error) {
	if nodeURL != "" {
		if as != "" {
			return nil, usageError("--as is for the operator; a principal acts as itself (--node, --api-key)")
		}
		c, err := newAPIClient(nodeURL, apiKey, "role "+strings.Replace(sub, "-", " ", 1))
		if err != nil {
			return nil, err
		}
		return &apiRoles{c}, nil
	}
	c := admin.Dial(e.dataDir)
	if c == nil {
		return nil, withHint(fmt.Errorf("no node is running on %s", e.dataDir), "start it with 'sios up', or act through a node's API with --node URL --api-key K")
	}
	if as == "" && sub != "list" && sub != "show" && sub != "define" {
		return nil, usageError("role %s through the admin socket needs --as ID: the principal the act is for", strings.Replace(sub, "-", " ", 1))
	}
	return adminRoles{c}, nil
}

// adminRoles acts through the running node's admin socket.
type adminRoles struct{ c *admin.Client }

func (a adminRoles) list(ctx context.Context, tenant string) ([]succession.RoleState, error) {
	var list []succession.RoleState
	if err := a.c.Do(ctx, "GET", "/admin/roles", nil, &list); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list, func(st succession.RoleState) bool { return tenant != "" && st.Tenant != tenant }), nil
}

func (a adminRoles) define(ctx context.Context, spec roles.Spec, as string) (*actResult, error) {
	var out actResult
	return &out, a.c.Do(ctx, "POST", "/admin/roles", admin.RoleDefineRequest{Spec: spec, As: as}, &out)
}

func (a adminRoles) act(ctx context.Context, tenant, name, act, as, reason string, letter []byte) (*actResult, error) {
	var out actResult
	return &out, a.c.Do(ctx, "POST", "/admin/roles/act", admin.RoleActRequest{Tenant: tenant, Name: name, Act: act, As: as, Reason: reason, Letter: letter}, &out)
}

// apiRoles acts as a principal through a node's API.
type apiRoles struct{ c *apiClient }

func (a *apiRoles) list(ctx context.Context, _ string) ([]succession.RoleState, error) {
	var out struct {
		Data []succession.RoleState `json:"data"`
	}
	return out.Data, a.c.do(ctx, "GET", "/v1/roles", nil, &out)
}

func (a *apiRoles) define(ctx context.Context, spec roles.Spec, _ string) (*actResult, error) {
	var out actResult
	return &out, a.c.do(ctx, "POST", "/v1/roles", api.RoleDefineRequest{Spec: spec}, &out)
}

func (a *apiRoles) act(ctx context.Context, _, name, act, _, reason string, letter []byte) (*actResult, error) {
	path := "/v1/roles/" + url.PathEscape(name) + "/" + act
	var body any
	switch act {
	case "refute", "remove":
		body = api.RoleReasonRequest{Reason: reason}
	case "letter-deposit":
		path, body = "/v1/roles/"+url.PathEscape(name)+"/letter", api.RoleLetterRequest{Letter: letter}
	case "letter-open":
		path = "/v1/roles/" + url.PathEscape(name) + "/letter/open"
	}
	var out actResult
	return &out, a.c.do(ctx, "POST", path, body, &out)
}

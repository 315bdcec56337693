package sso

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/policy"
)

// Issuer is one identity provider whose tokens the node accepts: one entry of the
// "oidc" list in the node's config.json.
type Issuer struct {
	// Name is a short name for the issuer (lower-case letters, digits, '-'). It
	// qualifies the principal ids of its users ("oidc:NAME:SUBJECT"), names the key
	// cache file and appears in the audit record.
	Name string `json:"name"`
	// Issuer is the issuer URL exactly as the tokens' "iss" claim spells it. It must
	// be https, except on a loopback host.
	Issuer string `json:"issuer"`
	// Audience lists the audiences accepted (a string or a list): a token is accepted
	// only if its "aud" names one of them.
	Audience Strings `json:"audience"`
	// Algorithms is the signature algorithm allowlist (default ["RS256"]). Only
	// asymmetric algorithms may be listed: RS256/384/512, PS256/384/512,
	// ES256/384/512, EdDSA.
	Algorithms []string `json:"algorithms,omitempty"`
	// JWKSURI, when set, is where the issuer's keys are fetched instead of the
	// discovered jwks_uri; the discovered one must be on the issuer's own origin
	// (scheme, host and port).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Refresh is how often the keys are fetched again, a Go duration (default "1h",
	// at least "1m", at most "168h").
	Refresh string `json:"refresh,omitempty"`
	// Claims maps a verified token's claims to a tenant, a clearance and roles.
	Claims Claims `json:"claims"`
	// Console, when set, lets the issuer's users sign in to the node's web console
	// (the authorization code flow with PKCE; console.go, docs/console.md).
	Console *ConsoleClient `json:"console,omitempty"`
}

// Claims is the mapping from a token's claims to what the node grants.
type Claims struct {
	// Principal is the claim holding the user's id at the issuer (default "sub").
	Principal string `json:"principal,omitempty"`
	// Tenant gives the tenant of a user whose matching rule names none.
	Tenant *TenantSource `json:"tenant,omitempty"`
	// Rules are tried in order; the first whose "when" holds decides. A user no rule
	// matches is refused.
	Rules []Rule `json:"rules"`
}

// TenantSource is either a fixed tenant (Value) or a claim (Claim) whose single
// string value names the tenant, optionally translated by Values.
type TenantSource struct {
	Value string `json:"value,omitempty"`
	Claim string `json:"claim,omitempty"`
	// Values maps the claim's value to a tenant; when set, a value not listed is
	// refused (an unmapped user).
	Values map[string]string `json:"values,omitempty"`
}

// Rule grants a tenant, a clearance and roles to the users whose claims satisfy When.
type Rule struct {
	// When maps a claim path to the values it must hold: the claim (a string, or a
	// list of strings) must contain at least one of them. Every listed claim must
	// hold; {} matches every user of the issuer.
	When map[string]Strings `json:"when"`
	// Tenant, when set, is the tenant granted; otherwise claims.tenant gives it.
	Tenant string `json:"tenant,omitempty"`
	// Clearance is the classification granted, e.g. "OFFICIAL-SENSITIVE".
	Clearance string `json:"clearance"`
	// Roles are the roles granted; none is allowed.
	Roles []string `json:"roles,omitempty"`
}

// Strings is a JSON string or a list of strings.
type Strings []string

// UnmarshalJSON accepts "x" or ["x", …]; null is no value.
func (s *Strings) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*s = many
	return nil
}

// UnmarshalJSON decodes one issuer strictly: an unknown field anywhere in it (a
// misspelt "clearence") is an error rather than a silently ignored rule part, however
// the enclosing document is decoded.
func (i *Issuer) UnmarshalJSON(b []byte) error {
	type plain Issuer
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p plain
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*i = Issuer(p)
	return nil
}

// ParseConfig decodes and checks the "oidc" section of config.json: a JSON list of
// issuers. Errors name the entry and the field.
func ParseConfig(b []byte) ([]Issuer, error) {
	if len(b) > MaxConfigBytes {
		return nil, fmt.Errorf("config oidc: %d bytes, more than %d (MaxConfigBytes)", len(b), MaxConfigBytes)
	}
	var list []Issuer
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("config oidc: %v", err)
	}
	if dec.More() {
		return nil, errors.New("config oidc: trailing data after the list")
	}
	if err := CheckConfig(list); err != nil {
		return nil, err
	}
	return list, nil
}

// CheckConfig checks a decoded "oidc" section: every field of every issuer, and that
// names and issuer URLs are unique. Errors read "config oidc[I] (NAME).FIELD: …".
func CheckConfig(list []Issuer) error {
	_, err := compileAll(list)
	return err
}

// EgressRules gives the destinations the egress guard must allow for these issuers:
// each issuer URL's host and port, and each jwks_uri's where one is set. Nothing else
// is ever fetched.
func EgressRules(list []Issuer) ([]egress.Rule, error) {
	var rules []egress.Rule
	for i, is := range list {
		for _, raw := range []string{is.Issuer, is.JWKSURI} {
			if raw == "" {
				continue
			}
			u, err := url.Parse(raw)
			if err != nil {
				return nil, fmt.Errorf("config oidc[%d]: %q is not a URL", i, raw)
			}
			r := egress.Rule{Host: u.Hostname(), Port: defaultPort(u)}
			if !slices.Contains(rules, r) {
				rules = append(rules, r)
			}
		}
	}
	return rules, nil
}

// issuer is an Issuer checked and compiled for use.
type issuer struct {
	name       string
	url        string
	audience   []string
	algorithms []string
	jwksURI    string // "" unless configured
	refresh    time.Duration
	principal  claimPath
	tenant     *tenantSource
	rules      []rule
}

type tenantSource struct {
	value  string
	claim  claimPath
	values map[string]string
}

type rule struct {
	when      []condition // sorted by path, for a stable order
	tenant    string
	clearance policy.Level
	roles     []string
}

type condition struct {
	path   claimPath
	values []string
}

var (
	namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	// idPattern is the syntax of tenants and roles, the same as package policy
	// enforces for principals it stores.
	idPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$`)
)

// supportedAlgorithms are the asymmetric JWS algorithms go-oidc verifies. HS256 and
// "none" are never accepted: a shared secret cannot come from a public key set.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func compileAll(list []Issuer) ([]*issuer, error) {
	if len(list) > MaxIssuers {
		return nil, fmt.Errorf("config oidc: %d issuers, more than %d (MaxIssuers)", len(list), MaxIssuers)
	}
	out := make([]*issuer, 0, len(list))
	names, urls := map[string]int{}, map[string]int{}
	for i, is := range list {
		c, err := compile(is)
		if err != nil {
			return nil, fmt.Errorf("config oidc[%d]%s.%v", i, nameSuffix(is.Name), err)
		}
		if j, dup := names[c.name]; dup {
			return nil, fmt.Errorf("config oidc[%d] (%s).name: also the name of oidc[%d]", i, c.name, j)
		}
		if j, dup := urls[c.url]; dup {
			return nil, fmt.Errorf("config oidc[%d] (%s).issuer: %q is also the issuer of oidc[%d]; list its audiences in one entry", i, c.name, c.url, j)
		}
		names[c.name], urls[c.url] = i, i
		out = append(out, c)
	}
	return out, nil
}

func nameSuffix(name string) string {
	if namePattern.MatchString(name) {
		return " (" + name + ")"
	}
	return ""
}

// compile checks one issuer. Its errors start with the field path ("issuer: …"),
// which compileAll prefixes with the entry.
func compile(is Issuer) (*issuer, error) {
	if !namePattern.MatchString(is.Name) {
		return nil, fmt.Errorf("name: %q must be 1–63 lower-case letters, digits or '-', starting with a letter or digit", is.Name)
	}
	if err := checkURL(is.Issuer); err != nil {
		return nil, fmt.Errorf("issuer: %v", err)
	}
	c := &issuer{name: is.Name, url: is.Issuer, refresh: DefaultRefresh}
	if is.JWKSURI != "" {
		if err := checkURL(is.JWKSURI); err != nil {
			return nil, fmt.Errorf("jwks_uri: %v", err)
		}
		c.jwksURI = is.JWKSURI
	}
	if len(is.Audience) == 0 {
		return nil, errors.New(`audience: missing; name the audience the tokens carry in "aud" (the client id for ID tokens, the API's identifier for access tokens)`)
	}
	if len(is.Audience) > MaxRuleValues {
		return nil, fmt.Errorf("audience: %d entries, more than %d (MaxRuleValues)", len(is.Audience), MaxRuleValues)
	}
	for _, a := range is.Audience {
		if a == "" || len(a) > MaxURLBytes {
			return nil, fmt.Errorf("audience: %q must be 1–%d bytes", a, MaxURLBytes)
		}
	}
	c.audience = slices.Clone(is.Audience)
	c.algorithms = []string{"RS256"}
	if len(is.Algorithms) > 0 {
		if len(is.Algorithms) > len(supportedAlgorithms) {
			return nil, fmt.Errorf("algorithms: %d entries; there are only %d algorithms", len(is.Algorithms), len(supportedAlgorithms))
		}
		for _, a := range is.Algorithms {
			if !slices.Contains(supportedAlgorithms, a) {
				return nil, fmt.Errorf("algorithms: %q is not accepted; want some of %s", a, strings.Join(supportedAlgorithms, ", "))
			}
		}
		c.algorithms = slices.Clone(is.Algorithms)
	}
	if is.Refresh != "" {
		d, err := time.ParseDuration(is.Refresh)
		if err != nil || d < MinRefresh || d > MaxRefresh {
			return nil, fmt.Errorf("refresh: %q is not a duration from %v (MinRefresh) to %v (MaxRefresh)", is.Refresh, MinRefresh, MaxRefresh)
		}
		c.refresh = d
	}
	if err := compileClaims(c, is.Claims); err != nil {
		return nil, fmt.Errorf("claims.%v", err)
	}
	if is.Console != nil {
		if err := checkConsole(is.Console, c.audience); err != nil {
			return nil, fmt.Errorf("console.%v", err)
		}
	}
	return c, nil
}

func compileClaims(c *issuer, cl Claims) error {
	p := cl.Principal
	if p == "" {
		p = "sub"
	}
	path, err := parseClaimPath(p)
	if err != nil {
		return fmt.Errorf("principal: %v", err)
	}
	c.principal = path
	if t := cl.Tenant; t != nil {
		ts, err := compileTenant(*t)
		if err != nil {
			return fmt.Errorf("tenant.%v", err)
		}
		c.tenant = ts
	}
	if len(cl.Rules) == 0 {
		return errors.New("rules: missing; without a rule no user is admitted")
	}
	if len(cl.Rules) > MaxRules {
		return fmt.Errorf("rules: %d rules, more than %d (MaxRules)", len(cl.Rules), MaxRules)
	}
	for i, r := range cl.Rules {
		cr, err := compileRule(r, c.tenant != nil)
		if err != nil {
			return fmt.Errorf("rules[%d].%v", i, err)
		}
		c.rules = append(c.rules, cr)
	}
	return nil
}

func compileTenant(t TenantSource) (*tenantSource, error) {
	switch {
	case t.Value != "" && t.Claim != "":
		return nil, errors.New(`value: set either "value" (a fixed tenant) or "claim", not both`)
	case t.Value != "":
		if !idPattern.MatchString(t.Value) {
			return nil, fmt.Errorf("value: tenant %q must be 1–128 letters, digits, '.', '_', '@' or '-'", t.Value)
		}
		if len(t.Values) > 0 {
			return nil, errors.New(`values: only with "claim"`)
		}
		return &tenantSource{value: t.Value}, nil
	case t.Claim != "":
		path, err := parseClaimPath(t.Claim)
		if err != nil {
			return nil, fmt.Errorf("claim: %v", err)
		}
		if len(t.Values) > MaxTenantValues {
			return nil, fmt.Errorf("values: %d entries, more than %d (MaxTenantValues)", len(t.Values), MaxTenantValues)
		}
		for k, v := range t.Values {
			if !idPattern.MatchString(v) {
				return nil, fmt.Errorf("values[%q]: tenant %q must be 1–128 letters, digits, '.', '_', '@' or '-'", k, v)
			}
		}
		var values map[string]string
		if len(t.Values) > 0 {
			values = maps.Clone(t.Values)
		}
		return &tenantSource{claim: path, values: values}, nil
	default:
		return nil, errors.New(`value: set "value" (a fixed tenant) or "claim" (the claim naming the tenant)`)
	}
}

func compileRule(r Rule, haveTenantSource bool) (rule, error) {
	if r.When == nil {
		return rule{}, errors.New("when: missing; write {} to match every user of this issuer")
	}
	if len(r.When) > MaxConditions {
		return rule{}, fmt.Errorf("when: %d claims, more than %d (MaxConditions)", len(r.When), MaxConditions)
	}
	var out rule
	for _, p := range slices.Sorted(maps.Keys(r.When)) {
		vals := r.When[p]
		path, err := parseClaimPath(p)
		if err != nil {
			return rule{}, fmt.Errorf("when[%q]: %v", p, err)
		}
		if len(vals) == 0 {
			return rule{}, fmt.Errorf("when[%q]: no values; list at least one", p)
		}
		if len(vals) > MaxRuleValues {
			return rule{}, fmt.Errorf("when[%q]: %d values, more than %d (MaxRuleValues)", p, len(vals), MaxRuleValues)
		}
		out.when = append(out.when, condition{path: path, values: slices.Clone(vals)})
	}
	switch {
	case r.Tenant != "":
		if !idPattern.MatchString(r.Tenant) {
			return rule{}, fmt.Errorf("tenant: %q must be 1–128 letters, digits, '.', '_', '@' or '-'", r.Tenant)
		}
		out.tenant = r.Tenant
	case !haveTenantSource:
		return rule{}, errors.New(`tenant: missing; name the tenant here or set claims.tenant`)
	}
	if r.Clearance == "" {
		return rule{}, errors.New("clearance: missing; name the classification this rule grants, e.g. OFFICIAL")
	}
	lvl, err := policy.ParseLevel(r.Clearance)
	if err != nil {
		return rule{}, fmt.Errorf("clearance: %v", err)
	}
	out.clearance = lvl
	if len(r.Roles) > MaxRoles {
		return rule{}, fmt.Errorf("roles: %d roles, more than %d (MaxRoles)", len(r.Roles), MaxRoles)
	}
	for _, role := range r.Roles {
		if !idPattern.MatchString(role) {
			return rule{}, fmt.Errorf("roles: %q must be 1–128 letters, digits, '.', '_', '@' or '-'", role)
		}
		if !slices.Contains(out.roles, role) {
			out.roles = append(out.roles, role)
		}
	}
	return out, nil
}

// checkURL accepts an absolute https URL without user info, query or fragment; http
// only on a loopback host (a provider on the same machine).
func checkURL(raw string) error {
	if raw == "" {
		return errors.New("missing")
	}
	if len(raw) > MaxURLBytes {
		return fmt.Errorf("%d bytes, more than %d (MaxURLBytes)", len(raw), MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%q must not carry user info, a query or a fragment", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return fmt.Errorf("%q is http; only https is accepted, except on a loopback host", raw)
		}
	default:
		return fmt.Errorf("%q must be an https URL", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q has port %q, not 1–65535", raw, p)
		}
	}
	if _, err := egressRuleFor(u); err != nil {
		return fmt.Errorf("%q: %v", raw, err)
	}
	return nil
}

func egressRuleFor(u *url.URL) (egress.Rule, error) {
	r := egress.Rule{Host: u.Hostname(), Port: defaultPort(u)}
	// New with the rule checks its syntax exactly as the node's guard will.
	if _, err := egress.New([]egress.Rule{r}, nil); err != nil {
		return egress.Rule{}, err
	}
	return r, nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

func defaultPort(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}

// sameOrigin reports whether a and b share scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && strings.EqualFold(a.Hostname(), b.Hostname()) && defaultPort(a) == defaultPort(b)
}

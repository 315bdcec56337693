package sso

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/policy"
)

// PrincipalPrefix starts the id of every principal signed in through an issuer:
// "oidc:NAME:SUBJECT". Principals stored by the node never contain ':' (their ids are
// letters, digits and ".", "_", "@", "-"), so an issuer's user can never take the id
// of a local principal, nor of another issuer's user.
const PrincipalPrefix = "oidc:"

// PrincipalID gives the principal id of subject at the issuer named name.
func PrincipalID(name, subject string) string {
	return PrincipalPrefix + name + ":" + subject
}

// mapping is what the rules grant a user.
type mapping struct {
	subject   string
	rule      int
	tenant    string
	clearance policy.Level
	roles     []string
}

// mapClaims applies the issuer's rules to verified claims. The first rule whose
// conditions all hold decides tenant, clearance and roles; later rules are not
// consulted. No matching rule, a missing principal claim or an unusable tenant is an
// *UnmappedError.
func (is *issuer) mapClaims(claims map[string]any) (mapping, error) {
	subject, err := stringClaim(claims, is.principal)
	if err != nil {
		return mapping{}, &UnmappedError{Issuer: is.name, Reason: err.Error()}
	}
	if err := checkSubject(subject); err != nil {
		return mapping{}, &UnmappedError{Issuer: is.name, Reason: fmt.Sprintf("the %s claim %v", is.principal, err)}
	}
	for i, r := range is.rules {
		if !r.matches(claims) {
			continue
		}
		m := mapping{subject: subject, rule: i, tenant: r.tenant, clearance: r.clearance, roles: slices.Clone(r.roles)}
		if m.tenant == "" {
			if m.tenant, err = is.tenant.resolve(claims); err != nil {
				return mapping{}, &UnmappedError{Issuer: is.name, Subject: subject, Reason: fmt.Sprintf("rule %d matched but %v", i, err)}
			}
		}
		return m, nil
	}
	return mapping{}, &UnmappedError{Issuer: is.name, Subject: subject, Reason: "no rule matched"}
}

func (r rule) matches(claims map[string]any) bool {
	for _, c := range r.when {
		v, ok := c.path.lookup(claims)
		if !ok {
			return false
		}
		if !slices.ContainsFunc(claimValues(v), func(s string) bool { return slices.Contains(c.values, s) }) {
			return false
		}
	}
	return true
}

// resolve gives the tenant a claim names (translated by values when set).
func (t *tenantSource) resolve(claims map[string]any) (string, error) {
	if t == nil {
		// compile refuses a rule without a tenant when there is no source.
		return "", fmt.Errorf("no tenant is configured")
	}
	if t.value != "" {
		return t.value, nil
	}
	v, err := stringClaim(claims, t.claim)
	if err != nil {
		return "", err
	}
	if t.values != nil {
		tenant, ok := t.values[v]
		if !ok {
			return "", fmt.Errorf("the %s claim %q is not listed in claims.tenant.values", t.claim, clip(v))
		}
		return tenant, nil
	}
	if !idPattern.MatchString(v) {
		return "", fmt.Errorf("the %s claim %q is not a tenant name (1–128 letters, digits, '.', '_', '@' or '-')", t.claim, clip(v))
	}
	return v, nil
}

// checkSubject refuses principal claim values that could not be shown or audited
// faithfully: empty, too long, not UTF-8, or holding control or other invisible
// characters.
func checkSubject(s string) error {
	if s == "" {
		return fmt.Errorf("is empty")
	}
	if len(s) > MaxSubjectBytes {
		return fmt.Errorf("is %d bytes, more than %d (MaxSubjectBytes)", len(s), MaxSubjectBytes)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("is not UTF-8")
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("holds a space, control or invisible character")
	}
	return nil
}

// clip shortens a value from a token for an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	for i := max; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}

// Map applies the issuer's rules to a claims object (a token's payload as JSON)
// without checking any token: the same mapping Authenticate makes once a token is
// verified, for an operator trying rules against a sample of the issuer's claims. The
// Identity it returns has no Expires.
func (i Issuer) Map(claimsJSON []byte) (*Identity, error) {
	is, err := compile(i)
	if err != nil {
		return nil, fmt.Errorf("config oidc%s.%v", nameSuffix(i.Name), err)
	}
	if len(claimsJSON) > MaxTokenBytes {
		return nil, fmt.Errorf("claims of %d bytes, more than %d (MaxTokenBytes)", len(claimsJSON), MaxTokenBytes)
	}
	claims, err := decodeClaims(claimsJSON)
	if err != nil {
		return nil, err
	}
	m, err := is.mapClaims(claims)
	if err != nil {
		return nil, err
	}
	return is.identity(m, claims), nil
}

// identity builds the Identity for a mapping.
func (is *issuer) identity(m mapping, claims map[string]any) *Identity {
	return &Identity{
		Principal: policy.Principal{ID: PrincipalID(is.name, m.subject), Tenant: m.tenant, Clearance: m.clearance, Roles: m.roles},
		Issuer:    is.name,
		IssuerURL: is.url,
		Subject:   m.subject,
		Rule:      m.rule,
		TokenID:   tokenID(claims),
	}
}

package policy

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/cedar-policy/cedar-go/types"
)

// Actions, as named in policies: Sios::Action::"invoke" and so on. Only append to this
// list: audit records name actions.
const (
	ActionInvoke      = "invoke"       // a principal calls a brain
	ActionTool        = "tool"         // a brain calls a tool on a principal's behalf
	ActionMemoryRead  = "memory.read"  // read a tenant's memory
	ActionMemoryWrite = "memory.write" // write a tenant's memory
	ActionAdmin       = "admin"        // administer the node
	ActionPeerSend    = "peer.send"    // the node sends a principal's request to a peer node
	ActionAuditRead   = "audit.read"   // read an audit record's content (the audit explainer)
	// ActionConsentGrant: a principal makes a consent grant over its tenant's data
	// (docs/consent.md); the resource is the grant (a Consent), context.grant what it says.
	ActionConsentGrant = "consent.grant"
)

// Resource types, as named in policies: Sios::Brain and so on.
const (
	ResourceBrain  = "Brain"
	ResourceTool   = "Tool"
	ResourceMemory = "Memory"
	ResourcePeer   = "Peer"
	ResourceRecord = "Record" // an audit record: its tenant ("" for the node's own) and classification
	// ResourceConsent is a consent grant being made: the grantor's tenant and the
	// grant's maximum classification.
	ResourceConsent = "Consent"
	// ResourcePrincipal is a principal being administered (the console's principal
	// changes): its tenant, and its clearance as its classification.
	ResourcePrincipal = "Principal"
)

// Request is one question put to the engine: may Principal do Action to Resource in
// Context? It is plain data; Decide turns it into Cedar entities.
type Request struct {
	Principal Principal
	Action    string // one of the Action constants
	Resource  Resource
	Context   Context
}

// Principal is the person or service on whose behalf the request is made
// (Sios::Principal).
type Principal struct {
	ID        string
	Tenant    string
	Clearance Level
	Roles     []string
}

// Resource is what the action is done to.
type Resource struct {
	Type string // one of the Resource constants
	ID   string
	// Classification is the accreditation ceiling of a Brain, the classification of a
	// Memory or an audit Record, the accreditation of a Peer, the maximum of a Consent;
	// unused for a Tool.
	Classification Level
	Tenant         string // the tenant a Memory, Record or Consent belongs to ("" for the node's own records)
	Kind           string // a Brain's kind: "domain" or "operational"
	// A Peer's institution (the root id of its institution's certificate), how its
	// identity is attested ("software" or "tpm") and whether it belongs to this node's
	// own institution. The caller fills them from the fleet's verified view of the peer.
	Institution     string
	Attestation     string
	SameInstitution bool
	// Role is the role a Memory is filed under (its subject is "role:NAME"); "" for
	// none. RoleFacts are a Role's (policy/role.go).
	Role      string
	RoleFacts *RoleFacts
}

// Context is what is known about the request beyond its principal and resource.
type Context struct {
	Tenant              string // the tenant the request is made in
	DataClassification  Level  // classification of the data in the request
	TargetAccreditation Level  // accreditation of where the data would flow: a brain, backend or peer
	Consent             bool   // the originating tenant granted consent to cross-tenant flow
	ToolAllowed         bool   // the brain's allowlist allows the tool (ActionTool only)
	// Grant is the verified consent grant that covers the request, as
	// consent.Grant.CedarAttrs gives it, or nil: policies see it as context.grant, present
	// only when set. Values are string, int64, bool or []string. A grant implies Consent.
	// The caller verifies the grant first: policy decides on what it says.
	Grant map[string]any
}

// Decision is the engine's answer.
type Decision struct {
	Allow bool `json:"allow"`
	// Reasons are the @id values of the policies that determined the decision, sorted:
	// the forbids that fired on deny, the permits that matched on allow. They go into
	// the audit record's decision.policies.
	Reasons []string `json:"reasons,omitempty"`
	// Default is true when the request was denied because no permit matched and no
	// forbid fired; Reasons is then empty.
	Default bool `json:"default,omitempty"`
	// Errors are policies that could not be evaluated, and why, or why the request
	// itself was refused. A forbid that cannot be evaluated counts as fired.
	Errors []string `json:"errors,omitempty"`
}

// Effect returns "allow" or "deny", as audit records spell it.
func (d Decision) Effect() string {
	if d.Allow {
		return "allow"
	}
	return "deny"
}

// Cedar names. The namespace and attribute names are part of the policy language sios
// offers operators (docs/policy.md): only add to them.
const (
	typePrincipal types.EntityType = "Sios::Principal"
	typeAction    types.EntityType = "Sios::Action"
)

var resourceTypes = map[string]types.EntityType{
	ResourceBrain:   "Sios::Brain",
	ResourceTool:    "Sios::Tool",
	ResourceMemory:  "Sios::Memory",
	ResourcePeer:    "Sios::Peer",
	ResourceRecord:  "Sios::Record",
	ResourceConsent: "Sios::Consent",
	// A principal as the resource of an action: its id is "TENANT/ID", so that it is
	// never the acting principal's entity (whose id is ID).
	ResourcePrincipal: "Sios::Principal",
}

var actionUIDs = map[string]types.EntityUID{
	ActionInvoke:       types.NewEntityUID(typeAction, ActionInvoke),
	ActionTool:         types.NewEntityUID(typeAction, ActionTool),
	ActionMemoryRead:   types.NewEntityUID(typeAction, ActionMemoryRead),
	ActionMemoryWrite:  types.NewEntityUID(typeAction, ActionMemoryWrite),
	ActionAdmin:        types.NewEntityUID(typeAction, ActionAdmin),
	ActionPeerSend:     types.NewEntityUID(typeAction, ActionPeerSend),
	ActionAuditRead:    types.NewEntityUID(typeAction, ActionAuditRead),
	ActionConsentGrant: types.NewEntityUID(typeAction, ActionConsentGrant),
}

// check refuses requests that the default policies could misjudge: a zero Level or an
// empty tenant would compare as "lowest" or "same" and let data through.
func (r *Request) check() error {
	p, res, c := &r.Principal, &r.Resource, &r.Context
	switch {
	case p.ID == "":
		return fmt.Errorf("principal has no id")
	case p.Tenant == "":
		return fmt.Errorf("principal %q has no tenant", p.ID)
	case !p.Clearance.Valid():
		return fmt.Errorf("principal %q: clearance %v is not a classification", p.ID, p.Clearance)
	}
	if _, ok := actionUID(r.Action); !ok {
		return fmt.Errorf("unknown action %q", r.Action)
	}
	if _, ok := resourceType(res.Type); !ok {
		return fmt.Errorf("unknown resource type %q", res.Type)
	}
	if res.ID == "" {
		return fmt.Errorf("%s has no id", res.Type)
	}
	if err := checkRole(res); err != nil {
		return err
	}
	if res.Type != ResourceTool && res.Type != ResourceRole && !res.Classification.Valid() {
		return fmt.Errorf("%s %q: classification %v is not a classification", res.Type, res.ID, res.Classification)
	}
	if (res.Type == ResourceMemory || res.Type == ResourceConsent) && res.Tenant == "" {
		return fmt.Errorf("%s %q has no tenant", strings.ToLower(res.Type), res.ID)
	}
	if res.Type == ResourcePeer {
		switch {
		case res.Institution == "":
			return fmt.Errorf("peer %q has no institution", res.ID)
		case res.Attestation == "":
			return fmt.Errorf("peer %q has no attestation", res.ID)
		}
	}
	switch {
	case c.Tenant == "":
		return fmt.Errorf("context has no tenant")
	case !c.DataClassification.Valid():
		return fmt.Errorf("data classification %v is not a classification", c.DataClassification)
	case !c.TargetAccreditation.Valid():
		return fmt.Errorf("target accreditation %v is not a classification", c.TargetAccreditation)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Grant)) {
		if _, err := cedarValue(c.Grant[k]); err != nil {
			return fmt.Errorf("context.grant.%s: %v", k, err)
		}
	}
	return nil
}

// cedarValue converts one of a grant's attributes (consent.Grant.CedarAttrs) to Cedar.
func cedarValue(v any) (types.Value, error) {
	switch x := v.(type) {
	case string:
		return types.String(x), nil
	case int64:
		return types.Long(x), nil
	case bool:
		return types.Boolean(x), nil
	case []string:
		vs := make([]types.Value, len(x))
		for i, s := range x {
			vs[i] = types.String(s)
		}
		return types.NewSet(vs...), nil
	}
	return nil, fmt.Errorf("a %T has no Cedar type here (string, int64, bool or []string)", v)
}

// entities holds the two entities of one request. It is the whole entity store a
// decision sees: every attribute a policy may read travels in the Request, so nothing
// is looked up elsewhere and a decision depends on its Request alone.
type entities struct {
	principal, resource types.Entity
}

func (e *entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid {
	case e.principal.UID:
		return e.principal, true
	case e.resource.UID:
		return e.resource, true
	}
	return types.Entity{}, false
}

// principalKey holds what a principal's attributes are built from. Roles are encoded
// injectively (length-prefixed), so that no two role lists share a key.
type principalKey struct {
	tenant    string
	clearance Level
	roles     string
}

func newPrincipalKey(p *Principal) principalKey {
	k := principalKey{tenant: p.Tenant, clearance: p.Clearance}
	if len(p.Roles) > 0 {
		var b []byte
		for _, r := range p.Roles {
			b = binary.AppendUvarint(b, uint64(len(r)))
			b = append(b, r...)
		}
		k.roles = string(b)
	}
	return k
}

func (k principalKey) record() types.Record {
	var roles []types.Value
	for b := []byte(k.roles); len(b) > 0; {
		n, w := binary.Uvarint(b)
		roles = append(roles, types.String(b[w:w+int(n)]))
		b = b[w+int(n):]
	}
	return types.NewRecord(types.RecordMap{
		"tenant":    types.String(k.tenant),
		"clearance": types.Long(k.clearance),
		"roles":     types.NewSet(roles...),
	})
}

// resourceKey holds what a resource's attributes are built from; name is set for tools
// alone, whose name is their id. Every field a record reads must be in the key, or two
// resources would share a cached record.
type resourceKey struct {
	typ, name, tenant, kind  string
	institution, attestation string
	sameInstitution          bool
	classification           Level
}

func newResourceKey(r *Resource) resourceKey {
	switch r.Type {
	case ResourceBrain:
		return resourceKey{typ: r.Type, classification: r.Classification, kind: r.Kind}
	case ResourceTool:
		return resourceKey{typ: r.Type, name: r.ID}
	case ResourceMemory, ResourceRecord, ResourceConsent, ResourcePrincipal:
		return resourceKey{typ: r.Type, classification: r.Classification, tenant: r.Tenant}
	}
	return resourceKey{typ: r.Type, classification: r.Classification, // a Peer
		institution: r.Institution, attestation: r.Attestation, sameInstitution: r.SameInstitution}
}

func (k resourceKey) record() types.Record {
	switch k.typ {
	case ResourceBrain:
		return types.NewRecord(types.RecordMap{"classification": types.Long(k.classification), "kind": types.String(k.kind)})
	case ResourceTool:
		return types.NewRecord(types.RecordMap{"name": types.String(k.name)})
	case ResourceMemory, ResourceRecord, ResourceConsent, ResourcePrincipal:
		return types.NewRecord(types.RecordMap{"classification": types.Long(k.classification), "tenant": types.String(k.tenant)})
	}
	return types.NewRecord(types.RecordMap{ // a Peer
		"accreditation":    types.Long(k.classification),
		"institution":      types.String(k.institution),
		"attestation":      types.String(k.attestation),
		"same_institution": types.Boolean(k.sameInstitution),
	})
}

// contextKey is a Context without its grant; it builds the request's context record.
// Every field of Context but Grant must be here, or two contexts would share a cached
// record. A context with a grant is built without the cache (see records.context).
type contextKey struct {
	Tenant              string
	DataClassification  Level
	TargetAccreditation Level
	Consent             bool
	ToolAllowed         bool
}

// newContextKey is c's key; a context with a grant has consent.
func newContextKey(c *Context) contextKey {
	return contextKey{Tenant: c.Tenant, DataClassification: c.DataClassification, TargetAccreditation: c.TargetAccreditation,
		Consent: c.Consent || c.Grant != nil, ToolAllowed: c.ToolAllowed}
}

func (k contextKey) attrs() types.RecordMap {
	return types.RecordMap{
		"tenant":               types.String(k.Tenant),
		"data_classification":  types.Long(k.DataClassification),
		"target_accreditation": types.Long(k.TargetAccreditation),
		"consent":              types.Boolean(k.Consent),
		"tool_allowed":         types.Boolean(k.ToolAllowed),
	}
}

func (k contextKey) record() types.Record { return types.NewRecord(k.attrs()) }

// memo keeps values built from keys that hold everything the value is built from: the
// Cedar records of requests (building one, which cedar-go hashes and copies, was over
// half the cost of a decision) and the decisions themselves. Requests repeat the same
// few tenants, clearances and brains. The values are immutable, so one may serve many
// requests at once, and a memoized value is the one the request would have built, so
// nothing depends on what is memoized. When it holds MaxCachedRecords values it starts
// over: its size does not follow its input, and a flood of one-off requests cannot keep
// the usual ones out for good.
type memo[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V // guarded by mu
}

func (c *memo[K, V]) get(k K, build func(K) V) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = build(k)
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[K]V)
	}
	if len(c.m) >= MaxCachedRecords {
		clear(c.m)
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}

// records builds the Cedar records of requests, memoized.
type records struct {
	principals memo[principalKey, types.Record]
	resources  memo[resourceKey, types.Record]
	contexts   memo[contextKey, types.Record]
}

func (rc *records) principal(p *Principal) types.Entity {
	return types.Entity{
		UID:        types.NewEntityUID(typePrincipal, types.String(p.ID)),
		Attributes: rc.principals.get(newPrincipalKey(p), principalKey.record),
	}
}

func (rc *records) resource(r *Resource) types.Entity {
	typ, _ := resourceType(r.Type)
	e := types.Entity{UID: types.NewEntityUID(typ, types.String(r.ID))}
	switch {
	case r.Type == ResourceRole:
		e.Attributes = roleAttrs(r, types.Record{})
	case r.Role != "":
		e.Attributes = roleAttrs(r, rc.resources.get(newResourceKey(r), resourceKey.record))
	default:
		e.Attributes = rc.resources.get(newResourceKey(r), resourceKey.record)
	}
	return e
}

// context builds the request's context record: from the cache, or, with a grant, anew
// (grants are rare and each differs, so caching them would only evict the usual
// contexts), with the grant as context.grant and consent set.
func (rc *records) context(c *Context) types.Record {
	k := newContextKey(c)
	if c.Grant == nil {
		return rc.contexts.get(k, contextKey.record)
	}
	attrs := k.attrs()
	grant := make(types.RecordMap, len(c.Grant))
	for name, v := range c.Grant {
		grant[types.String(name)], _ = cedarValue(v) // checked by Request.check
	}
	attrs["grant"] = types.NewRecord(grant)
	return types.NewRecord(attrs)
}

// decisionKey is everything a decision reads, for a request without a grant that names
// no role (one with either is decided anew each time: grants differ, and a role's facts
// are a pointer): the action; the principal's id and the fields its record is built
// from; the resource's type, id and record fields; the context's record fields. The
// policies are the engine's, which never change. Equal keys give equal Cedar requests
// and entities (TestDecisionKeyHoldsWhatCedarReads), so a memoized decision is the one
// Cedar would give.
type decisionKey struct {
	action      string
	principalID string
	principal   principalKey
	resourceID  string
	resource    resourceKey
	context     contextKey
}

// newDecisionKey is req's decision key, or false if req is decided anew each time.
func newDecisionKey(req *Request) (decisionKey, bool) {
	c, r := &req.Context, &req.Resource
	if c.Grant != nil || r.Role != "" || r.RoleFacts != nil || r.Type == ResourceRole {
		return decisionKey{}, false
	}
	return decisionKey{
		action:      req.Action,
		principalID: req.Principal.ID,
		principal:   newPrincipalKey(&req.Principal),
		resourceID:  r.ID,
		resource:    newResourceKey(r),
		context:     newContextKey(c),
	}, true
}

package policy

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
)

// TestDecisionKeyHoldsWhatCedarReads: two requests with the same decision key give
// Cedar the same request and entities, so a memoized decision is the one Cedar would
// give. Every field of a request of each resource type is changed in turn (a string
// lengthened, a level raised, a flag flipped, a role added, a grant or role facts
// given); each change must either change the key, make the request one decided anew,
// or leave what Cedar reads as it was. A field added to Request that a record reads
// but the key does not hold fails here.
func TestDecisionKeyHoldsWhatCedarReads(t *testing.T) {
	var rc records
	type cedarInputs struct {
		action              types.EntityUID
		principal, resource types.Entity
		context             types.Record
	}
	inputs := func(r *Request) cedarInputs {
		a, _ := actionUID(r.Action)
		return cedarInputs{a, rc.principal(&r.Principal), rc.resource(&r.Resource), rc.context(&r.Context)}
	}
	same := func(a, b cedarInputs) bool {
		return a.action == b.action && a.principal.UID == b.principal.UID && a.resource.UID == b.resource.UID &&
			a.principal.Attributes.Equal(b.principal.Attributes) && a.resource.Attributes.Equal(b.resource.Attributes) &&
			a.context.Equal(b.context)
	}
	changed, kept, anew := 0, 0, 0
	for _, typ := range []string{ResourceBrain, ResourceTool, ResourceMemory, ResourcePeer, ResourceRecord, ResourceConsent, ResourcePrincipal} {
		base := Request{
			Principal: Principal{ID: "alice", Tenant: "north", Clearance: Official, Roles: []string{"clinician", "admin"}},
			Action:    ActionInvoke,
			Resource: Resource{Type: typ, ID: "r1", Classification: Secret, Tenant: "north", Kind: "domain",
				Institution: "inst-a", Attestation: "tpm", SameInstitution: true},
			Context: Context{Tenant: "north", DataClassification: Official, TargetAccreditation: Secret, Consent: true, ToolAllowed: true},
		}
		bk, ok := newDecisionKey(&base)
		if !ok {
			t.Fatalf("a %s request without grant or role is not memoized", typ)
		}
		for _, m := range mutations(reflect.ValueOf(base), "Request") {
			req := m.value.Interface().(Request)
			k, ok := newDecisionKey(&req)
			switch {
			case !ok:
				anew++
			case k != bk:
				changed++
			case !same(inputs(&req), inputs(&base)):
				t.Errorf("%s request: changing %s leaves the decision key as it was but changes what Cedar reads", typ, m.path)
			default:
				kept++
			}
		}
	}
	if changed == 0 || kept == 0 || anew == 0 {
		t.Fatalf("changes that changed the key %d, kept it (Cedar reading the same) %d, made the request decided anew %d: each should occur", changed, kept, anew)
	}
}

type mutation struct {
	path  string
	value reflect.Value // a changed copy of the whole request
}

// mutations returns, for each leaf field under v (a struct), a copy of v with that
// field changed.
func mutations(v reflect.Value, path string) []mutation {
	var out []mutation
	for i := range v.NumField() {
		f := v.Type().Field(i)
		fpath := path + "." + f.Name
		changedAt := func(at string, nv reflect.Value) {
			c := reflect.New(v.Type()).Elem()
			c.Set(v)
			c.Field(i).Set(nv)
			out = append(out, mutation{at, c})
		}
		changedTo := func(nv reflect.Value) { changedAt(fpath, nv) }
		fv := v.Field(i)
		switch fv.Kind() {
		case reflect.Struct:
			for _, m := range mutations(fv, fpath) {
				changedAt(m.path, m.value)
			}
		case reflect.String:
			changedTo(reflect.ValueOf(fv.String() + "x").Convert(fv.Type()))
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			nv := reflect.New(fv.Type()).Elem()
			nv.SetInt(fv.Int() + 1)
			changedTo(nv)
		case reflect.Bool:
			changedTo(reflect.ValueOf(!fv.Bool()))
		case reflect.Slice:
			changedTo(reflect.Append(fv, reflect.ValueOf("x").Convert(fv.Type().Elem())))
		case reflect.Pointer:
			changedTo(reflect.New(fv.Type().Elem()))
		case reflect.Map:
			nv := reflect.MakeMap(fv.Type())
			nv.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf(any("v")))
			changedTo(nv)
		default:
			panic(fmt.Sprintf("mutations: %s is a %s; teach the test to change it", fpath, fv.Kind()))
		}
	}
	return out
}

// TestDecideMemoizedIsDecideAnew: Decide with its memo (twice, the second from it)
// answers as the evaluation without it does, for every request the other policy tests
// make, and a caller appending to a memoized decision's reasons does not change the
// next one.
func TestDecideMemoizedIsDecideAnew(t *testing.T) {
	e, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	memoized := 0
	for i, req := range everyActionRequests() {
		if _, ok := newDecisionKey(&req); ok {
			memoized++
		}
		want, _ := e.decide(&req, false)
		for range 2 {
			if got := e.Decide(req); !reflect.DeepEqual(normal(got), normal(want)) {
				t.Fatalf("request %d (%+v): memoized %+v, anew %+v", i, req, got, want)
			}
		}
		if d := e.Decide(req); len(d.Reasons) > 0 {
			_ = append(d.Reasons, "appended")
			if again := e.Decide(req); !reflect.DeepEqual(normal(again), normal(want)) {
				t.Fatalf("request %d: after a caller appended to the reasons: %+v", i, again)
			}
		}
	}
	if memoized < 1000 {
		t.Fatalf("only %d requests were memoized", memoized)
	}
}

// normal makes empty and nil slices alike for comparison.
func normal(d Decision) Decision {
	if len(d.Reasons) == 0 {
		d.Reasons = nil
	}
	if len(d.Errors) == 0 {
		d.Errors = nil
	}
	return d
}

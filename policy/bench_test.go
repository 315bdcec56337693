package policy

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
)

// benchFleet is 10,000 principals in 20 tenants and 50 brains, and a mix of requests
// over them: most are allowed, some read up, flow down or cross tenants.
func benchFleet() (principals []Principal, brains []Resource, reqs []Request) {
	roles := [][]string{{"clinician"}, {"analyst", "reviewer"}, {"admin"}, nil}
	for i := range 10_000 {
		principals = append(principals, Principal{
			ID:        fmt.Sprintf("user-%05d", i),
			Tenant:    fmt.Sprintf("tenant-%02d", i%20),
			Clearance: Level(1 + i%4),
			Roles:     roles[i%len(roles)],
		})
	}
	for i := range 50 {
		kind := "domain"
		if i%2 == 1 {
			kind = "operational"
		}
		brains = append(brains, Resource{Type: ResourceBrain, ID: fmt.Sprintf("brain-%02d", i), Classification: Level(1 + i%4), Kind: kind})
	}
	for i := range 4096 {
		p := principals[(i*7919)%len(principals)]
		b := brains[(i*31)%len(brains)]
		tenant := p.Tenant
		if i%16 == 0 {
			tenant = "tenant-99"
		}
		reqs = append(reqs, Request{
			Principal: p,
			Action:    ActionInvoke,
			Resource:  b,
			Context:   Context{Tenant: tenant, DataClassification: Level(1 + i%4), TargetAccreditation: b.Classification},
		})
	}
	return principals, brains, reqs
}

// reportLatency records per-call durations and reports the median and 99th percentile.
func reportLatency(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkDecide is the design: each request carries its principal and resource, and
// Decide builds the two entities it needs.
func BenchmarkDecide(b *testing.B) {
	e, err := Load(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	_, _, reqs := benchFleet()
	d := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		e.Decide(reqs[i%len(reqs)])
		d[i] = time.Since(t0)
	}
	b.StopTimer()
	reportLatency(b, d)
}

// BenchmarkDecidePreloaded is the alternative: all 10,050 entities built once into a
// cedar EntityMap, looked up by id; the context record comes from the same memo.
func BenchmarkDecidePreloaded(b *testing.B) {
	e, err := Load(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	principals, brains, reqs := benchFleet()
	store := make(types.EntityMap, len(principals)+len(brains))
	for i := range principals {
		p := &principals[i]
		uid := types.NewEntityUID(typePrincipal, types.String(p.ID))
		store[uid] = types.Entity{UID: uid, Attributes: newPrincipalKey(p).record()}
	}
	for i := range brains {
		r := &brains[i]
		uid := types.NewEntityUID(resourceTypes[r.Type], types.String(r.ID))
		store[uid] = types.Entity{UID: uid, Attributes: newResourceKey(r).record()}
	}
	d := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := &reqs[i%len(reqs)]
		t0 := time.Now()
		e.authorize(e.set, store, cedar.Request{
			Principal: types.NewEntityUID(typePrincipal, types.String(r.Principal.ID)),
			Action:    actionUIDs[r.Action],
			Resource:  types.NewEntityUID(resourceTypes[r.Resource.Type], types.String(r.Resource.ID)),
			Context:   e.records.context(&r.Context),
		})
		d[i] = time.Since(t0)
	}
	b.StopTimer()
	reportLatency(b, d)
}

// BenchmarkDecideParallel is Decide from every core at once.
func BenchmarkDecideParallel(b *testing.B) {
	e, err := Load(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	_, _, reqs := benchFleet()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			e.Decide(reqs[i%len(reqs)])
			i++
		}
	})
}

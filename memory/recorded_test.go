package memory

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sios-project/sios/policy"
)

func freshStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A write or a forget whose record cannot be written changes nothing.
func TestRecordFailureChangesNothing(t *testing.T) {
	ctx := context.Background()
	s := freshStore(t)
	boom := errors.New("ledger unavailable")
	if _, err := s.AddRecorded(ctx, NewMemory{Tenant: "t", Subject: "p", Classification: policy.Official, Text: "kept out"},
		func(*Memory, Ref) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.Export(ctx, "t", "p"); !errors.Is(err, ErrUnknownSubject) {
		t.Fatalf("the memory was stored without its record: %v", err)
	}
	if _, err := s.Add(ctx, NewMemory{Tenant: "t", Subject: "p", Classification: policy.Official, Text: "present"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ForgetRecorded(ctx, "t", "p", policy.TopSecret, func(*Forgotten, Ref) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if ex, err := s.Export(ctx, "t", "p"); err != nil || len(ex.Memories) != 1 {
		t.Fatalf("the subject was forgotten without its record: %v", err)
	}
}

func TestForgetUpToAClassification(t *testing.T) {
	ctx := context.Background()
	s := freshStore(t)
	for _, m := range []NewMemory{
		{Tenant: "t", Subject: "p", Classification: policy.Official, Text: "visible"},
		{Tenant: "t", Subject: "p", Classification: policy.Secret, Text: "above"},
		{Tenant: "t", Subject: "q", Classification: policy.Secret, Text: "only above"},
	} {
		if _, err := s.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// An OFFICIAL caller forgets what it can see; the SECRET memory and the key stay.
	f, err := s.ForgetRecorded(ctx, "t", "p", policy.Official, nil)
	if err != nil || len(f.IDs) != 1 || f.KeyDestroyed {
		t.Fatalf("%+v %v", f, err)
	}
	ex, err := s.Export(ctx, "t", "p")
	if err != nil || len(ex.Memories) != 1 || ex.Memories[0].Text != "above" {
		t.Fatalf("%+v %v", ex, err)
	}
	// A subject holding only what the caller may not see answers as if it did not exist.
	_, err1 := s.ForgetRecorded(ctx, "t", "q", policy.Official, nil)
	_, err2 := s.ForgetRecorded(ctx, "t", "nobody", policy.Official, nil)
	if !errors.Is(err1, ErrUnknownSubject) || !errors.Is(err2, ErrUnknownSubject) {
		t.Fatalf("%v / %v", err1, err2)
	}
	if ex, err := s.Export(ctx, "t", "q"); err != nil || len(ex.Memories) != 1 {
		t.Fatalf("an under-cleared forget destroyed memories it could not see: %v", err)
	}
}

// The pseudonym and keyed digests a record holds cannot be recomputed once the subject
// is forgotten: the key they were made with is gone.
func TestRefsAreUnlinkableAfterForget(t *testing.T) {
	ctx := context.Background()
	s := freshStore(t)
	var added Ref
	if _, err := s.AddRecorded(ctx, NewMemory{Tenant: "t", Subject: "patient-7", Classification: policy.Official, Text: "Discharged Tuesday."},
		func(_ *Memory, r Ref) error { added = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(added.Subject, "subj_") || strings.Contains(added.Subject, "patient") || len(added.Text) != 64 {
		t.Fatalf("ref %+v", added)
	}
	if r, _ := s.Ref(ctx, "t", "patient-7"); r.Subject != added.Subject {
		t.Fatalf("the same subject gets the same pseudonym while it exists: %s vs %s", r.Subject, added.Subject)
	}
	var forgotten Ref
	if _, err := s.ForgetRecorded(ctx, "t", "patient-7", policy.TopSecret, func(_ *Forgotten, r Ref) error { forgotten = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if forgotten.Subject != added.Subject {
		t.Fatal("the forget record names the subject by the pseudonym its writes used")
	}
	if r, _ := s.Ref(ctx, "t", "patient-7"); r.Subject == added.Subject {
		t.Fatal("the pseudonym can still be recomputed after forget")
	}
	if _, err := s.Add(ctx, NewMemory{Tenant: "t", Subject: "patient-7", Classification: policy.Official, Text: "Discharged Tuesday."}); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Ref(ctx, "t", "patient-7"); r.Subject == added.Subject {
		t.Fatal("a new subject of the same name is linkable to the forgotten one")
	}
}

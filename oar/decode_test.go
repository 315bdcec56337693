package oar

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// referenceUnion decodes with encoding/json, the behaviour decodeUnion must match.
func referenceUnion(b []byte) (*union, error) {
	var w struct {
		Record
		Seq   uint64              `json:"seq"`
		First uint64              `json:"first"`
		Count uint64              `json:"count"`
		Root  string              `json:"root"`
		Prev  string              `json:"prev"`
		Sig   *identity.Signature `json:"sig"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	return &union{Record: w.Record, Seq: w.Seq, First: w.First, Count: w.Count, Root: w.Root, Prev: w.Prev, Sig: w.Sig}, nil
}

// FuzzDecodeMatchesEncodingJSON is a differential test: for every canonical entry the
// fast decoder accepts and Parse keeps (the re-encoding check), encoding/json reads the
// same members. And Parse never accepts what the reference path refuses.
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	for _, e := range vectorEntries(f) {
		f.Add(e)
	}
	f.Add([]byte(`{"a":{"b":[1,2.5,"x\n",null,true]},"kind":"record","v":"oar/1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if !jcs.IsCanonical(b) {
			return
		}
		var fast union
		ferr := decodeUnion(b, &fast)
		e, perr := Parse(b)
		if perr != nil {
			return
		}
		if ferr != nil {
			t.Fatalf("Parse accepted what the decoder refused: %v", ferr)
		}
		ref, rerr := referenceUnion(b)
		if rerr != nil {
			t.Fatalf("Parse accepted an entry encoding/json refuses (%v): %s", rerr, b)
		}
		switch e.Kind {
		case KindRecord:
			if !reflect.DeepEqual(normalise(ref.Record), normalise(*e.Record)) {
				t.Fatalf("decoders disagree:\n%+v\n%+v", ref.Record, *e.Record)
			}
		case KindSeal:
			s := e.Seal
			if ref.Seq != s.Seq || ref.First != s.First || ref.Count != s.Count || ref.Root != s.Root ||
				ref.Prev != s.Prev || !reflect.DeepEqual(ref.Sig, s.Sig) {
				t.Fatalf("decoders disagree on a seal:\n%+v\n%+v", ref, s)
			}
		}
	})
}

// normalise compacts raw JSON members so that both decoders' spans compare equal.
func normalise(r Record) Record {
	if r.Detail != nil {
		r.Detail, _ = jcs.Canonicalize(r.Detail)
	}
	for i, p := range r.Parties {
		r.Parties[i], _ = jcs.Canonicalize(p)
	}
	return r
}

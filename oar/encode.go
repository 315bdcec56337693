package oar

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/sios-project/sios/jcs"
)

// The canonical (RFC 8785) encoders of records and seals, written out by hand: member
// names are ASCII and listed here in sorted order, so each entry is produced in one pass
// without reflection. encode_test.go checks them against the generic path (encoding/json
// followed by jcs.Canonicalize) on the test vectors and under fuzzing.

func encode(v any) ([]byte, error) {
	var b []byte
	var err error
	switch x := v.(type) {
	case *Record:
		b, err = appendRecord(make([]byte, 0, 512), x)
	case *Seal:
		b, err = appendSeal(make([]byte, 0, 5120), x)
	case Seal:
		b, err = appendSeal(make([]byte, 0, 5120), &x)
	default:
		return nil, fmt.Errorf("oar: cannot encode %T", v)
	}
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEntrySize {
		return nil, fmt.Errorf("encoded entry is %d bytes, more than the limit of %d (MaxEntrySize)", len(b), MaxEntrySize)
	}
	return b, nil
}

// member writes the separator and a member name (ASCII, needing no escapes).
type object struct {
	b     []byte
	first bool
	err   error
}

func (o *object) name(n string) {
	if o.first {
		o.first = false
	} else {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, n...)
	o.b = append(o.b, '"', ':')
}

func (o *object) str(n, v string) {
	o.name(n)
	o.b, o.err = appendString(o.b, v, o.err)
}

func (o *object) optStr(n, v string) {
	if v != "" {
		o.str(n, v)
	}
}

func (o *object) uint(n string, v uint64) {
	o.name(n)
	o.b = strconv.AppendUint(o.b, v, 10)
}

// Depths at which free-form values sit in an entry (the entry object is depth 1), so
// that jcs.MaxDepth bounds the whole entry, as a reader applies it.
const (
	detailDepth = 1 // "detail" is a member of the entry
	partyDepth  = 2 // each party is an element of the "parties" array
)

// detail writes the free-form detail object: canonicalized, its depth counted from
// the entry's, and refused if a number in it would not keep its value.
func (o *object) detail(v []byte) {
	o.name("detail")
	var err error
	o.b, err = jcs.AppendNested(o.b, v, detailDepth)
	if err != nil && o.err == nil {
		o.err = fmt.Errorf("detail: %w", err)
	}
}

// party writes the i'th party's bytes exactly as given. A party signed its own bytes,
// so they are never re-encoded: bytes that are not already canonical are refused.
func (o *object) party(i int, p []byte) {
	start := len(o.b)
	var err error
	o.b, err = jcs.AppendNested(o.b, p, partyDepth)
	switch {
	case err != nil:
		err = fmt.Errorf("parties[%d]: %w", i, err)
	case !bytes.Equal(o.b[start:], p):
		err = fmt.Errorf("parties[%d] is not in canonical form (RFC 8785): a party's bytes are logged exactly as given, so they must be canonical; carry other bytes as a string", i)
	}
	if err != nil && o.err == nil {
		o.err = err
	}
}

func open(b []byte) *object { return &object{b: append(b, '{'), first: true} }

func (o *object) close() ([]byte, error) { return append(o.b, '}'), o.err }

// end closes the nested object child, which was opened on o's buffer.
func (o *object) end(child *object) {
	var err error
	o.b, err = child.close()
	if o.err == nil {
		o.err = err
	}
}

// appendString writes s as an RFC 8785 string (jcs.AppendString), keeping the first error.
func appendString(b []byte, s string, err error) ([]byte, error) {
	b, e := jcs.AppendString(b, s)
	if err == nil {
		err = e
	}
	return b, err
}

func appendRecord(b []byte, r *Record) ([]byte, error) {
	o := open(b)
	o.str("action", r.Action)
	o.name("actor")
	a := open(o.b)
	a.optStr("clearance", r.Actor.Clearance)
	a.str("id", r.Actor.ID)
	o.end(a)
	o.optStr("classification", r.Classification)
	if d := r.Decision; d != nil {
		o.name("decision")
		do := open(o.b)
		do.str("effect", d.Effect)
		if len(d.Policies) > 0 {
			do.name("policies")
			do.b = append(do.b, '[')
			for i, p := range d.Policies {
				if i > 0 {
					do.b = append(do.b, ',')
				}
				do.b, do.err = appendString(do.b, p, do.err)
			}
			do.b = append(do.b, ']')
		}
		o.end(do)
	}
	if len(r.Detail) > 0 {
		o.detail(r.Detail)
	}
	appendDigests(o, "inputs", r.Inputs)
	o.str("kind", r.Kind)
	if len(r.Links) > 0 {
		o.name("links")
		o.b = append(o.b, '[')
		for i, l := range r.Links {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			lo := open(o.b)
			lo.str("record_hash", l.RecordHash)
			lo.str("rel", l.Rel)
			o.end(lo)
		}
		o.b = append(o.b, ']')
	}
	o.str("node", r.Node)
	appendDigests(o, "outputs", r.Outputs)
	if len(r.Parties) > 0 {
		o.name("parties")
		o.b = append(o.b, '[')
		for i, p := range r.Parties {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.party(i, p)
		}
		o.b = append(o.b, ']')
	}
	o.optStr("resource", r.Resource)
	o.optStr("tenant", r.Tenant)
	o.str("time", r.Time)
	o.str("v", r.V)
	return o.close()
}

func appendDigests(o *object, name string, ds []Digest) {
	if len(ds) == 0 {
		return
	}
	o.name(name)
	o.b = append(o.b, '[')
	for i, d := range ds {
		if i > 0 {
			o.b = append(o.b, ',')
		}
		do := open(o.b)
		do.str("name", d.Name)
		do.str("sha256", d.SHA256)
		if d.Size != 0 {
			do.name("size")
			do.b = strconv.AppendInt(do.b, d.Size, 10)
		}
		o.end(do)
	}
	o.b = append(o.b, ']')
}

func appendSeal(b []byte, s *Seal) ([]byte, error) {
	o := open(b)
	o.uint("count", s.Count)
	o.uint("first", s.First)
	o.str("kind", s.Kind)
	o.str("node", s.Node)
	o.str("prev", s.Prev)
	o.str("root", s.Root)
	o.uint("seq", s.Seq)
	if s.Sig != nil {
		o.name("sig")
		so := open(o.b)
		so.name("ed25519")
		so.b = appendBase64(so.b, s.Sig.Ed25519)
		so.name("ml-dsa-65")
		so.b = appendBase64(so.b, s.Sig.MLDSA65)
		o.end(so)
	}
	o.str("time", s.Time)
	o.str("v", s.V)
	return o.close()
}

func appendBase64(b, data []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

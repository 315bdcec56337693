package oar

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// A decoder for entries that have already passed jcs.IsCanonical: no whitespace, the
// minimal string escapes, integers in plain decimal. It fills the same union of record
// and seal members that encoding/json would, several times faster, which is what full
// verification spends most of its time on. Members it does not know are skipped, as
// encoding/json skips them; Parse's re-encoding check then refuses the entry. The
// differential fuzz test holds it to encoding/json's result.

// union holds the members of either kind of entry.
type union struct {
	Record
	Seq, First, Count uint64
	Root, Prev        string
	Sig               *identity.Signature
}

type decoder struct {
	b     []byte
	s     string // b as one string: the strings decoded without escapes are its substrings
	i     int
	depth int
}

var errSyntax = errors.New("malformed entry")

func (d *decoder) peek() byte {
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

func (d *decoder) expect(c byte) error {
	if d.peek() != c {
		return fmt.Errorf("%w: want %q at byte %d", errSyntax, c, d.i)
	}
	d.i++
	return nil
}

func (d *decoder) null() bool {
	if len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "null" {
		d.i += 4
		return true
	}
	return false
}

// str reads a string in its canonical spelling.
func (d *decoder) str() (string, error) {
	if err := d.expect('"'); err != nil {
		return "", err
	}
	start := d.i
	// Most strings have no escape: find the closing quote, then look for a backslash
	// before it, each a vectorized scan (a seal's signatures are kilobytes long).
	if q := bytes.IndexByte(d.b[d.i:], '"'); q < 0 {
		d.i = len(d.b)
	} else if e := bytes.IndexByte(d.b[d.i:d.i+q], '\\'); e < 0 {
		d.i += q
	} else {
		d.i += e
	}
	if d.peek() == '"' {
		s := d.s[start:d.i] // one copy of the entry for all its strings, not one per string
		d.i++
		return s, nil
	}
	out := append([]byte(nil), d.b[start:d.i]...)
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), nil
		case c != '\\':
			out = append(out, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.b) {
			break
		}
		e := d.b[d.i+1]
		d.i += 2
		if b, ok := jcs.ShortEscape(e); ok {
			out = append(out, b)
			continue
		}
		switch e {
		case 'u':
			if d.i+4 > len(d.b) {
				return "", errSyntax
			}
			v, ok := jcs.Hex4(d.b[d.i:])
			if !ok || v >= 0x20 {
				return "", fmt.Errorf("%w: escape at byte %d", errSyntax, d.i)
			}
			out = append(out, byte(v))
			d.i += 4
		default:
			return "", fmt.Errorf("%w: escape at byte %d", errSyntax, d.i)
		}
	}
	return "", fmt.Errorf("%w: unterminated string", errSyntax)
}

func (d *decoder) number() (string, error) {
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.i++
			continue
		}
		break
	}
	if start == d.i {
		return "", fmt.Errorf("%w: want a number at byte %d", errSyntax, d.i)
	}
	return string(d.b[start:d.i]), nil
}

func (d *decoder) uint() (uint64, error) {
	s, err := d.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not an unsigned integer", errSyntax, s)
	}
	return v, nil
}

func (d *decoder) int() (int64, error) {
	s, err := d.number()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is not an integer", errSyntax, s)
	}
	return v, nil
}

// raw returns the bytes of the next value, whatever it is.
func (d *decoder) raw() ([]byte, error) {
	start := d.i
	if err := d.skip(); err != nil {
		return nil, err
	}
	return d.b[start:d.i:d.i], nil
}

func (d *decoder) skip() error {
	switch c := d.peek(); {
	case c == '"':
		_, err := d.str()
		return err
	case c == '{':
		return d.object(func(string) error { return d.skip() })
	case c == '[':
		return d.array(d.skip)
	case c == 't' && len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		d.i += 4
	case c == 'f' && len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		d.i += 5
	case d.null():
	default:
		_, err := d.number()
		return err
	}
	return nil
}

func (d *decoder) nest() error {
	if d.depth++; d.depth > 64 {
		return fmt.Errorf("%w: nested too deep", errSyntax)
	}
	return nil
}

func (d *decoder) object(member func(key string) error) error {
	if err := d.expect('{'); err != nil {
		return err
	}
	if err := d.nest(); err != nil {
		return err
	}
	defer func() { d.depth-- }()
	if d.peek() == '}' {
		d.i++
		return nil
	}
	for {
		k, err := d.str()
		if err != nil {
			return err
		}
		if err := d.expect(':'); err != nil {
			return err
		}
		if err := member(k); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case '}':
			d.i++
			return nil
		default:
			return fmt.Errorf("%w: want ',' or '}' at byte %d", errSyntax, d.i)
		}
	}
}

func (d *decoder) array(elem func() error) error {
	if err := d.expect('['); err != nil {
		return err
	}
	if err := d.nest(); err != nil {
		return err
	}
	defer func() { d.depth-- }()
	if d.peek() == ']' {
		d.i++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.i++
		case ']':
			d.i++
			return nil
		default:
			return fmt.Errorf("%w: want ',' or ']' at byte %d", errSyntax, d.i)
		}
	}
}

func (d *decoder) strList(out *[]string) error {
	if d.null() {
		return nil
	}
	return d.array(func() error {
		s, err := d.str()
		*out = append(*out, s)
		return err
	})
}

func (d *decoder) digests(out *[]Digest) error {
	if d.null() {
		return nil
	}
	return d.array(func() error {
		var g Digest
		err := d.object(func(k string) error {
			var err error
			switch k {
			case "name":
				g.Name, err = d.str()
			case "sha256":
				g.SHA256, err = d.str()
			case "size":
				g.Size, err = d.int()
			default:
				err = d.skip()
			}
			return err
		})
		*out = append(*out, g)
		return err
	})
}

func (d *decoder) base64() ([]byte, error) {
	s, err := d.str()
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

// decodeUnion fills w from a canonical entry.
func decodeUnion(b []byte, w *union) error {
	d := &decoder{b: b, s: string(b)}
	err := d.object(func(k string) error {
		if d.null() {
			return nil
		}
		var err error
		switch k {
		case "v":
			w.V, err = d.str()
		case "kind":
			w.Kind, err = d.str()
		case "time":
			w.Time, err = d.str()
		case "node":
			w.Node, err = d.str()
		case "tenant":
			w.Tenant, err = d.str()
		case "action":
			w.Action, err = d.str()
		case "resource":
			w.Resource, err = d.str()
		case "classification":
			w.Classification, err = d.str()
		case "actor":
			err = d.object(func(k string) error {
				var err error
				switch k {
				case "id":
					w.Actor.ID, err = d.str()
				case "clearance":
					w.Actor.Clearance, err = d.str()
				default:
					err = d.skip()
				}
				return err
			})
		case "decision":
			w.Decision = &Decision{}
			err = d.object(func(k string) error {
				switch k {
				case "effect":
					var err error
					w.Decision.Effect, err = d.str()
					return err
				case "policies":
					return d.strList(&w.Decision.Policies)
				}
				return d.skip()
			})
		case "inputs":
			err = d.digests(&w.Inputs)
		case "outputs":
			err = d.digests(&w.Outputs)
		case "links":
			err = d.array(func() error {
				var l Link
				err := d.object(func(k string) error {
					var err error
					switch k {
					case "rel":
						l.Rel, err = d.str()
					case "record_hash":
						l.RecordHash, err = d.str()
					default:
						err = d.skip()
					}
					return err
				})
				w.Links = append(w.Links, l)
				return err
			})
		case "parties":
			err = d.array(func() error {
				p, err := d.raw()
				w.Parties = append(w.Parties, p)
				return err
			})
		case "detail":
			w.Detail, err = d.raw()
		case "seq":
			w.Seq, err = d.uint()
		case "first":
			w.First, err = d.uint()
		case "count":
			w.Count, err = d.uint()
		case "root":
			w.Root, err = d.str()
		case "prev":
			w.Prev, err = d.str()
		case "sig":
			w.Sig = &identity.Signature{}
			err = d.object(func(k string) error {
				var err error
				switch k {
				case "ed25519":
					w.Sig.Ed25519, err = d.base64()
				case "ml-dsa-65":
					w.Sig.MLDSA65, err = d.base64()
				default:
					err = d.skip()
				}
				return err
			})
		default:
			err = d.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	if d.i != len(b) {
		return fmt.Errorf("%w: trailing bytes", errSyntax)
	}
	return nil
}

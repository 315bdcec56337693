package fleet

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sios-project/sios/identity"
)

// A record whose text holds <, > or & must cross the fleet API byte for byte:
// encoding/json's default HTML escaping would make it non-canonical.
func TestSyncBodiesKeepCanonicalBytes(t *testing.T) {
	res, err := identity.Init(filepath.Join(t.TempDir(), "n"), "R&D <lab>", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	rec := newFeed(t, res.Node).recs[0]
	trust := NewTrust(res.Node.Root)
	for _, tc := range []struct {
		name    string
		marshal func(any) ([]byte, error)
		ok      bool
	}{
		{"Marshal", Marshal, true},
		{"encoding/json default", json.Marshal, false},
	} {
		body, err := tc.marshal(syncMsg{Node: res.Node.ID(), Records: []json.RawMessage{rec}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseSync(body)
		if err != nil {
			t.Fatal(err)
		}
		_, err = NewLog().Add(got.Records[0], trust)
		if (err == nil) != tc.ok {
			t.Errorf("%s: record after the round trip: %v", tc.name, err)
		}
	}
}

// TestParseSyncStrict: what a node writes in a sync request or answer (Marshal) reads
// back the same; a repeated, differently cased or unknown member is refused, naming
// it, where encoding/json would let the last win, match it anyway or skip it.
func TestParseSyncStrict(t *testing.T) {
	res, err := identity.Init(filepath.Join(t.TempDir(), "n"), "n", "", t0)
	if err != nil {
		t.Fatal(err)
	}
	rec := newFeed(t, res.Node).recs[0]
	l := NewLog()
	mustAdd(t, l, NewTrust(res.Node.Root), rec)
	sent := syncMsg{Node: res.Node.ID(), Addr: "127.0.0.1:7946", Digest: l.Digest(), Records: []json.RawMessage{rec}}
	body, err := Marshal(sent)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseSync(body)
	if err != nil || !reflect.DeepEqual(*got, sent) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	state, _ := Marshal(stateMsg{Node: sent.Node, Addr: sent.Addr, Digest: sent.Digest})
	if st, err := parseState(state); err != nil || st.Node != sent.Node || !reflect.DeepEqual(st.Digest, sent.Digest) {
		t.Fatalf("state round trip: %+v, %v", st, err)
	}
	node := `"node":"` + res.Node.ID() + `"`
	for _, c := range []struct{ name, in, want string }{
		{"repeated member", `{` + node + `,"addr":"a:1","addr":"b:2","digest":{}}`, `duplicate object member name "addr"`},
		{"differently cased member", `{` + node + `,"Addr":"a:1","digest":{}}`, `unknown object member name "Addr"`},
		{"unknown member", `{` + node + `,"digest":{},"since":3}`, `unknown object member name "since"`},
		{"unknown member of a head", `{` + node + `,"digest":{"x":{"seq":1,"hash":"","fork":true}}}`, `unknown object member name "fork"`},
		{"data after the document", `{` + node + `,"digest":{}} {}`, "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := parseSync([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parseSync = %v, want an error saying %q", err, c.want)
			}
			if _, err := parseState([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("parseState = %v, want an error saying %q", err, c.want)
			}
		})
	}
	if _, err := parseState([]byte(`{"node":"nobody","digest":{}}`)); err == nil || !strings.Contains(err.Error(), "not a node id") {
		t.Errorf("state of no node: %v", err)
	}
}

// TestWithinSync: the records a node sends in one request or answer stay within half
// of MaxSyncSize, so that with the digest the body stays within what the peer reads.
func TestWithinSync(t *testing.T) {
	rec := make([]byte, MaxRecordSize)
	recs := make([][]byte, MaxSyncSize/MaxRecordSize+2)
	for i := range recs {
		recs[i] = rec
	}
	got := withinSync(recs)
	size := 0
	for _, r := range got {
		size += len(r) + 1
	}
	if len(got) == 0 || len(got) == len(recs) || size > MaxSyncSize/2 {
		t.Fatalf("withinSync kept %d of %d records, %d bytes (MaxSyncSize/2 is %d)", len(got), len(recs), size, MaxSyncSize/2)
	}
	if few := recs[:2]; len(withinSync(few)) != 2 {
		t.Fatal("withinSync cut records that fit")
	}
}

// FuzzParseSync: whatever parseSync or parseState accepts, Marshal writes back to
// bytes that read the same.
func FuzzParseSync(f *testing.F) {
	f.Add([]byte(`{"node":"node_aaaa","addr":"127.0.0.1:1","digest":{"node_aaaa":{"seq":1,"hash":"00"}},"records":[{"v":"fed/1"}]}`))
	f.Add([]byte(`{"node":"a","node":"b"}`))
	f.Add([]byte(`{"Node":"a","digest":{"x":{"Seq":1}}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		if m, err := parseSync(in); err == nil {
			again, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := parseSync(again)
			if err != nil || !reflect.DeepEqual(compactSync(m), compactSync(m2)) {
				t.Fatalf("written back, %s does not read the same: %v", in, err)
			}
		}
		if st, err := parseState(in); err == nil {
			if !validNodeID(st.Node) {
				t.Fatalf("accepted state of %q", st.Node)
			}
		}
	})
}

// compactSync is m with its records compacted, as Marshal writes them.
func compactSync(m *syncMsg) syncMsg {
	c := *m
	c.Records = nil
	for _, r := range m.Records {
		b, _ := json.Marshal(r)
		c.Records = append(c.Records, b)
	}
	return c
}

package ledger

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// exportJSON builds a closed log of n records and exports entries [from, to) as JSON.
func exportJSON(t *testing.T, n int, from, to uint64) (string, *Bundle) {
	t.Helper()
	node := newTestNode(t)
	dir := t.TempDir()
	l, err := Open(context.Background(), dir, node, Options{CheckpointInterval: 100 * time.Millisecond, SealMaxRecords: 4})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, n, 1)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.Export(context.Background(), node.Cert, from, to)
	if err != nil {
		t.Fatal(err)
	}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(data), b
}

// Two verifiers must never read one bundle differently: duplicate or differently
// cased members, and missing or null required members, are refused (issue 12, item 4).
func TestParseBundleIsStrict(t *testing.T) {
	doc, b := exportJSON(t, 20, 6, 9)
	if len(b.Left) == 0 || len(b.Right) == 0 {
		t.Fatalf("want a bundle with both compact ranges: %d, %d", len(b.Left), len(b.Right))
	}
	if _, err := ParseBundle([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	var generic map[string]json.RawMessage
	if err := json.Unmarshal([]byte(doc), &generic); err != nil {
		t.Fatal(err)
	}
	with := func(edit func(m map[string]json.RawMessage)) string {
		m := map[string]json.RawMessage{}
		for k, v := range generic {
			m[k] = v
		}
		edit(m)
		out, _ := json.Marshal(m)
		return string(out)
	}
	cases := []struct{ name, doc, want string }{
		{"duplicate start", strings.Replace(doc, `"start":`, `"start": 0, "start":`, 1), "duplicate object member name"},
		{"duplicate entries", strings.Replace(doc, `"entries":`, `"entries": [], "entries":`, 1), "duplicate object member name"},
		{"duplicate certificate member", strings.Replace(doc, `"node_id":`, `"node_id": "node_x", "node_id":`, 1), "duplicate object member name"},
		{"differently cased", strings.Replace(doc, `"start":`, `"Start":`, 1), `unknown object member name "Start"`},
		{"unknown member", strings.Replace(doc, `"start":`, `"comment": "x", "start":`, 1), "unknown object member"},
		{"uppercase hex", strings.Replace(doc, b.Left[0], strings.ToUpper(b.Left[0]), 1), "lowercase hex"},
		{"trailing data", doc + "{}", "trailing data"},
	}
	for _, m := range []string{"v", "certificate", "checkpoint", "start", "entries", "left", "right"} {
		cases = append(cases,
			struct{ name, doc, want string }{"missing " + m, with(func(x map[string]json.RawMessage) { delete(x, m) }), `"` + m + `" is missing or null`},
			struct{ name, doc, want string }{"null " + m, with(func(x map[string]json.RawMessage) { x[m] = json.RawMessage("null") }), `"` + m + `" is missing or null`})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := ParseBundle([]byte(c.doc))
			if err == nil {
				_, err = b.Verify()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseBundle: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

// A bundle the writer makes, the reader accepts: the writer enforces the reader's
// limits (issue 12, item 1). The guard is tested as a function: a bundle at the limits
// would take gigabytes.
func TestBundleWriterKeepsTheReadersLimits(t *testing.T) {
	for _, c := range []struct {
		entries, size int
		want          string
	}{
		{1, 100, ""},
		{MaxBundleEntries, MaxBundleSize, ""},
		{0, 100, "1 to"},
		{MaxBundleEntries + 1, 100, "MaxBundleEntries"},
		{10, MaxBundleSize + 1, "MaxBundleSize"},
	} {
		err := checkBundleLimits(c.entries, c.size)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("checkBundleLimits(%d, %d) = %v, want %q", c.entries, c.size, err, c.want)
		}
	}
	// The reader applies the same function.
	_, b := exportJSON(t, 10, 0, 0)
	b.Entries = []string{}
	data, _ := json.Marshal(b)
	if _, err := ParseBundle(data); err == nil || !strings.Contains(err.Error(), "1 to") {
		t.Fatalf("ParseBundle of a bundle without entries: %v", err)
	}
}

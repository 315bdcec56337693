package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sios-project/sios/identity"
)

// dirSnapshot records every file and directory under dir with its mode, modification
// time and bytes.
func dirSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var data []byte
		if !d.IsDir() {
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		out[p] = fmt.Sprintf("%v %d %x", info.Mode(), info.ModTime().UnixNano(), data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if w, ok := after[p]; !ok {
			t.Errorf("%s was removed", p)
		} else if w != v {
			t.Errorf("%s was changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

// 'audit verify' on a data directory a crash left never changes a byte, and says what
// the journal holds beyond the checkpoint (issue 12, item 6).
func TestAuditVerifyOfACrashedNodeChangesNothing(t *testing.T) {
	dir := initNode(t)
	receipts := appendUntilKilled(t, dir, 0)
	if len(receipts) == 0 {
		t.Fatal("no receipt before the kill")
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger", "journal")); err != nil {
		t.Fatalf("the kill left no journal: %v", err)
	}
	before := dirSnapshot(t, dir)
	out := ok(t, dir, "audit", "verify")
	sameSnapshot(t, before, dirSnapshot(t, dir))
	res := decode[map[string]any](t, ok(t, dir, "audit", "verify", "--json"))
	sameSnapshot(t, before, dirSnapshot(t, dir))
	last := receipts[len(receipts)-1]
	end := uint64(res["checkpoint_size"].(float64))
	if j := uint64(res["journal_end"].(float64)); j > end {
		end = j
	}
	if i := uint64(res["integrated"].(float64)); i > end {
		end = i
	}
	if end <= last.SealIndex {
		t.Fatalf("verification covered entries up to %d, but a receipt names seal index %d:\n%s", end, last.SealIndex, out)
	}
	if res["writer_running"] != false {
		t.Fatalf("a writer is said to be running: %v", res)
	}
}

func TestAuditVerifyReceipt(t *testing.T) {
	dir := initNode(t)
	var lines strings.Builder
	for i := range 5 {
		fmt.Fprintf(&lines, `{"actor":{"id":"u%d"},"action":"receipt.test"}`+"\n", i)
	}
	receipts := runStdin(t, dir, lines.String(), "audit", "append", "--stdin", "--json")
	tmp := t.TempDir()
	file := filepath.Join(tmp, "receipts.jsonl")
	os.WriteFile(file, []byte(receipts), 0o644)

	out := ok(t, dir, "audit", "verify", "--receipt", file)
	if strings.Count(out, "both signatures verify") != 5 || !strings.Contains(out, "compare it with the root you trust") {
		t.Fatalf("verify --receipt:\n%s", out)
	}
	// Offline, with only the certificate: no data directory at all.
	cert := filepath.Join(tmp, "node.cert")
	os.WriteFile(cert, []byte(mustReadFile(t, filepath.Join(dir, "node.cert"))), 0o644)
	ok(t, filepath.Join(tmp, "nowhere"), "audit", "verify", "--receipt", file, "--cert", cert)

	first := strings.SplitN(receipts, "\n", 2)[0]
	var rc map[string]any
	json.Unmarshal([]byte(first), &rc)
	index := fmt.Sprint(rc["index"])

	// The X-Sios-Receipt header form, with and without the header name.
	header := filepath.Join(tmp, "header.txt")
	b64 := base64.RawURLEncoding.EncodeToString([]byte(first))
	os.WriteFile(header, []byte("X-Sios-Receipt: "+b64+"\n"+b64+"\n"), 0o644)
	if out := ok(t, dir, "audit", "verify", "--receipt", header); strings.Count(out, "both signatures verify") != 2 {
		t.Fatalf("header form:\n%s", out)
	}
	// 'audit prove --json' output: the receipt and the inclusion proof in the checkpoint.
	prove := filepath.Join(tmp, "prove.json")
	os.WriteFile(prove, []byte(ok(t, dir, "audit", "prove", index, "--json")), 0o644)
	if out := ok(t, dir, "audit", "verify", "--receipt", prove); !strings.Contains(out, "in the log's checkpoint of") {
		t.Fatalf("prove output:\n%s", out)
	}
	// With the record's bytes.
	shown := decode[map[string]json.RawMessage](t, ok(t, dir, "audit", "show", index, "--json"))
	record := filepath.Join(tmp, "record.json")
	os.WriteFile(record, shown["entry"], 0o644)
	single := filepath.Join(tmp, "one.json")
	os.WriteFile(single, []byte(first), 0o644)
	ok(t, dir, "audit", "verify", "--receipt", single, "--record", record)
	os.WriteFile(record, bytes.Replace(shown["entry"], []byte("receipt.test"), []byte("receipt.tesT"), 1), 0o644)
	fails(t, 1, dir, []string{"audit", "verify", "--receipt", single, "--record", record}, "does not match the record")

	for name, c := range map[string]struct{ doc, want string }{
		"altered record hash": {alterHash(first), "inclusion proof"},
		"duplicate member":    {strings.Replace(first, `"index":`, `"index":0,"index":`, 1), "duplicate object member name"},
		"unknown member":      {strings.Replace(first, `"index":`, `"note":"x","index":`, 1), "unknown object member"},
		"another node's seal": {strings.Replace(first, `"node":"node_`, `"node":"node_x`, 1), "receipt 1"},
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "bad.json")
			os.WriteFile(p, []byte(c.doc), 0o644)
			fails(t, 1, dir, []string{"audit", "verify", "--receipt", p}, c.want)
		})
	}
	// Another node's certificate.
	other := initNode(t)
	fails(t, 1, dir, []string{"audit", "verify", "--receipt", file, "--cert", filepath.Join(other, "node.cert")}, "failed verification")
	fails(t, 2, dir, []string{"audit", "verify", "--receipt", file, "--record", record}, "--record goes with a file of one receipt")
}

// alterHash changes the first hex digit of the receipt's record_hash.
func alterHash(doc string) string {
	i := strings.Index(doc, `"record_hash":"`) + len(`"record_hash":"`)
	c := byte('0')
	if doc[i] == '0' {
		c = '1'
	}
	return doc[:i] + string(c) + doc[i+1:]
}

func mustReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runStdin runs sios with input on standard input and returns its standard output.
func runStdin(t *testing.T, dir, input string, args ...string) string {
	t.Helper()
	cmd := exec.Command(siosBin, append([]string{"--data", dir}, args...)...)
	cmd.Stdin = strings.NewReader(input)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sios %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// Every record a caller holds a receipt for shows in 'audit tail' and 'audit show' at
// once, marked as pending when no checkpoint commits to it yet (issue 12, item 8).
func TestAuditTailShowsEveryReceiptedRecord(t *testing.T) {
	dir := initNode(t)
	receipts := appendUntilKilled(t, dir, 0)
	last := receipts[len(receipts)-1]
	tail := decode[[]map[string]any](t, ok(t, dir, "audit", "tail", "-n", "100000", "--json"))
	byIndex := map[uint64]map[string]any{}
	for _, e := range tail {
		byIndex[uint64(e["index"].(float64))] = e
	}
	pending := 0
	for _, rc := range receipts {
		e, found := byIndex[rc.Index]
		if !found || e["record_hash"] != rc.RecordHash {
			t.Fatalf("receipted record %d is not in 'audit tail' (%d entries shown)", rc.Index, len(tail))
		}
		if e["pending"] != nil {
			pending++
		}
	}
	if pending == 0 {
		t.Log("every receipted record was checkpointed before the kill; nothing pending to show")
	}
	shown := decode[map[string]any](t, ok(t, dir, "audit", "show", fmt.Sprint(last.Index), "--json"))
	if shown["record_hash"] != last.RecordHash {
		t.Fatalf("audit show %d: %v", last.Index, shown)
	}
	if text := ok(t, dir, "audit", "tail", "-n", "3"); !strings.Contains(text, "STATE") {
		t.Fatalf("tail text: %s", text)
	}
}

// Input records are read strictly: a member given twice, or spelt in another case, is
// refused rather than read one way by sios and another by whoever wrote it (item 4);
// a record nested deeper than the entry may be is refused at append, naming the depth
// limit, and the log still verifies (item 1).
func TestAuditAppendStdinIsStrict(t *testing.T) {
	dir := initNode(t)
	for name, c := range map[string]struct{ line, want string }{
		"duplicate member":    {`{"actor":{"id":"u"},"action":"a","action":"b"}`, "duplicate object member name"},
		"differently cased":   {`{"actor":{"id":"u"},"Action":"a"}`, `unknown object member name "Action"`},
		"too deep":            {`{"actor":{"id":"u"},"action":"a","detail":` + strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64) + `}`, "MaxDepth (64)"},
		"rounded number":      {`{"actor":{"id":"u"},"action":"a","detail":{"n":9007199254740993}}`, "does not survive"},
		"non-canonical party": {`{"actor":{"id":"u"},"action":"a","parties":[{"b":1,"a":2}]}`, "parties[0] is not in canonical form"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(siosBin, "--data", dir, "audit", "append", "--stdin")
			cmd.Stdin = strings.NewReader(c.line + "\n")
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Fatalf("append %s: %v\n%s", c.line, err, out)
			}
		})
	}
	// detail nesting 63 deep is 64 deep in the entry: the deepest allowed.
	deepest := `{"actor":{"id":"u"},"action":"a","detail":` + strings.Repeat(`{"a":`, 63) + `1` + strings.Repeat(`}`, 63) + `}`
	runStdin(t, dir, deepest+"\n", "audit", "append", "--stdin")
	ok(t, dir, "audit", "verify")
}

// FuzzReceiptReader: whatever a receipts file holds, reading it ends, never panics,
// and yields documents that start with a brace, each within the limit; verifying them
// never panics (their strict parse is what rejects malformed ones).
func FuzzReceiptReader(f *testing.F) {
	f.Add([]byte(`{"v":"oar/1","seal":{"a":"}"}} {"b":[1,{"c":"\"}"}]}`))
	f.Add([]byte("X-Sios-Receipt: eyJ2Ijoib2FyLzEifQ\nabc\n\n"))
	f.Add([]byte(`{"unterminated":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := newReceiptReader(bytes.NewReader(data))
		for n := 0; ; n++ {
			if n > len(data)+1 {
				t.Fatal("more documents than bytes")
			}
			d, err := rr.next()
			if err != nil {
				return
			}
			if len(d.json) > maxReceiptDoc {
				t.Fatalf("document of %d bytes", len(d.json))
			}
			if rr.kind == '{' && d.json[0] != '{' {
				t.Fatalf("document %q", d.json)
			}
			verifyReceiptDoc(d, &identity.Certificate{NodeID: "node_x"}, identity.PublicKey{}, nil)
		}
	})
}

package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecodeFrame: a frame that decodes encodes back to exactly the bytes it came from.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(encodeFrame(nil, &batch{first: 7, entries: [][]byte{[]byte(`{"a":1}`), []byte(`{}`)}}))
	f.Add([]byte{0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, n, err := decodeFrame(data)
		if err != nil {
			return
		}
		if got := encodeFrame(nil, b); !bytes.Equal(got, data[:n]) {
			t.Fatalf("frame does not round-trip:\n%x\n%x", data[:n], got)
		}
	})
}

// FuzzBundle: parsing and verifying an arbitrary bundle never panics, and a bundle
// that verifies covers at least one seal.
func FuzzBundle(f *testing.F) {
	node := newTestNode(f)
	dir := f.TempDir()
	l, err := Open(context.Background(), dir, node, Options{CheckpointInterval: 100 * time.Millisecond, SealMaxRecords: 3})
	if err != nil {
		f.Fatal(err)
	}
	for i := range 10 {
		if _, _, err := l.Append(context.Background(), testRecord(i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		f.Fatal(err)
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		f.Fatal(err)
	}
	for _, rng := range [][2]uint64{{0, 0}, {4, 6}} {
		b, err := r.Export(context.Background(), node.Cert, rng[0], rng[1])
		if err != nil {
			f.Fatal(err)
		}
		data, _ := json.Marshal(b)
		f.Add(data)
	}
	f.Add([]byte(`{"v":"oar-bundle/1","entries":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		res, err := b.Verify()
		if err != nil {
			return
		}
		if res.Seals == 0 || res.End <= res.Start || res.End > res.Size {
			t.Fatalf("verified bundle with an impossible result: %+v", res)
		}
	})
}

// FuzzParseCheckpoint: arbitrary notes never verify under the node key unless the node
// signed them.
func FuzzParseCheckpoint(f *testing.F) {
	node := newTestNode(f)
	dir := f.TempDir()
	l, err := Open(context.Background(), dir, node, testOptions)
	if err != nil {
		f.Fatal(err)
	}
	l.Append(context.Background(), testRecord(1))
	if err := l.Close(context.Background()); err != nil {
		f.Fatal(err)
	}
	cp, err := newStore(dir + "/" + logDirName).checkpoint()
	if err != nil {
		f.Fatal(err)
	}
	signed, err := ParseCheckpoint(cp, node.ID(), node.Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp)
	f.Add([]byte("sios/audit/x\n1\nAAAA\n\n— sios/audit/x AAAA\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCheckpoint(data, node.ID(), node.Public())
		if err != nil {
			return
		}
		// The node signed one checkpoint (and the empty one at creation); the fuzzer
		// cannot make it vouch for any other tree.
		if c.Size != 0 && (c.Size != signed.Size || !bytes.Equal(c.Root, signed.Root)) {
			t.Fatalf("a checkpoint the node never signed verified: %q", data)
		}
	})
}

// FuzzDecodeSegment: whatever a journal segment holds, reading it never panics, the
// frames it yields re-encode to the bytes they came from, and it stops at damage or
// a torn frame rather than read past it.
func FuzzDecodeSegment(f *testing.F) {
	var seg []byte
	for _, b := range testBatches(3, 2) {
		seg = append(seg, encodeFrame(nil, b)...)
		seg = append(seg, make([]byte, alignSector(len(seg))-len(seg))...)
	}
	f.Add(append(seg, make([]byte, 600)...), true)
	f.Add(seg[:700], true)
	f.Add(seg, false)
	f.Fuzz(func(t *testing.T, data []byte, last bool) {
		s := &segmentFile{path: "fuzz.journal"}
		decodeSegment(s, data, last, false)
		if s.validLen > int64(len(data)) || s.validLen%sectorSize != 0 && s.validLen != int64(len(data)) {
			t.Fatalf("valid length %d of %d bytes", s.validLen, len(data))
		}
		off := 0
		for _, b := range s.batches {
			frame := encodeFrame(nil, b)
			if !bytes.Equal(frame, data[off:off+len(frame)]) {
				t.Fatalf("frame at %d does not re-encode to its bytes", off)
			}
			off = alignSector(off + len(frame))
		}
		if s.torn != nil && (!last || s.damage != nil) {
			t.Fatalf("torn %v, damage %v, last %v", s.torn, s.damage, last)
		}
	})
}

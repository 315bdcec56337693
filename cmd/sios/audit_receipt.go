package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// Limits on what 'audit verify --receipt' reads, named in the errors. A file of
// receipts is read one document at a time, so its size is not bounded.
const (
	maxReceiptDoc = 1 << 20  // one receipt document or header line (a receipt is about 5 KiB)
	maxCertFile   = 64 << 10 // an enrolment certificate
	maxRecordFile = oar.MaxEntrySize
)

// receiptDoc is one receipt as found in the file: JSON (a receipt, or the output of
// 'audit prove --json') or an X-Sios-Receipt header value.
type receiptDoc struct {
	where string
	json  []byte
}

// receiptResult is what verifying one receiptDoc showed.
type receiptResult struct {
	Where      string `json:"where"`
	Verified   bool   `json:"verified"`
	Index      uint64 `json:"index,omitempty"`
	RecordHash string `json:"record_hash,omitempty"`
	SealIndex  uint64 `json:"seal_index,omitempty"`
	Seal       uint64 `json:"seal,omitempty"`
	TreeSize   uint64 `json:"checkpoint_size,omitempty"` // prove output: the checkpoint the entry is proven in
	Kind       string `json:"kind,omitempty"`            // "record", or "seal" for a seal's prove output (seals have no receipt)
	Error      string `json:"error,omitempty"`
}

// verifyReceipts verifies every receipt in path offline, with the node keys of the
// certificate at certPath (default DIR/node.cert), and with recordPath (optional) the
// record a single receipt is for, in any JSON spelling: its canonical form is hashed.
func verifyReceipts(e *env, path, certPath, recordPath string, asJSON bool) error {
	cert, pub, err := e.receiptCert(certPath)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	docs := newReceiptReader(f)
	var record []byte
	if recordPath != "" {
		raw, err := readFileLimited(recordPath, 2*maxRecordFile, "twice oar.MaxEntrySize")
		if err != nil {
			return err
		}
		// Entries are canonical, so the record's canonical form is the logged bytes
		// whatever spelling it comes in (the 'entry' of 'audit show --json' is indented).
		if record, err = jcs.Canonicalize(raw); err != nil {
			return fmt.Errorf("%s is not a JSON record: %v", recordPath, err)
		}
	}
	var results []receiptResult
	failed, count := 0, 0
	var firstErr error
	for {
		d, err := docs.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		count++
		if record != nil && count > 1 {
			return usageError("--record goes with a file of one receipt; %s holds more", path)
		}
		res := verifyReceiptDoc(d, cert, pub, record)
		if !res.Verified {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %s", d.where, res.Error)
			}
		}
		if asJSON {
			results = append(results, res)
		} else if res.Verified {
			printReceiptResult(e, res)
		}
	}
	if count == 0 {
		return fmt.Errorf("%s holds no receipt", path)
	}
	if asJSON {
		if err := printJSON(e.stdout, map[string]any{"verified": failed == 0, "node_id": cert.NodeID, "root_id": cert.RootID, "receipts": results}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "node %s, enrolled by institution root %s: compare it with the root you trust\n", cert.NodeID, cert.RootID)
	}
	if failed > 0 {
		err := fmt.Errorf("%d of %d receipts failed verification; the first, %w", failed, count, firstErr)
		if asJSON {
			return &cliError{err: err, code: exitFailure, quiet: true}
		}
		return err
	}
	return nil
}

func printReceiptResult(e *env, r receiptResult) {
	if r.Kind == oar.KindSeal {
		fmt.Fprintf(e.stdout, "%s: entry %d (leaf hash %s) is in the log's checkpoint of %d entries\n", r.Where, r.Index, r.RecordHash, r.TreeSize)
		return
	}
	fmt.Fprintf(e.stdout, "%s: entry %d (record_hash %s) is sealed by seal %d at index %d; both signatures verify",
		r.Where, r.Index, r.RecordHash, r.Seal, r.SealIndex)
	if r.TreeSize > 0 {
		fmt.Fprintf(e.stdout, "; in the log's checkpoint of %d entries", r.TreeSize)
	}
	fmt.Fprintln(e.stdout)
}

// receiptCert loads the certificate receipts are verified with: the file given, read
// strictly as outside bytes, or this data directory's own.
func (e *env) receiptCert(path string) (*identity.Certificate, identity.PublicKey, error) {
	if path == "" {
		return e.loadCert()
	}
	data, err := readFileLimited(path, maxCertFile, "maxCertFile")
	if err != nil {
		return nil, identity.PublicKey{}, err
	}
	var c identity.Certificate
	if err := jcs.DecodeStrict(data, &c); err != nil {
		return nil, identity.PublicKey{}, fmt.Errorf("%s is not an enrolment certificate (sios-cert/1): %v", path, err)
	}
	pub, _, err := c.Verify()
	if err != nil {
		return nil, identity.PublicKey{}, fmt.Errorf("%s: %v", path, err)
	}
	return &c, pub, nil
}

func readFileLimited(path string, limit int64, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes (%s)", path, limit, name)
	}
	return data, nil
}

// receiptReader reads the receipts of a file one at a time: a sequence of JSON
// documents, or lines of X-Sios-Receipt header values (unpadded base64url of the
// receipt JSON, with or without the header name).
type receiptReader struct {
	r      *bufio.Reader
	kind   byte // '{' for JSON documents, 'h' for header lines, 0 until known
	n      int  // documents or lines read
	offset int64
}

func newReceiptReader(r io.Reader) *receiptReader {
	return &receiptReader{r: bufio.NewReaderSize(r, 1<<16)}
}

// next returns the next receipt document, or io.EOF.
func (rr *receiptReader) next() (receiptDoc, error) {
	if rr.kind == 0 {
		for {
			c, err := rr.r.ReadByte()
			if err != nil {
				return receiptDoc{}, err
			}
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				rr.r.UnreadByte()
				rr.kind = 'h'
				if c == '{' {
					rr.kind = '{'
				}
				break
			}
			rr.offset++
		}
	}
	if rr.kind == '{' {
		return rr.nextJSON()
	}
	return rr.nextHeader()
}

// nextJSON reads one JSON object: up to the brace that closes it, outside strings. The
// strict parse of what it returns is verifyReceiptDoc's.
func (rr *receiptReader) nextJSON() (receiptDoc, error) {
	var doc []byte
	depth, inString, escaped := 0, false, false
	start := rr.offset
	for {
		c, err := rr.r.ReadByte()
		if errors.Is(err, io.EOF) && depth == 0 && len(doc) == 0 {
			return receiptDoc{}, io.EOF
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return receiptDoc{}, fmt.Errorf("JSON document %d (byte offset %d) is cut short", rr.n+1, start)
			}
			return receiptDoc{}, err
		}
		rr.offset++
		if len(doc) == 0 {
			if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				start++
				continue
			}
			if c != '{' {
				return receiptDoc{}, fmt.Errorf("byte offset %d: want a JSON object, found %q", start, c)
			}
		}
		doc = append(doc, c)
		if len(doc) > maxReceiptDoc {
			return receiptDoc{}, fmt.Errorf("JSON document %d (byte offset %d) is larger than %d bytes (maxReceiptDoc)", rr.n+1, start, maxReceiptDoc)
		}
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		}
		if depth == 0 {
			rr.n++
			return receiptDoc{where: fmt.Sprintf("receipt %d", rr.n), json: doc}, nil
		}
	}
}

func (rr *receiptReader) nextHeader() (receiptDoc, error) {
	for {
		line, err := rr.r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxReceiptDoc {
			return receiptDoc{}, fmt.Errorf("line %d is longer than %d bytes", rr.n+1, rr.r.Size())
		}
		if len(line) == 0 && err != nil {
			return receiptDoc{}, err
		}
		rr.n++
		text := strings.TrimSpace(string(line))
		if text == "" {
			if err != nil {
				return receiptDoc{}, err
			}
			continue
		}
		if name, value, ok := strings.Cut(text, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "X-Sios-Receipt") {
			text = strings.TrimSpace(value)
		}
		raw, derr := base64.RawURLEncoding.DecodeString(strings.TrimRight(text, "="))
		if derr != nil {
			return receiptDoc{}, fmt.Errorf("line %d is neither JSON nor an X-Sios-Receipt value (unpadded base64url): %v", rr.n, derr)
		}
		return receiptDoc{where: fmt.Sprintf("line %d", rr.n), json: raw}, nil
	}
}

// proveOutput is the document 'audit prove --json' prints.
type proveOutput struct {
	Index          *uint64          `json:"index"`
	LeafHash       *string          `json:"leaf_hash"`
	TreeSize       *uint64          `json:"tree_size"`
	Root           *string          `json:"root"`
	InclusionProof *[]string        `json:"inclusion_proof"`
	Checkpoint     *string          `json:"checkpoint"`
	Receipt        *json.RawMessage `json:"receipt,omitempty"` // absent for a seal
}

func verifyReceiptDoc(d receiptDoc, cert *identity.Certificate, pub identity.PublicKey, record []byte) receiptResult {
	res := receiptResult{Where: d.where}
	fail := func(err error) receiptResult {
		res.Error = err.Error()
		return res
	}
	var members map[string]jsontext.Value
	if err := jcs.DecodeStrict(d.json, &members); err != nil {
		return fail(err)
	}
	raw := d.json
	if _, ok := members["leaf_hash"]; ok {
		var p proveOutput
		if err := jcs.DecodeStrict(d.json, &p); err != nil {
			return fail(fmt.Errorf("audit prove output: %v", err))
		}
		size, err := verifyProveOutput(&p, cert, pub, record)
		if err != nil {
			return fail(err)
		}
		res.Index, res.RecordHash, res.TreeSize = *p.Index, *p.LeafHash, size
		if p.Receipt == nil {
			res.Verified, res.Kind = true, oar.KindSeal // a seal's inclusion proof; seals have no receipt
			return res
		}
		raw = *p.Receipt
	}
	rc, err := oar.ParseReceipt(raw)
	if err != nil {
		return fail(err)
	}
	s, err := rc.Verify(pub, record)
	if err != nil {
		return fail(err)
	}
	if res.TreeSize > 0 && (rc.Index != res.Index || rc.RecordHash != res.RecordHash) {
		return fail(fmt.Errorf("the receipt is for entry %d (%s), but the proof for entry %d (%s)", rc.Index, rc.RecordHash, res.Index, res.RecordHash))
	}
	res.Verified, res.Kind, res.Index, res.RecordHash, res.SealIndex, res.Seal = true, oar.KindRecord, rc.Index, rc.RecordHash, rc.SealIndex, s.Seq
	return res
}

// verifyProveOutput checks an 'audit prove --json' document: its checkpoint (both
// signatures of the node key), and the inclusion proof of leaf_hash at index in it. It
// returns the checkpoint's size.
func verifyProveOutput(p *proveOutput, cert *identity.Certificate, pub identity.PublicKey, record []byte) (uint64, error) {
	for _, m := range []struct {
		name    string
		missing bool
	}{{"index", p.Index == nil}, {"leaf_hash", p.LeafHash == nil}, {"tree_size", p.TreeSize == nil},
		{"root", p.Root == nil}, {"inclusion_proof", p.InclusionProof == nil || *p.InclusionProof == nil}, {"checkpoint", p.Checkpoint == nil}} {
		if m.missing {
			return 0, fmt.Errorf("audit prove output: member %q is missing or null", m.name)
		}
	}
	cp, err := ledger.ParseCheckpoint([]byte(*p.Checkpoint), cert.NodeID, pub)
	if err != nil {
		return 0, err
	}
	if *p.TreeSize != cp.Size || *p.Root != hex.EncodeToString(cp.Root) {
		return 0, fmt.Errorf("tree_size and root are not the checkpoint's (%d, %x)", cp.Size, cp.Root)
	}
	leaf, err := lowerHex(*p.LeafHash, "leaf_hash")
	if err != nil {
		return 0, err
	}
	if len(record) > 0 && !bytes.Equal(oar.RecordHash(record), leaf) {
		return 0, errors.New("leaf_hash is not the record hash of the record given")
	}
	if len(*p.InclusionProof) > 64 {
		return 0, fmt.Errorf("inclusion_proof has %d hashes, more than a tree of 2^64 entries needs", len(*p.InclusionProof))
	}
	path := make([][]byte, len(*p.InclusionProof))
	for i, h := range *p.InclusionProof {
		if path[i], err = lowerHex(h, fmt.Sprintf("inclusion_proof[%d]", i)); err != nil {
			return 0, err
		}
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, *p.Index, cp.Size, leaf, path, cp.Root); err != nil {
		return 0, fmt.Errorf("entry %d is not in the checkpoint's tree: %v", *p.Index, err)
	}
	return cp.Size, nil
}

func lowerHex(s, what string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != oar.HashSize || hex.EncodeToString(b) != s {
		return nil, fmt.Errorf("%s must be %d bytes in lowercase hex", what, oar.HashSize)
	}
	return b, nil
}

package main

import (
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

// Limits on the files 'audit verify --receipt' reads, named in the errors.
const (
	maxReceiptsFile = 1 << 30  // a file of receipts (about 200,000 of them)
	maxCertFile     = 64 << 10 // an enrolment certificate
	maxRecordFile   = oar.MaxEntrySize
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
	data, err := readFileLimited(path, maxReceiptsFile, "maxReceiptsFile")
	if err != nil {
		return err
	}
	docs, err := splitReceipts(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(docs) == 0 {
		return fmt.Errorf("%s holds no receipt", path)
	}
	var record []byte
	if recordPath != "" {
		if len(docs) != 1 {
			return usageError("--record goes with a file of one receipt; %s holds %d", path, len(docs))
		}
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
	results := make([]receiptResult, len(docs))
	failed := 0
	var firstErr error
	for k, d := range docs {
		results[k] = verifyReceiptDoc(d, cert, pub, record)
		if !results[k].Verified {
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %s", d.where, results[k].Error)
			}
		}
	}
	if asJSON {
		if err := printJSON(e.stdout, map[string]any{"verified": failed == 0, "node_id": cert.NodeID, "root_id": cert.RootID, "receipts": results}); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			if !r.Verified {
				continue
			}
			if r.Kind == oar.KindSeal {
				fmt.Fprintf(e.stdout, "%s: entry %d (leaf hash %s) is in the log's checkpoint of %d entries\n", r.Where, r.Index, r.RecordHash, r.TreeSize)
				continue
			}
			fmt.Fprintf(e.stdout, "%s: entry %d (record_hash %s) is sealed by seal %d at index %d; both signatures verify",
				r.Where, r.Index, r.RecordHash, r.Seal, r.SealIndex)
			if r.TreeSize > 0 {
				fmt.Fprintf(e.stdout, "; in the log's checkpoint of %d entries", r.TreeSize)
			}
			fmt.Fprintln(e.stdout)
		}
		fmt.Fprintf(e.stdout, "node %s, enrolled by institution root %s: compare it with the root you trust\n", cert.NodeID, cert.RootID)
	}
	if failed > 0 {
		err := fmt.Errorf("%d of %d receipts failed verification; the first, %w", failed, len(docs), firstErr)
		if asJSON {
			return &cliError{err: err, code: exitFailure, quiet: true}
		}
		return err
	}
	return nil
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
	if err := jcs.Unmarshal(data, &c); err != nil {
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

// splitReceipts finds the receipts in a file: a sequence of JSON documents, or lines of
// X-Sios-Receipt header values (unpadded base64url of the receipt JSON, with or without
// the header name).
func splitReceipts(data []byte) ([]receiptDoc, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var docs []receiptDoc
		dec := jsontext.NewDecoder(bytes.NewReader(data))
		for k := 1; ; k++ {
			off := dec.InputOffset()
			v, err := dec.ReadValue()
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			if err != nil {
				return nil, fmt.Errorf("JSON document %d (byte offset %d): %v", k, off, err)
			}
			docs = append(docs, receiptDoc{where: fmt.Sprintf("receipt %d", k), json: bytes.Clone(v)})
		}
	}
	var docs []receiptDoc
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "X-Sios-Receipt") {
			line = strings.TrimSpace(value)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(line, "="))
		if err != nil {
			return nil, fmt.Errorf("line %d is neither JSON nor an X-Sios-Receipt value (unpadded base64url): %v", n+1, err)
		}
		docs = append(docs, receiptDoc{where: fmt.Sprintf("line %d", n+1), json: raw})
	}
	return docs, nil
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
	if err := jcs.Unmarshal(d.json, &members); err != nil {
		return fail(err)
	}
	raw := d.json
	if _, ok := members["leaf_hash"]; ok {
		var p proveOutput
		if err := jcs.Unmarshal(d.json, &p); err != nil {
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

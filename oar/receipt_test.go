package oar_test

import (
	"strings"
	"testing"

	"github.com/sios-project/sios/oar"
)

func TestParseReceiptIsStrict(t *testing.T) {
	v := vectorSeeds(t)
	good := string(v.Receipts[0])
	nodePub, _, err := v.Certificate.Verify()
	if err != nil {
		t.Fatal(err)
	}
	r, err := oar.ParseReceipt([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(nodePub, []byte(v.Records[0].Canonical)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, doc, want string }{
		{"duplicate index", strings.Replace(good, `"index":`, `"index":2,"index":`, 1), "duplicate object member name"},
		{"duplicate inside the seal", strings.Replace(good, `"count":`, `"count":9,"count":`, 1), "duplicate object member name"},
		{"differently cased", strings.Replace(good, `"record_hash":`, `"Record_Hash":`, 1), "unknown object member"},
		{"unknown member", strings.Replace(good, `"index":`, `"extra":1,"index":`, 1), "unknown object member"},
		{"missing seal_index", removeMember(good, "seal_index"), `"seal_index" is missing`},
		{"null inclusion_proof", setMember(good, "inclusion_proof", "null"), `"inclusion_proof" is missing or null`},
		{"null seal", setMember(good, "seal", "null"), `"seal" is missing or null`},
		{"trailing data", good + "{}", "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := oar.ParseReceipt([]byte(c.doc)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseReceipt: %v, want an error mentioning %q\n%s", err, c.want, c.doc)
			}
		})
	}
}

// removeMember and setMember edit a top-level member of a pretty-printed receipt.
func removeMember(doc, name string) string {
	i := strings.Index(doc, `"`+name+`":`)
	j := i + strings.IndexAny(doc[i:], ",\n}")
	if doc[j] == ',' {
		j++
	}
	return doc[:i] + doc[j:]
}

func setMember(doc, name, value string) string {
	i := strings.Index(doc, `"`+name+`":`) + len(name) + 3
	depth, j := 0, i
	for ; j < len(doc); j++ {
		switch doc[j] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		if depth <= 0 && (doc[j] == ',' || doc[j] == '}' || doc[j] == ']') {
			if depth == 0 && doc[j] != ',' {
				j++
			}
			break
		}
	}
	return doc[:i] + value + doc[j:]
}

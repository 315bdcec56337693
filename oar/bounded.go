package oar

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Bounded makes a value that came from outside the node (a model's tool name, a
// backend's finish reason, a peer's message) fit a record: returned as it is when it is
// valid UTF-8 of at most max bytes, else cut on a character boundary and followed by
// "…" and "sha256:" with the SHA-256 of the whole value, so that the record still names
// it exactly while staying within the record's limits (MaxFieldLen, MaxEntrySize). A
// record is never dropped because a value in it was too long.
func Bounded(s string, max int) string {
	if len(s) <= max && utf8.ValidString(s) {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tail := "…sha256:" + hex.EncodeToString(sum[:])
	keep := max - len(tail)
	if keep < 0 {
		keep = 0
	}
	if keep > len(s) {
		keep = len(s)
	}
	head := strings.ToValidUTF8(s[:keep], "")
	for len(head) > keep {
		head = head[:len(head)-1]
	}
	for len(head) > 0 && !utf8.ValidString(head) {
		head = head[:len(head)-1]
	}
	return head + tail
}

// MaxOutsideValue bounds each value from outside the node placed in a record (Bounded).
const MaxOutsideValue = 256

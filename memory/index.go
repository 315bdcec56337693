package memory

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"unicode"
)

// tokenLen is the number of hex digits of HMAC-SHA256 kept per word (64 bits).
const tokenLen = 16

// words lowercases text and splits it on everything that is not a letter, mark or digit.
func words(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	})
}

// hasher turns words into index tokens under one tenant's index key. It caches the
// tokens it has made, so a batch of related texts hashes each word once. Not safe
// for concurrent use.
type hasher struct {
	mac   hash.Hash
	sum   []byte
	cache map[string]string
}

func newHasher(indexKey []byte) *hasher {
	return &hasher{mac: hmac.New(sha256.New, indexKey), cache: make(map[string]string)}
}

func (h *hasher) token(w string) string {
	if t, ok := h.cache[w]; ok {
		return t
	}
	h.mac.Reset()
	h.mac.Write([]byte(w))
	h.sum = h.mac.Sum(h.sum[:0])
	t := hex.EncodeToString(h.sum[:tokenLen/2])
	if len(h.cache) < 1<<16 {
		h.cache[w] = t
	}
	return t
}

// document is the text the full-text index holds for a memory: its words' tokens,
// space-separated, in order (so that positions and term frequencies stay true).
func (h *hasher) document(text string) string {
	ws := words(text)
	var b strings.Builder
	b.Grow(len(ws) * (tokenLen + 1))
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h.token(w))
	}
	return b.String()
}

// terms returns the distinct tokens of the text's words, at most MaxQueryTerms, in
// the order the words first occur.
func (h *hasher) terms(text string) []string {
	var out []string
	seen := make(map[string]bool)
	for _, w := range words(text) {
		t := h.token(w)
		if seen[t] {
			continue
		}
		if len(out) == MaxQueryTerms {
			break
		}
		seen[t] = true
		out = append(out, t)
	}
	return out
}

// scope is the token that marks a memory's subject in the index. Words never contain
// a NUL, so no word's token can collide with it.
func (h *hasher) scope(subject string) string {
	return h.token("\x00subject\x00" + subject)
}

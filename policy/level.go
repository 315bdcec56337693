package policy

import (
	"fmt"
	"strings"

	"github.com/sios-project/sios/oar"
)

// Level is a classification (UK Government Security Classifications), used for a
// principal's clearance, the classification of data and the accreditation ceiling of a
// brain, memory, backend or peer. Levels are ordered: a higher Level is more sensitive.
// In Cedar a Level is a Long holding its rank (Official = 1 … TopSecret = 4).
//
// The zero Level is not a classification: Decide refuses requests that carry one.
type Level int

// The classifications, in ascending order. Only append to this list: the ranks are
// written into policies.
const (
	Official          Level = 1 // OFFICIAL
	OfficialSensitive Level = 2 // OFFICIAL-SENSITIVE
	Secret            Level = 3 // SECRET
	TopSecret         Level = 4 // TOP-SECRET
)

// levelNames are the markings by Level: the audit format's list (oar.Classifications),
// which is the one place the scale is written down; a Level's rank is its position
// there plus one.
var levelNames = append([]string{""}, oar.Classifications...)

// Levels returns every classification in ascending order.
func Levels() []Level {
	out := make([]Level, 0, len(oar.Classifications))
	for i := range oar.Classifications {
		out = append(out, Level(i+1))
	}
	return out
}

// Valid reports whether l is one of the classifications.
func (l Level) Valid() bool { return l >= Official && int(l) < len(levelNames) }

// String returns the marking, e.g. "OFFICIAL-SENSITIVE", or "Level(n)" for an invalid Level.
func (l Level) String() string {
	if !l.Valid() {
		return fmt.Sprintf("Level(%d)", int(l))
	}
	return levelNames[l]
}

// levelSpelling turns the separators a marking may be typed with into "-".
var levelSpelling = strings.NewReplacer("_", "-", " ", "-")

// ParseLevel parses a marking such as "SECRET". Case is ignored and "_" or a space may
// stand for "-" ("top_secret"), so that markings typed on a command line parse.
func ParseLevel(s string) (Level, error) {
	// A marking as the node writes it (stored principals, brains, records) is matched
	// as it is; only another spelling is normalised.
	for l := Official; int(l) < len(levelNames); l++ {
		if s == levelNames[l] {
			return l, nil
		}
	}
	norm := levelSpelling.Replace(strings.ToUpper(strings.TrimSpace(s)))
	for _, l := range Levels() {
		if norm == levelNames[l] {
			return l, nil
		}
	}
	return 0, fmt.Errorf("unknown classification %q: want one of %s", s, strings.Join(levelNames[1:], ", "))
}

// MarshalText encodes l as its marking; an invalid Level is an error.
func (l Level) MarshalText() ([]byte, error) {
	if !l.Valid() {
		return nil, fmt.Errorf("%v is not a classification", l)
	}
	return []byte(l.String()), nil
}

// UnmarshalText parses a marking with ParseLevel.
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

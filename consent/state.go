package consent

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// StateVersion is the "v" of a store file: one grant, exactly as signed, and what the
// origin has done with it since.
const StateVersion = "consent-state/1"

// State is where a grant stands at the origin at some time. Only append to this list:
// the CLI and API report it.
type State string

const (
	StateActive  State = "active"  // may be used
	StateRevoked State = "revoked" // revoked; revocation wins over every other state
	StateExpired State = "expired" // its expiry has passed
	StateUsed    State = "used"    // every use it allows has been made
)

// Entry is a grant held by its origin's store, with its state. A Store returns copies of
// its entries, which share Grant and Raw with it: do not modify those.
type Entry struct {
	Grant *Grant
	// Raw is the signed grant, byte for byte: what goes into envelopes and audit records.
	Raw []byte
	// Used is how many uses the origin has recorded (Store.Use).
	Used int
	// Revoked is when the grant was revoked; zero if it was not.
	Revoked time.Time
}

// State is the entry's state at now: revoked, else expired, else used up, else active.
func (e *Entry) State(now time.Time) State {
	switch {
	case !e.Revoked.IsZero():
		return StateRevoked
	case !now.Before(e.Grant.expires):
		return StateExpired
	case e.Grant.Uses > 0 && e.Used >= e.Grant.Uses:
		return StateUsed
	}
	return StateActive
}

// Remaining is how many uses are left, or -1 when the grant has no use count.
func (e *Entry) Remaining() int {
	if e.Grant.Uses == 0 {
		return -1
	}
	return max(0, e.Grant.Uses-e.Used)
}

// usable refuses a use of e at now with the code of its state.
func (e *Entry) usable(now time.Time) error {
	g := e.Grant
	switch e.State(now) {
	case StateRevoked:
		return errorf(CodeRevoked, "grant %s was revoked at %s", g.ID, oar.FormatTime(e.Revoked))
	case StateExpired:
		return errorf(CodeExpired, "grant %s expired at %s (now %s)", g.ID, g.Expires, oar.FormatTime(now))
	case StateUsed:
		return errorf(CodeUsedUp, "grant %s has been used %d of %d times", g.ID, e.Used, g.Uses)
	}
	return nil
}

// stateFile is the JSON form of an Entry.
type stateFile struct {
	V       string          `json:"v"`
	Grant   json.RawMessage `json:"grant"`
	Used    int             `json:"used"`
	Revoked string          `json:"revoked,omitempty"` // oar.FormatTime
}

// EncodeState is the canonical store-file form of e, within MaxStateSize.
func EncodeState(e *Entry) ([]byte, error) {
	f := stateFile{V: StateVersion, Grant: e.Raw, Used: e.Used}
	if !e.Revoked.IsZero() {
		f.Revoked = oar.FormatTime(e.Revoked)
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	if _, err := Parse(e.Raw); err != nil {
		return nil, err
	}
	b, err := jcs.Marshal(&f)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("consent store file is %d bytes, more than the limit of %d (MaxStateSize)", len(b), MaxStateSize)
	}
	return b, nil
}

// ParseState reads a store file with Parse's rules for consent-state/1: canonical,
// exactly its members, every member valid, the grant a valid consent-grant/1 grant and
// its use count within the grant's. It does not check the grant's signature.
func ParseState(b []byte) (*Entry, error) {
	if len(b) > MaxStateSize {
		return nil, fmt.Errorf("consent store file is %d bytes, more than the limit of %d (MaxStateSize)", len(b), MaxStateSize)
	}
	var f stateFile
	if err := jcs.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("consent store file is not %s: %v", StateVersion, err)
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	g, err := Parse(f.Grant)
	if err != nil {
		return nil, fmt.Errorf("consent store file: %v", err)
	}
	e := &Entry{Grant: g, Raw: []byte(f.Grant), Used: f.Used}
	if f.Revoked != "" {
		if e.Revoked, err = parseTime("consent store file: revoked", f.Revoked); err != nil {
			return nil, err
		}
	}
	if g.Uses > 0 && e.Used > g.Uses {
		return nil, fmt.Errorf("consent store file: grant %s has used %d of %d uses", g.ID, e.Used, g.Uses)
	}
	return e, nil
}

func (f *stateFile) check() error {
	if f.V != StateVersion {
		return fmt.Errorf("consent store file v is %q, want %q", short(f.V), StateVersion)
	}
	// A grant without a count still counts its uses.
	if f.Used < 0 || f.Used > MaxUseCount {
		return fmt.Errorf("consent store file: used %d is not 0 to %d (MaxUseCount)", f.Used, MaxUseCount)
	}
	return nil
}

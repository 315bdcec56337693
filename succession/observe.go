package succession

import (
	"slices"
	"time"
)

// What a node does on its own initiative, as pure decisions the node's loop calls.

// SuspicionDue reports whether observer self should sign a suspicion now, and the since
// to put in it: the latest presence it knows of, its own (lastSeen, the zero time if
// none) or the fleet's (st.LastPresence, never before the charter). It is due when self
// is one of the charter's observers, the role is not handed over, self has no live
// suspicion already, and suspect_after has passed since then.
func SuspicionDue(c *Charter, st RoleState, self string, lastSeen, now time.Time) (since time.Time, due bool) {
	if c.observerIndex(self) < 0 || st.State == StateHandedOver || st.Charter != c.Hash() {
		return time.Time{}, false
	}
	if slices.ContainsFunc(st.Suspicions, func(s Suspected) bool { return s.Observer == self }) {
		return time.Time{}, false
	}
	s := max(st.LastPresence.Unix(), c.time)
	if !lastSeen.IsZero() {
		s = max(s, lastSeen.Unix())
	}
	if now.Unix()-s < int64(c.SuspectAfter) {
		return time.Time{}, false
	}
	return unixTime(s), true
}

// PresenceDue reports whether a node that saw the holder at seen, and last published a
// presence for the role at lastPublished (the zero time if never), should publish one
// now. Presence is published coarsely: only when it is news to the fleet (seen is
// after st.LastPresence), and then at once while any suspicion is live (so that it
// refutes it before the wait ends), otherwise at most once per half of suspect_after
// (so that observers who never see the holder do not suspect an active one).
func PresenceDue(c *Charter, st RoleState, seen, lastPublished, now time.Time) bool {
	if st.Charter != c.Hash() || st.State == StateHandedOver || seen.Unix() <= st.LastPresence.Unix() {
		return false
	}
	if len(st.Suspicions) > 0 || lastPublished.IsZero() {
		return true
	}
	return now.Unix()-lastPublished.Unix() >= max(int64(c.SuspectAfter)/2, 1)
}

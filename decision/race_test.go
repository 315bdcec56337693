//go:build race

package decision

// raceEnabled: the race detector slows signature checks by two orders of magnitude, so
// the property tests try fewer random sets under it.
const raceEnabled = true

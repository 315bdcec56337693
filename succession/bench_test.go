package succession

import (
	"testing"
)

// BenchmarkVerifyEvent is the cost a node pays once per event it receives.
func BenchmarkVerifyEvent(b *testing.B) {
	f := newFixture(b)
	ev := f.suspicion(f.obs[0], 0, 60)
	for b.Loop() {
		if _, err := VerifyEvent(ev, f.pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkState200 evaluates a role from 200 verified events (suspicion rounds, each
// cancelled by a presence, then a handover): what a node pays each time an event
// arrives or NextChange comes.
func BenchmarkState200(b *testing.B) {
	f := newFixture(b)
	var events []SignedEvent
	add := func(raw []byte) {
		se, err := VerifyEvent(raw, f.pub)
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, se)
	}
	for round := int64(0); len(events) < 200; round++ {
		base := round * 100
		for i, o := range f.obs {
			add(f.suspicion(o, base, base+60+int64(i)))
		}
		add(f.presence(f.other, base+70, base+70))
	}
	for b.Loop() {
		if _, err := State(f.charter, events, f.now(1<<20)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealLetter(b *testing.B) {
	f := newFixture(b)
	text := make([]byte, 4096)
	for b.Loop() {
		if _, err := SealLetter(f.keys[f.obs[0]], f.obs[0], f.charter, "dr.okafor", text, f.kemPub, f.now(1)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenLetter(b *testing.B) {
	f := newFixture(b)
	l := f.sealLetter()
	st := f.handedOver()
	var released [][]byte
	for _, o := range f.obs[:3] {
		released = append(released, f.release(l, st, o))
	}
	for b.Loop() {
		if _, err := l.Open(f.kems[f.other], f.other, released, f.pub); err != nil {
			b.Fatal(err)
		}
	}
}

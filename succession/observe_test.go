package succession

import (
	"testing"
	"time"
)

func TestSuspicionDue(t *testing.T) {
	f := newFixture(t)
	o := f.obs
	held := f.state(100)
	seenAt30 := f.state(100, f.presence(f.other, 30, 31))
	suspected := f.state(100, f.suspicion(o[0], 0, 60))
	handed := f.state(100, f.suspicion(o[0], 0, 60), f.suspicion(o[1], 0, 65), f.suspicion(o[2], 0, 70))
	cases := []struct {
		name     string
		st       RoleState
		self     string
		lastSeen time.Time
		now      int64
		due      bool
		since    int64
	}{
		{"not yet", held, o[0], time.Time{}, 59, false, 0},
		{"suspect_after since the charter", held, o[0], time.Time{}, 60, true, 0},
		{"the fleet saw the holder", seenAt30, o[0], time.Time{}, 89, false, 0},
		{"suspect_after since the fleet saw them", seenAt30, o[0], time.Time{}, 90, true, 30},
		{"this node saw them later", seenAt30, o[0], f.now(50), 110, true, 50},
		{"already suspects", suspected, o[0], time.Time{}, 200, false, 0},
		{"another observer", suspected, o[1], time.Time{}, 200, true, 0},
		{"not an observer", held, f.other, time.Time{}, 200, false, 0},
		{"handed over", handed, o[3], time.Time{}, 200, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			since, due := SuspicionDue(f.charter, c.st, c.self, c.lastSeen, f.now(c.now))
			if due != c.due || due && !since.Equal(f.now(c.since)) {
				t.Fatalf("SuspicionDue = %v, %v; want %v since t0+%d", since, due, c.due, c.since)
			}
		})
	}
}

func TestPresenceDue(t *testing.T) {
	f := newFixture(t)
	seenAt30 := f.state(100, f.presence(f.other, 30, 31))
	suspected := f.state(100, f.presence(f.other, 30, 31), f.suspicion(f.obs[0], 30, 95))
	cases := []struct {
		name                 string
		st                   RoleState
		seen, published, now int64
		due                  bool
	}{
		{"not news", seenAt30, 30, -1, 100, false},
		{"never published", seenAt30, 40, -1, 100, true},
		{"published 10 s ago", seenAt30, 95, 90, 100, false},
		{"published half of suspect_after ago", seenAt30, 95, 70, 100, true},
		{"a suspicion is live", suspected, 99, 99, 100, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var published time.Time
			if c.published >= 0 {
				published = f.now(c.published)
			}
			if due := PresenceDue(f.charter, c.st, f.now(c.seen), published, f.now(c.now)); due != c.due {
				t.Fatalf("PresenceDue = %v, want %v", due, c.due)
			}
		})
	}
}

package api

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"testing"
	"time"
)

// slogLine is the line slog's handler (text or JSON, the node's options) writes for l.
func slogLine(t testing.TB, l *requestLine, json bool) []byte {
	var buf bytes.Buffer
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	var h slog.Handler = slog.NewTextHandler(&buf, opts)
	if json {
		h = slog.NewJSONHandler(&buf, opts)
	}
	r := slog.NewRecord(l.time, slog.LevelInfo, "request", 0)
	r.AddAttrs(l.attrs()...)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkLine(t *testing.T, l *requestLine) {
	t.Helper()
	for _, json := range []bool{false, true} {
		want := slogLine(t, l, json)
		var got []byte
		if json {
			got = l.appendJSON(nil)
		} else {
			got = l.appendText(nil)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("json %v:\n got %q\nwant %q", json, got, want)
		}
	}
}

func TestRequestLineIsSlogs(t *testing.T) {
	at := time.Date(2026, 12, 6, 14, 9, 40, 123456789, time.UTC)
	zone := time.FixedZone("X", -(3*3600 + 30*60))
	for _, l := range []requestLine{
		{time: at, method: "POST", route: "POST /v1/chat/completions", status: 200, durationMS: 21.345, bytes: 612,
			principal: "admin", record: "9f2c1e0b7a6d5c4b3a29180706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3", index: 123456},
		{time: at.Truncate(time.Second), method: "GET", route: "unmatched", status: 404, durationMS: 0, bytes: 0},
		{time: at.In(zone), method: "GET", route: "GET /v1/models", status: 401, durationMS: 0.001, bytes: 97, principal: ""},
		{time: at.Add(999 * time.Microsecond), method: "", route: "a=b", status: 500, durationMS: 1234567.891, bytes: -1, principal: `quo"te\back`},
		{time: at, method: "BR\xffW", route: "tab\there\nnew", status: 200, durationMS: 1e21, bytes: 1, principal: "é ü", record: "\u2028\u2029\x7f<&>"},
		{time: at, method: "M", route: "\u00a0nbsp", status: 200, durationMS: 5e-7, bytes: 1, principal: "\u200bzero-width", record: "r", index: math.MaxUint64},
	} {
		checkLine(t, &l)
	}
}

// For any strings, numbers and time, the lines are slog's.
func FuzzRequestLineIsSlogs(f *testing.F) {
	f.Add("POST", "POST /v1/chat/completions", 200, 21.345, int64(612), "admin", "9f2c", uint64(7), int64(1733494180123456789))
	f.Add("", "", 0, 0.0, int64(0), "", "", uint64(0), int64(0))
	f.Add("a b", "x=y", -1, 1e300, int64(-5), "\xff", "\u2028", uint64(math.MaxUint64), int64(-1))
	f.Fuzz(func(t *testing.T, method, route string, status int, ms float64, n int64, principal, record string, index uint64, nanos int64) {
		if math.IsNaN(ms) || math.IsInf(ms, 0) {
			return // durations are never these; slog's JSON handler writes an error for them
		}
		tm := time.Unix(0, nanos).UTC()
		if y := tm.Year(); y < 0 || y >= 10000 {
			return // slog's JSON handler writes an error for these years
		}
		checkLine(t, &requestLine{time: tm, method: method, route: route, status: status, durationMS: ms, bytes: n,
			principal: principal, record: record, index: index})
	})
}

// BenchmarkRequestLine: a chat request's line, written as the node writes it now and
// through slog's text handler, as it was.
func BenchmarkRequestLine(b *testing.B) {
	l := &requestLine{time: time.Now(), method: "POST", route: "POST /v1/chat/completions", status: 200, durationMS: 21.345, bytes: 612,
		principal: "admin", record: "9f2c1e0b7a6d5c4b3a29180706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3", index: 123456}
	var sink bytes.Buffer
	b.Run("direct", func(b *testing.B) {
		rl := &requestLog{w: &sink}
		b.ReportAllocs()
		for b.Loop() {
			sink.Reset()
			rl.write(l)
		}
	})
	b.Run("slog", func(b *testing.B) {
		log := slog.New(slog.NewTextHandler(&sink, &slog.HandlerOptions{Level: slog.LevelInfo}))
		b.ReportAllocs()
		for b.Loop() {
			sink.Reset()
			log.LogAttrs(context.Background(), slog.LevelInfo, "request", l.attrs()...)
		}
	})
}

package backend

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type event struct{ typ, data string }

// readAll parses input, returning the events and the error that ended the stream
// (io.EOF at a clean end).
func readAll(r io.Reader, max int) ([]event, error) {
	s := newSSEReader(bufio.NewReaderSize(r, 16), max)
	var out []event
	for {
		ev, err := s.next()
		if err != nil {
			return out, err
		}
		out = append(out, event{ev.typ, string(ev.data)})
	}
}

// referenceSSE is the WHATWG event-stream interpretation written as plainly as
// possible, to check the parser against.
func referenceSSE(input string) []event {
	input = strings.TrimPrefix(input, "\uFEFF")
	input = strings.ReplaceAll(input, "\r\n", "\n")
	input = strings.ReplaceAll(input, "\r", "\n")
	lines := strings.Split(input, "\n")
	lines = lines[:len(lines)-1] // the text after the last terminator is not a line
	var out []event
	var data, typ string
	hasData := false
	for _, line := range lines {
		switch {
		case line == "":
			if hasData {
				out = append(out, event{typ, strings.TrimSuffix(data, "\n")})
			}
			data, typ, hasData = "", "", false
		case strings.HasPrefix(line, ":"):
		default:
			field, value, found := strings.Cut(line, ":")
			if found {
				value = strings.TrimPrefix(value, " ")
			}
			switch field {
			case "data":
				data += value + "\n"
				hasData = true
			case "event":
				typ = value
			case "error": // llama.cpp's non-standard error line
				typ = "error"
				data += value + "\n"
				hasData = true
			}
		}
	}
	return out
}

func TestSSE(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []event
	}{
		{"one event", "data: x\n\n", []event{{"", "x"}}},
		{"CRLF", "data: x\r\n\r\ndata: y\r\n\r\n", []event{{"", "x"}, {"", "y"}}},
		{"lone CR", "data: x\r\rdata: y\r\r\n", []event{{"", "x"}, {"", "y"}}},
		{"multi-line data", "data: {\"a\":\ndata: 1}\n\n", []event{{"", "{\"a\":\n1}"}}},
		{"comments and unknown fields skipped", ": ping\nid: 7\nretry: 10\nfoo: bar\ndata: x\n\n", []event{{"", "x"}}},
		{"no space after colon", "data:x\n\n", []event{{"", "x"}}},
		{"only one leading space removed", "data:  x\n\n", []event{{"", " x"}}},
		{"field with no colon", "data\n\n", []event{{"", ""}}},
		{"event type", "event: error\ndata: boom\n\ndata: after\n\n", []event{{"error", "boom"}, {"", "after"}}},
		{"llama.cpp error line", "error: {\"code\":500}\n\ndata: [DONE]\n\n", []event{{"error", `{"code":500}`}, {"", "[DONE]"}}},
		{"blank lines without data dispatch nothing", "\n\n: c\n\nevent: x\n\n", nil},
		{"BOM", "\uFEFFdata: x\n\n", []event{{"", "x"}}},
		{"DONE is data", "data: [DONE]\n\n", []event{{"", "[DONE]"}}},
		{"event cut off at the end is dropped", "data: x\n\ndata: y\n", []event{{"", "x"}}},
		{"unterminated line is dropped", "data: x\n\ndata: y", []event{{"", "x"}}},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAll(strings.NewReader(tc.input), 1<<10)
			if err != io.EOF {
				t.Fatalf("error %v", err)
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			if ref := referenceSSE(tc.input); fmt.Sprintf("%q", ref) != fmt.Sprintf("%q", tc.want) {
				t.Fatalf("the reference disagrees: %q", ref)
			}
		})
	}
}

func TestSSELimit(t *testing.T) {
	for _, input := range []string{
		"data: " + strings.Repeat("a", 100) + "\n\n",               // one long line
		strings.Repeat("data: "+strings.Repeat("a", 10)+"\n", 10),  // many data lines
		"data: x\n\n" + strings.Repeat(":", 200) + "\ndata: y\n\n", // a long comment
	} {
		got, err := readAll(strings.NewReader(input), 64)
		if !errors.Is(err, errSSELimit) || !strings.Contains(err.Error(), "larger than 64 bytes (MaxEventBytes)") {
			t.Fatalf("%q: err %v", input, err)
		}
		if len(got) > 1 {
			t.Fatalf("%q: events past the limit: %q", input, got)
		}
	}
}

// FuzzSSE: the parser never panics, agrees with the plain reference reading whatever
// way the bytes arrive, and yields only complete events. Past its size limit it stops
// with errSSELimit, having yielded a prefix of the reference's events.
func FuzzSSE(f *testing.F) {
	for _, s := range []string{
		"data: x\n\n",
		"data: {\"a\":\r\ndata: 1}\r\n\r\n",
		"data: x\r\rdata: y\r\r\n",
		": c\nevent: error\ndata: e\n\ndata: [DONE]\n\n",
		"data: x\n\nerror: {\"message\":\"m\"}\n\ndata: [DONE]\n\n",
		"\uFEFFdata\n\ndata: y",
		"data: " + strings.Repeat("z", 80) + "\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		const max = 64
		want := referenceSSE(string(input))
		for _, r := range []io.Reader{
			bytes.NewReader(input),
			iotest.OneByteReader(bytes.NewReader(input)),
			iotest.HalfReader(bytes.NewReader(input)),
		} {
			got, err := readAll(r, max)
			switch {
			case err == io.EOF:
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
					t.Fatalf("input %q\n got %q\nwant %q", input, got, want)
				}
			case errors.Is(err, errSSELimit):
				if len(got) > len(want) || fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want[:len(got)]) {
					t.Fatalf("input %q: before the limit got %q, want a prefix of %q", input, got, want)
				}
			default:
				t.Fatalf("input %q: error %v", input, err)
			}
			for _, ev := range got {
				if len(ev.data) > max || strings.ContainsAny(ev.data, "\r") || strings.ContainsAny(ev.typ, "\r\n") {
					t.Fatalf("input %q: event %q is not a complete, clean event", input, ev)
				}
			}
		}
	})
}

func BenchmarkSSE(b *testing.B) {
	var in strings.Builder
	for range 100 {
		in.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" word"}}]}` + "\n\n")
	}
	input := in.String()
	b.SetBytes(int64(len(input)))
	b.ReportAllocs()
	for b.Loop() {
		s := newSSEReader(bufio.NewReader(strings.NewReader(input)), MaxEventBytes)
		for {
			if _, err := s.next(); err != nil {
				break
			}
		}
	}
}

package backend

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// Response heads as model servers write them: Go's net/http (Ollama, the mock), the
// llama.cpp server's cpp-httplib, vLLM's uvicorn.
var plainHeads = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nDate: Sun, 06 Dec 2026 16:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: \r\nContent-Length: 2\r\nContent-Type: application/json; charset=utf-8\r\nKeep-Alive: timeout=5, max=100\r\nServer: llama.cpp\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 16:00:00 GMT\r\nserver: uvicorn\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}",
	"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
}

// TestPlainResponsesSkipNetHTTP: the heads model servers send to a request that is
// not streamed are read by the plain reader, not handed to http.ReadResponse.
func TestPlainResponsesSkipNetHTTP(t *testing.T) {
	for _, head := range plainHeads {
		br := bufio.NewReader(bytes.NewReader([]byte(head)))
		br.Peek(1)
		resp, ok := readPlainResponse(br, &http.Request{Method: http.MethodPost})
		if !ok {
			t.Errorf("the plain reader declined %q", head)
			continue
		}
		if b, err := io.ReadAll(resp.Body); string(b) != "{}" || err != nil {
			t.Errorf("body of %q: %q, %v", head, b, err)
		}
	}
}

// FuzzPlainResponseIsReadResponses: whatever a server sends, the plain reader either
// declines and leaves the reader as it was, or makes of it what http.ReadResponse
// makes — status, protocol, header, length, framing, the body's bytes and how it ends —
// and leaves the reader where http.ReadResponse and its body leave theirs.
func FuzzPlainResponseIsReadResponses(f *testing.F) {
	for _, h := range plainHeads {
		f.Add([]byte(h), false)
		f.Add([]byte(h+"HTTP/1.1 200 OK\r\n"), false)
		f.Add([]byte(h[:len(h)-1]), false)
		f.Add([]byte(h), true)
	}
	for _, h := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 02\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nContent-Length:  2 \t\r\nX-A:\tb c \r\n\r\n{}",
		"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: \x80\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
	} {
		f.Add([]byte(h), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		req := &http.Request{Method: http.MethodPost}
		if head {
			req.Method = http.MethodHead
		}
		br := bufio.NewReaderSize(bytes.NewReader(data), 16<<10)
		br.Peek(1) // as readResponse fills it first
		before, _ := br.Peek(br.Buffered())
		before = bytes.Clone(before)
		got, ok := readPlainResponse(br, req)
		if !ok {
			if after, _ := br.Peek(br.Buffered()); !bytes.Equal(after, before) {
				t.Fatalf("declined %q but moved the reader", data)
			}
			return
		}
		wr := bufio.NewReaderSize(bytes.NewReader(data), 16<<10)
		want, err := http.ReadResponse(wr, req)
		if err != nil {
			t.Fatalf("took %q, which http.ReadResponse refuses: %v", data, err)
		}
		type fields struct {
			Status              string
			StatusCode          int
			Proto               string
			ProtoMajor          int
			ProtoMinor          int
			Header              http.Header
			ContentLength       int64
			Close, Uncompressed bool
			TransferEncoding    []string
			Trailer             http.Header
			NoBody, SameRequest bool
		}
		of := func(r *http.Response) fields {
			return fields{r.Status, r.StatusCode, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Header, r.ContentLength,
				r.Close, r.Uncompressed, r.TransferEncoding, r.Trailer, r.Body == http.NoBody, r.Request == req}
		}
		if g, w := of(got), of(want); !reflect.DeepEqual(g, w) {
			t.Fatalf("for %q:\n got %+v\nwant %+v", data, g, w)
		}
		gb, gerr := io.ReadAll(got.Body)
		wb, werr := io.ReadAll(want.Body)
		if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("body of %q: got %q, %v; want %q, %v", data, gb, gerr, wb, werr)
		}
		gr, _ := io.ReadAll(br)
		wrest, _ := io.ReadAll(wr)
		if !bytes.Equal(gr, wrest) {
			t.Fatalf("after %q the reader holds %q; http.ReadResponse's holds %q", data, gr, wrest)
		}
	})
}

// BenchmarkResponseHead reads a model server's plain response head and body with the
// plain reader and with http.ReadResponse.
func BenchmarkResponseHead(b *testing.B) {
	data := []byte(plainHeads[0])
	req := &http.Request{Method: http.MethodPost}
	for _, c := range []struct {
		name string
		read func(*bufio.Reader) (*http.Response, error)
	}{
		{"plain", func(br *bufio.Reader) (*http.Response, error) { return readResponse(br, req) }},
		{"net-http", func(br *bufio.Reader) (*http.Response, error) { return http.ReadResponse(br, req) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := bytes.NewReader(data)
			br := bufio.NewReaderSize(r, 16<<10)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(data)
				br.Reset(r)
				resp, err := c.read(br)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

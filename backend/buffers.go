package backend

import (
	"bytes"
	"sync"
)

// exchangeBufs hold a request body while it is sent and an answer while it is decoded:
// neither outlives the exchange (the decoders copy every string they keep), so a
// node does not allocate and grow one of each per request.
var exchangeBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf is the largest buffer put back: a rare huge answer is not kept.
const maxPooledBuf = 64 << 10

func getBuf() *bytes.Buffer {
	b := exchangeBufs.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		exchangeBufs.Put(b)
	}
}

package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// nodeTimes is a reading of the node's own histogram of the time a chat spends in it
// (sios_chat_node_seconds: authentication to answer, less the time waiting for the
// model server): cumulative counts by upper bound, in seconds, ascending, +Inf last.
// The bench's overhead is the difference between two end-to-end latencies, which
// carries the load generator's and the loopback's noise; this is the node's side alone.
type nodeTimes struct {
	bounds []float64
	counts []float64
}

// readNodeTimes takes the histogram out of a Prometheus text exposition.
func readNodeTimes(r io.Reader) (nodeTimes, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nodeTimes{}, fmt.Errorf("metrics: %v", err)
	}
	f := fams["sios_chat_node_seconds"]
	if f == nil || f.GetType() != dto.MetricType_HISTOGRAM || len(f.Metric) != 1 {
		return nodeTimes{}, fmt.Errorf("metrics: no sios_chat_node_seconds histogram")
	}
	h := f.Metric[0].GetHistogram()
	var t nodeTimes
	for _, b := range h.GetBucket() {
		if le := b.GetUpperBound(); len(t.bounds) > 0 && le <= t.bounds[len(t.bounds)-1] {
			return nodeTimes{}, fmt.Errorf("metrics: sios_chat_node_seconds buckets out of order at le=%v", le)
		}
		t.bounds, t.counts = append(t.bounds, b.GetUpperBound()), append(t.counts, float64(b.GetCumulativeCount()))
	}
	if len(t.bounds) == 0 || !math.IsInf(t.bounds[len(t.bounds)-1], 1) {
		t.bounds, t.counts = append(t.bounds, math.Inf(1)), append(t.counts, float64(h.GetSampleCount()))
	}
	return t, nil
}

// since is the histogram of the chats between an earlier reading and this one.
func (t nodeTimes) since(before nodeTimes) nodeTimes {
	if len(before.counts) != len(t.counts) {
		return t
	}
	d := nodeTimes{bounds: t.bounds, counts: make([]float64, len(t.counts))}
	for i := range t.counts {
		d.counts[i] = t.counts[i] - before.counts[i]
	}
	return d
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile does: linearly
// within the bucket that holds it (from 0 in the first), the highest finite bound when
// it falls beyond every bound; 0 without observations.
func (t nodeTimes) quantile(q float64) time.Duration {
	if len(t.counts) == 0 || t.counts[len(t.counts)-1] <= 0 {
		return 0
	}
	rank := q * t.counts[len(t.counts)-1]
	for i, c := range t.counts {
		if c < rank {
			continue
		}
		if math.IsInf(t.bounds[i], 1) {
			if i == 0 {
				return 0
			}
			return seconds(t.bounds[i-1])
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = t.bounds[i-1], t.counts[i-1]
		}
		if c == below {
			return seconds(t.bounds[i])
		}
		return seconds(lo + (t.bounds[i]-lo)*(rank-below)/(c-below))
	}
	return seconds(t.bounds[len(t.bounds)-2])
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// nodeTimes reads the node's histogram from its metrics listener.
func (nd *benchNode) nodeTimes() (nodeTimes, error) {
	if nd.metrics == "" {
		return nodeTimes{}, fmt.Errorf("the node serves no metrics")
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(nd.metrics)
	if err != nil {
		return nodeTimes{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nodeTimes{}, fmt.Errorf("metrics: status %d", resp.StatusCode)
	}
	return readNodeTimes(io.LimitReader(resp.Body, 16<<20))
}

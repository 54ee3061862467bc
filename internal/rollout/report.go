// Package rollout checks that a rolling update loses no request. It has a
// load generator (Load) that sends steady, bounded traffic and reports what
// failed and how long requests took (Report), and a round-robin reverse
// proxy (Proxy) whose backends can be added and removed while it serves,
// standing in for an ingress that learns of pod changes with some lag.
//
// Nginx and HAProxy run the real proxies, each from a directory of its own
// on a free loopback port, with backends that change as an ingress's
// endpoints do: pooling proxies that reuse idle keep-alive connections.
//
// The rollout simulation tests drive real pingapi processes through these
// proxies; tools/rolloutcheck points the same load generator at a real
// cluster.
package rollout

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Report is what a load run saw.
type Report struct {
	Sent   int // requests that were sent
	Failed int // requests that got a transport error or a non-2xx status
	// Failures counts the failed requests by reason ("status 502",
	// "connection refused", ...), so a report says what went wrong.
	Failures map[string]int
	// Latency percentiles over every request, failed ones included: a
	// request that failed slowly still made a client wait.
	P50, P90, P99, Max time.Duration
	Elapsed            time.Duration // wall time of the run
}

// String is the report on one line, as rolloutcheck prints it.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sent=%d failed=%d p50=%s p90=%s p99=%s max=%s",
		r.Sent, r.Failed, round(r.P50), round(r.P90), round(r.P99), round(r.Max))
	if r.Elapsed > 0 {
		fmt.Fprintf(&b, " elapsed=%s rate=%.0f/s", r.Elapsed.Round(time.Millisecond), float64(r.Sent)/r.Elapsed.Seconds())
	}
	for _, reason := range slices.Sorted(maps.Keys(r.Failures)) {
		fmt.Fprintf(&b, "\n  %d× %s", r.Failures[reason], reason)
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value that at least p% of values do not
// exceed. It returns 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// recorder collects results from concurrent requests.
type recorder struct {
	mu        sync.Mutex
	latencies []time.Duration
	failures  map[string]int
}

func (rec *recorder) record(latency time.Duration, failure string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.latencies = append(rec.latencies, latency)
	if failure != "" {
		if rec.failures == nil {
			rec.failures = map[string]int{}
		}
		rec.failures[failure]++
	}
}

func (rec *recorder) report(elapsed time.Duration) Report {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	sorted := slices.Clone(rec.latencies)
	slices.Sort(sorted)
	r := Report{
		Sent:     len(sorted),
		Failures: maps.Clone(rec.failures),
		P50:      Percentile(sorted, 50),
		P90:      Percentile(sorted, 90),
		P99:      Percentile(sorted, 99),
		Max:      Percentile(sorted, 100),
		Elapsed:  elapsed,
	}
	for _, n := range rec.failures {
		r.Failed += n
	}
	return r
}

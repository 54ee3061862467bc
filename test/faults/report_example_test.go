//go:build unix

package faults_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// drain stops the load, waits until every job and change has been handled,
// and stops the workers and pingapi so that their logs are complete.
func (s *suite) drain() {
	s.run("drain", func(p *phase) {
		close(s.stop)
		done := make(chan struct{})
		go func() {
			for _, wg := range s.loads {
				wg.Wait()
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			p.fail("clients still retrying 60s after the load stopped; cancelled")
			s.cancelLoad()
			<-done
		}
		if err := poll(90*time.Second, 200*time.Millisecond, "JOBS and CHANGES consumed", s.consumed); err != nil {
			p.fail("%v; %s", err, s.backlog())
		}
	})
	for _, w := range s.workers {
		if err := w.proc.stop(30 * time.Second); err != nil {
			s.t.Error(err)
		}
	}
	if err := s.pingapi.stop(30 * time.Second); err != nil {
		s.t.Error(err)
	}
}

// consumed reports whether JOBS is empty and every change-feed consumer has
// nothing pending or unacknowledged.
func (s *suite) consumed() bool {
	st, err := s.js.Stream(s.ctx, "JOBS")
	if err != nil {
		return false
	}
	info, err := st.Info(s.ctx)
	if err != nil || info.State.Msgs != 0 {
		return false
	}
	for p := range partitions {
		c, err := s.js.Consumer(s.ctx, "CHANGES", "changefeed-"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		ci, err := c.Info(s.ctx)
		if err != nil || ci.NumPending != 0 || ci.NumAckPending != 0 {
			return false
		}
	}
	return true
}

// backlog describes what is left unconsumed, for a drain that timed out.
func (s *suite) backlog() string {
	var parts []string
	if msgs, _, err := s.streamCount("JOBS"); err == nil {
		parts = append(parts, fmt.Sprintf("JOBS holds %d", msgs))
	}
	describe := func(stream, name string) {
		c, err := s.js.Consumer(s.ctx, stream, name)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", name, err))
			return
		}
		ci, err := c.Info(s.ctx)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", name, err))
			return
		}
		if stream == "JOBS" || ci.NumPending+uint64(ci.NumAckPending) > 0 {
			parts = append(parts, fmt.Sprintf("%s: pending %d, ack pending %d, waiting pulls %d, redelivered %d",
				name, ci.NumPending, ci.NumAckPending, ci.NumWaiting, ci.NumRedelivered))
		}
	}
	describe("JOBS", "jobs-worker")
	for p := range partitions {
		describe("CHANGES", "changefeed-"+strconv.Itoa(p))
	}
	return strings.Join(parts, "; ")
}

// streamCount returns a stream's message count and last sequence.
func (s *suite) streamCount(name string) (msgs, last uint64, err error) {
	st, err := s.js.Stream(s.ctx, name)
	if err != nil {
		return 0, 0, err
	}
	info, err := st.Info(s.ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.State.Msgs, info.State.LastSeq, nil
}

// check reads the workers' logs, prints the report and asserts the
// promises.
func (s *suite) check() {
	t := s.t
	var logs workerLogs
	for _, w := range s.workers {
		if err := logs.read(w.instance, w.proc.logFiles()...); err != nil {
			t.Fatal(err)
		}
	}
	phaseOf := func(at time.Time) int {
		i := 0
		for j, p := range s.phases {
			if !p.start.After(at) {
				i = j
			}
		}
		return i
	}
	s.jobs.mu.Lock()
	accepted := s.jobs.accepted
	answers := s.jobs.answers
	pending, rejected := len(s.jobs.pending), len(s.jobs.rejected)
	s.jobs.mu.Unlock()
	jf := analyzeJobs(accepted, logs.jobs, phaseOf)
	cf := analyzeChanges(s.changes.acknowledged(), logs.changes, phaseOf)
	s.report(jf, cf, answers)

	var jobs jobFigures
	var changes changeFigures
	for i, p := range s.phases {
		for _, pr := range p.problems {
			t.Errorf("%s: %s", p.name, pr)
		}
		if f := jf[i]; f != nil {
			jobs.add(f)
		}
		if f := cf[i]; f != nil {
			changes.add(f)
		}
	}
	for _, p := range append([]*process{s.pingapi}, s.procs()...) {
		for _, u := range p.unexpectedExits() {
			t.Errorf("unexpected exit: %s", u)
		}
	}
	if len(logs.jobs) == 0 {
		t.Errorf(`no "job" log lines: every handled job must log msg "job" with subject, msg_id, seq, attempt, outcome`)
	}
	withoutToken := 0
	for _, c := range logs.changes {
		if !c.hasToken {
			withoutToken++
		}
	}
	if withoutToken > 0 {
		t.Errorf(`%d of %d "change" lines lack fencing_token`, withoutToken, len(logs.changes))
	}
	expect := func(what string, got int, examples []string) {
		switch {
		case got == 0:
		case len(examples) == 0:
			t.Errorf("%s = %d, want 0", what, got)
		default:
			t.Errorf("%s = %d, want 0; e.g. %s", what, got, strings.Join(examples, "; "))
		}
	}
	expect("jobs lost", jobs.lost, jobs.examples)
	expect("jobs stored twice (log)", jobs.storedTwice, jobs.examples)
	expect("changes lost", changes.lost, changes.examples)
	expect("per-key order violations", changes.order, changes.examples)
	expect("duplicate handlings of a change", changes.duplicates, changes.examples)
	expect("jobs still unanswered at the end", pending, nil)
	expect("jobs rejected with 4xx", rejected, nil)
	// 503 (not stored) and 504 (maybe stored) are what tells a client to
	// retry; any other 5xx leaves it guessing.
	other5xx := 0
	for _, a := range answers {
		other5xx += a[out5xx]
	}
	expect("POSTs answered with a 5xx other than 503 and 504", other5xx, nil)

	_, stored, err := s.streamCount("JOBS")
	if err != nil {
		t.Errorf("JOBS: %v", err)
	}
	t.Logf("JOBS stored %d messages for %d accepted ids (%d unanswered)", stored, len(accepted), pending)
	if extra := int(stored) - len(accepted) - pending; extra > 0 {
		t.Errorf("JOBS stored %d messages for %d accepted job ids: %d stored twice by retries with the same id", stored, len(accepted), extra)
	}
	if dlq, _, err := s.streamCount("DLQ"); err != nil || dlq != 0 {
		t.Errorf("DLQ holds %d messages (%v), want 0", dlq, err)
	}
}

func (s *suite) procs() []*process {
	var ps []*process
	for _, w := range s.workers {
		ps = append(ps, w.proc)
	}
	for _, n := range s.cluster.nodes {
		ps = append(ps, n.proc)
	}
	return ps
}

func (f *jobFigures) add(g *jobFigures) {
	f.accepted += g.accepted
	f.lost += g.lost
	f.storedTwice += g.storedTwice
	f.redeliveries += g.redeliveries
	for _, e := range g.examples {
		f.example(e)
	}
}

func (f *changeFigures) add(g *changeFigures) {
	f.published += g.published
	f.lost += g.lost
	f.order += g.order
	f.duplicates += g.duplicates
	f.redeliveries += g.redeliveries
	for _, e := range g.examples {
		f.example(e)
	}
}

// report prints one row per phase.
func (s *suite) report(jf map[int]*jobFigures, cf map[int]*changeFigures, answers map[int]map[string]int) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "fault\ttakeover\tPOST 202\t503\t504\t5xx\tother\ttransport\tjobs\tlost\ttwice\tredeliv\tchanges\tlost\torder\tdup\tredeliv\t")
	for i, p := range s.phases {
		j, c, a := jf[i], cf[i], answers[i]
		if j == nil {
			j = &jobFigures{}
		}
		if c == nil {
			c = &changeFigures{}
		}
		takeover := "-"
		if p.takeover > 0 {
			takeover = p.takeover.Round(10 * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", p.name, takeover,
			a[out202], a[out503], a[out504], a[out5xx], a[outOther], a[outTransport],
			j.accepted, j.lost, j.storedTwice, j.redeliveries,
			c.published, c.lost, c.order, c.duplicates, c.redeliveries)
	}
	w.Flush()
	s.t.Logf("fault table (takeover: worker faults until peers hold all the victim's leases; "+
		"leader kill until JOBS has a new leader; pingapi node until pingapi is connected elsewhere; "+
		"cluster down from restart to the first 202)\n%s", b.String())
	for i, p := range s.phases {
		var ex []string
		if f := jf[i]; f != nil {
			ex = append(ex, f.examples...)
		}
		if f := cf[i]; f != nil {
			ex = append(ex, f.examples...)
		}
		if len(ex) > 0 {
			s.t.Logf("%s: %s", p.name, strings.Join(slices.Compact(ex), "\n    "))
		}
	}
}

package faults_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"
)

// jobEvent is a worker's "job" log line.
type jobEvent struct {
	at       time.Time
	instance string
	subject  string
	msgID    string
	seq      uint64
	attempt  int
	outcome  string
}

// changeEvent is a worker's "change" log line. hasToken is false for a line
// without fencing_token.
type changeEvent struct {
	at        time.Time
	instance  string
	key       string
	partition int
	seq       uint64
	token     uint64
	hasToken  bool
}

// workerLogs is what the suite reads from the workers' JSON logs.
type workerLogs struct {
	jobs    []jobEvent
	changes []changeEvent
	// other counts lines that are not JSON (a panic's trace, a runtime
	// message), which the report shows.
	other int
}

// readWorkerLogs parses the log files of one instance.
func (w *workerLogs) read(instance string, files ...string) error {
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			w.parse(instance, sc.Bytes())
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read %s: %w", f, err)
		}
	}
	return nil
}

// parse takes one line; lines of other messages are ignored.
func (w *workerLogs) parse(instance string, line []byte) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		if len(bytes.TrimSpace(line)) > 0 {
			w.other++
		}
		return
	}
	at, _ := time.Parse(time.RFC3339Nano, str(m["time"]))
	switch m["msg"] {
	case "job":
		w.jobs = append(w.jobs, jobEvent{
			at: at, instance: instance, subject: str(m["subject"]), msgID: str(m["msg_id"]),
			seq: num(m["seq"]), attempt: int(num(m["attempt"])), outcome: str(m["outcome"]),
		})
	case "change":
		_, hasToken := m["fencing_token"]
		w.changes = append(w.changes, changeEvent{
			at: at, instance: instance, key: str(m["key"]), partition: int(num(m["partition"])),
			seq: num(m["seq"]), token: num(m["fencing_token"]), hasToken: hasToken,
		})
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// num reads a JSON number, or a number written as a string (a uint64
// beyond 2^53 may be logged either way).
func num(v any) uint64 {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f < 0 {
			return 0
		}
		return uint64(f)
	}
	return n
}

// published is a change its writer saw acknowledged.
type published struct {
	key   string
	n     int
	seq   uint64
	phase int
}

// phaseOf maps a time to the phase it falls in: the last phase that began
// at or before it (0 before the first).
type phaseOf func(time.Time) int

// changeFigures are the change-feed counts of one phase.
type changeFigures struct {
	published, lost, order, duplicates, redeliveries int
	// examples describe the first few violations, for the report.
	examples []string
}

// analyzeChanges checks the handled changes against the acknowledged ones.
// Lost changes are counted under the phase they were written in, the other
// figures under the phase the offending handling happened in. See the
// package documentation for the definitions.
func analyzeChanges(acks []published, events []changeEvent, phase phaseOf) map[int]*changeFigures {
	figs := map[int]*changeFigures{}
	fig := func(p int) *changeFigures {
		if figs[p] == nil {
			figs[p] = &changeFigures{}
		}
		return figs[p]
	}
	events = slices.Clone(events)
	slices.SortStableFunc(events, func(a, b changeEvent) int { return a.at.Compare(b.at) })

	handled := map[uint64]changeEvent{} // seq -> first handling
	newest := map[string]changeEvent{}  // key -> handling of its highest seq so far
	maxToken := map[int]uint64{}        // partition -> highest token seen
	for _, e := range events {
		f := fig(phase(e.at))
		first, seen := handled[e.seq]
		last, ok := newest[e.key]
		newer := ok && last.seq > e.seq
		stale := e.hasToken && e.token < maxToken[e.partition]
		// A later owner resuming from the partition's checkpoint replays,
		// in order, what its crashed predecessor handled but had not
		// acknowledged: at least once, not a duplicate.
		replay := e.hasToken && last.hasToken && e.token > last.token
		switch {
		case stale:
			f.duplicates++
			f.example(fmt.Sprintf("%s handled key %s seq %d with fencing token %d after token %d was used on partition %d",
				e.instance, e.key, e.seq, e.token, maxToken[e.partition], e.partition))
		case seen && newer && !replay:
			f.duplicates++
			f.example(fmt.Sprintf("%s handled key %s seq %d again (first by %s) after seq %d of the key",
				e.instance, e.key, e.seq, first.instance, last.seq))
		case seen:
			f.redeliveries++
		case newer:
			f.order++
			f.example(fmt.Sprintf("%s handled key %s seq %d first, after seq %d of the key", e.instance, e.key, e.seq, last.seq))
		}
		if !seen {
			handled[e.seq] = e
		}
		if !newer {
			newest[e.key] = e
		}
		if e.hasToken {
			maxToken[e.partition] = max(maxToken[e.partition], e.token)
		}
	}
	for _, a := range acks {
		f := fig(a.phase)
		f.published++
		if _, ok := handled[a.seq]; !ok {
			f.lost++
			f.example(fmt.Sprintf("change %s #%d (seq %d) never handled", a.key, a.n, a.seq))
		}
	}
	return figs
}

func (f *changeFigures) example(s string) {
	if len(f.examples) < 3 {
		f.examples = append(f.examples, s)
	}
}

// jobFigures are the queue counts of one phase.
type jobFigures struct {
	accepted, lost, storedTwice, redeliveries int
	examples                                  []string
}

func (f *jobFigures) example(s string) {
	if len(f.examples) < 3 {
		f.examples = append(f.examples, s)
	}
}

// analyzeJobs checks the handled jobs against the accepted ids (id -> phase
// of its first POST). A job lost or stored twice is counted under the phase
// it was posted in; a redelivery under the phase it happened in.
func analyzeJobs(accepted map[string]int, events []jobEvent, phase phaseOf) map[int]*jobFigures {
	figs := map[int]*jobFigures{}
	fig := func(p int) *jobFigures {
		if figs[p] == nil {
			figs[p] = &jobFigures{}
		}
		return figs[p]
	}
	done := map[string]map[uint64]int{}  // msg_id -> seq -> "done" lines
	seqs := map[string]map[uint64]bool{} // msg_id -> every seq it was handled under
	for _, e := range events {
		if seqs[e.msgID] == nil {
			seqs[e.msgID], done[e.msgID] = map[uint64]bool{}, map[uint64]int{}
		}
		seqs[e.msgID][e.seq] = true
		if e.outcome != "done" {
			continue
		}
		done[e.msgID][e.seq]++
		if done[e.msgID][e.seq] > 1 {
			fig(phase(e.at)).redeliveries++
		}
	}
	for _, id := range slices.Sorted(maps.Keys(accepted)) {
		f := fig(accepted[id])
		f.accepted++
		if len(done[id]) == 0 {
			f.lost++
			f.example(fmt.Sprintf("job %s accepted but never done", id))
		}
		if n := len(seqs[id]); n > 1 {
			f.storedTwice++
			f.example(fmt.Sprintf("job %s stored %d times (seqs %v)", id, n, slices.Sorted(maps.Keys(seqs[id]))))
		}
	}
	return figs
}

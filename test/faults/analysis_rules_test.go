package faults_test

import (
	"reflect"
	"testing"
	"time"
)

// The analysis is what makes the suite able to fail: these tests feed it
// handcrafted histories, one rule each.

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func onePhase(time.Time) int { return 0 }

func change(ms int, instance, key string, seq, token uint64) changeEvent {
	return changeEvent{at: at(ms), instance: instance, key: key, partition: 1, seq: seq, token: token, hasToken: true}
}

func TestAnalyzeChanges(t *testing.T) {
	acks := []published{{key: "k", n: 1, seq: 10}, {key: "k", n: 2, seq: 11}, {key: "k", n: 3, seq: 12}}
	tests := []struct {
		name   string
		events []changeEvent
		want   changeFigures
	}{
		{"in order, once", []changeEvent{
			change(1, "a", "k", 10, 5), change(2, "a", "k", 11, 5), change(3, "a", "k", 12, 5),
		}, changeFigures{published: 3}},
		{"one never handled", []changeEvent{
			change(1, "a", "k", 10, 5), change(3, "a", "k", 12, 5),
		}, changeFigures{published: 3, lost: 1}},
		{"handled out of order", []changeEvent{
			change(1, "a", "k", 10, 5), change(2, "a", "k", 12, 5), change(3, "a", "k", 11, 5),
		}, changeFigures{published: 3, order: 1}},
		{"redelivered to the next owner after a crash before the ack", []changeEvent{
			change(1, "a", "k", 10, 5), change(2, "a", "k", 11, 5),
			change(3, "b", "k", 11, 9), change(4, "b", "k", 12, 9),
		}, changeFigures{published: 3, redeliveries: 1}},
		{"a resumed owner replays a change after a newer one", []changeEvent{
			change(1, "a", "k", 10, 5), change(2, "b", "k", 10, 9), change(3, "b", "k", 11, 9),
			change(4, "a", "k", 10, 5), change(5, "b", "k", 12, 9),
		}, changeFigures{published: 3, duplicates: 1, redeliveries: 1}},
		{"a new owner replays from the checkpoint what a crashed one left unacknowledged", []changeEvent{
			change(1, "a", "k", 10, 5), change(2, "a", "k", 11, 5), change(3, "a", "k", 12, 5),
			change(4, "b", "k", 11, 9), change(5, "b", "k", 12, 9),
		}, changeFigures{published: 3, redeliveries: 2}},
		{"one owner replays an older change", []changeEvent{
			change(1, "a", "k", 10, 5), change(2, "a", "k", 11, 5), change(3, "a", "k", 10, 5), change(4, "a", "k", 12, 5),
		}, changeFigures{published: 3, duplicates: 1}},
		{"a stale owner handles with a lower fencing token", []changeEvent{
			change(1, "b", "k", 10, 9), change(2, "a", "k", 11, 5), change(3, "b", "k", 12, 9),
		}, changeFigures{published: 3, duplicates: 1}},
		{"a replay without tokens is still seen", []changeEvent{
			{at: at(1), instance: "a", key: "k", seq: 10}, {at: at(2), instance: "b", key: "k", seq: 11},
			{at: at(3), instance: "a", key: "k", seq: 10}, {at: at(4), instance: "b", key: "k", seq: 12},
		}, changeFigures{published: 3, duplicates: 1}},
		{"events are ordered by time, not by file", []changeEvent{
			change(3, "b", "k", 12, 9), change(1, "a", "k", 10, 5), change(2, "a", "k", 11, 5),
		}, changeFigures{published: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := analyzeChanges(acks, tt.events, onePhase)[0]
			got.examples = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("figures = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestAnalyzeJobs(t *testing.T) {
	job := func(ms int, id string, seq uint64, outcome string) jobEvent {
		return jobEvent{at: at(ms), instance: "a", subject: "jobs.ping", msgID: id, seq: seq, outcome: outcome}
	}
	tests := []struct {
		name   string
		events []jobEvent
		want   jobFigures
	}{
		{"each done once", []jobEvent{job(1, "x", 1, "done"), job(2, "y", 2, "done")}, jobFigures{accepted: 2}},
		{"one never done", []jobEvent{job(1, "x", 1, "retry"), job(2, "y", 2, "done")}, jobFigures{accepted: 2, lost: 1}},
		{"a retry stored a second copy", []jobEvent{
			job(1, "x", 1, "done"), job(2, "x", 3, "done"), job(3, "y", 2, "done"),
		}, jobFigures{accepted: 2, storedTwice: 1}},
		{"one copy run twice", []jobEvent{
			job(1, "x", 1, "done"), job(2, "x", 1, "done"), job(3, "y", 2, "done"),
		}, jobFigures{accepted: 2, redeliveries: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := analyzeJobs(map[string]int{"x": 0, "y": 0}, tt.events, onePhase)[0]
			got.examples = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("figures = %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestParseLogLines(t *testing.T) {
	var w workerLogs
	for _, line := range []string{
		`{"time":"2026-01-01T00:00:00.5Z","level":"INFO","msg":"job","subject":"jobs.ping","msg_id":"job-1","seq":7,"attempt":2,"took":"5ms","outcome":"done"}`,
		`{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"change","key":"k1","partition":3,"seq":42,"fencing_token":18446744073709551615,"bytes":9}`,
		`{"time":"2026-01-01T00:00:02Z","level":"INFO","msg":"change","key":"k2","partition":4,"seq":43,"bytes":9}`,
		`{"time":"2026-01-01T00:00:03Z","level":"INFO","msg":"request"}`,
		`panic: boom`,
		``,
	} {
		w.parse("a", []byte(line))
	}
	wantJob := jobEvent{at: t0.Add(500 * time.Millisecond), instance: "a", subject: "jobs.ping", msgID: "job-1", seq: 7, attempt: 2, outcome: "done"}
	if len(w.jobs) != 1 || w.jobs[0] != wantJob {
		t.Errorf("jobs = %+v, want [%+v]", w.jobs, wantJob)
	}
	wantChanges := []changeEvent{
		{at: t0.Add(time.Second), instance: "a", key: "k1", partition: 3, seq: 42, token: 1<<64 - 1, hasToken: true},
		{at: t0.Add(2 * time.Second), instance: "a", key: "k2", partition: 4, seq: 43},
	}
	if len(w.changes) != 2 || w.changes[0] != wantChanges[0] || w.changes[1] != wantChanges[1] {
		t.Errorf("changes = %+v, want %+v", w.changes, wantChanges)
	}
	if w.other != 1 {
		t.Errorf("other lines = %d, want 1", w.other)
	}
}

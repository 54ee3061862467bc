// Package faults holds the fault suite (make test-faults): it runs a real
// three-node JetStream cluster of nats-server processes on loopback, worker
// and pingapi processes against it, drives jobs and changes through them and
// injects faults one at a time (a worker stopped, killed or paused past its
// lease TTL; the stream leader node killed; a node workers use frozen; the
// node pingapi uses frozen; the whole cluster down), then reads the workers' JSON logs and checks that
// nothing was lost, reordered or handled twice.
//
// The suite drives the example app (POST /pingpong/jobs, the example
// change handler's log line), so its files are named *_example_test.go and
// tools/strip removes them with the example; the log analysis and its
// tests stay. The package has no code of its own; the suite's tests skip
// under `go test -short` and unless HOSTKIT_FAULTS=1 (make test-faults sets
// it), so that `go test ./...` does not run a CPU-heavy cluster alongside the
// other packages' tests. It needs a Unix (it pauses processes with SIGSTOP).
//
// What the suite counts, from the log lines of the worker's contract (msg
// "job": subject, msg_id, seq, attempt, outcome; msg "change": key,
// partition, seq, fencing_token):
//
//   - job lost: a job id answered 202 by POST /pingpong/jobs that no "job"
//     line reports done;
//   - job stored twice: a job id handled under more than one stream sequence,
//     i.e. a client's retry with the same id stored a second copy (also
//     counted from the stream: stored jobs minus accepted ids);
//   - job redelivery (reported, allowed): one stored job (same seq) handled
//     more than once, which at-least-once delivery permits after a crash;
//   - change lost: a change acknowledged to its writer that no "change" line
//     reports;
//   - order violation: a change handled for the first time after a newer
//     change of its key (higher stream sequence) had been handled;
//   - duplicate: a change handled with a fencing token below one already
//     used for its partition (by an owner that had lost the lease: a sink
//     that checks fencing tokens would reject that write, so the handler
//     must never see it), or handled again after a newer change of its key
//     had been handled, other than in a later owner's replay (below);
//   - change redelivery (reported, allowed): a change handled again and not a
//     duplicate: while still the newest handled change of its key, or by a
//     later owner (higher fencing token than the newer change's handling)
//     resuming from the partition's checkpoint, as after a worker killed
//     between handling changes and acknowledging them. A sink that keeps the
//     highest sequence applied per key accepts each change once.
//
// Events are ordered by their log timestamps; all processes run on one
// machine and share its clock.
package faults

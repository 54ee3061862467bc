// Package changefeed provides a change-feed processor in the manner of the
// Cosmos DB Change Feed Processor: the replicas of a worker share the
// partitions of a feed among themselves with leases, each partition being
// processed by one replica at a time, in order.
//
// Writers publish a change of key k to changes.k on the JetStream stream
// CHANGES. The stream's subject transform hashes the key into one of
// Config.Partitions partitions, storing the change as changes.<p>.k, so all
// changes of a key share a partition. Each partition has a durable consumer
// whose ack floor is the partition's checkpoint, kept by the server, so a
// partition resumes where it stopped whichever replica picks it up. The
// owner pulls up to Config.Batch changes at once (MaxAckPending is twice
// that, so the next pull is served while the last batch's acknowledgements
// are in flight) and hands them to the handler one at a time, in order,
// acknowledging each without waiting for the server's answer (each
// acknowledgement asks for one of its own). It waits for the answer before
// handling a change whose key has one unanswered, before a reset and before
// giving the lease up, so a consumer leader that dies with acknowledgements
// unapplied can bring back only the newest handled change of each key,
// never one older than a change handled since. Once a full batch is on the
// client, the next pull goes out while it is handled. A failing change is
// retried in place, holding up the rest of its partition. A new owner first resets the consumer to its ack
// floor, so whatever a previous owner held comes again, first and in
// order; a gap in the delivery sequence (another pull received changes)
// makes it drop the batch and reset again (see consume).
//
// # Leases
//
// Who processes a partition is decided by leases in the key-value bucket
// changefeed-leases: key = partition, value = the owning instance's name;
// beside them, key member.<instance> is each live replica's heartbeat.
// Three goroutines per replica share the work, so that none waits behind
// another:
//
//   - the renewer rewrites the heartbeat and every held lease each
//     RenewInterval. A renewal names the revision last written, so it
//     either proves nobody took the lease or fails;
//   - the view watches the bucket: the server pushes each write to every
//     replica once, so no replica reads leases, and the cluster's lease
//     traffic per interval is one renewal per partition plus one heartbeat
//     per replica;
//   - the balancer acts on the view. Every replica computes the same
//     target from it (see Balance): quotas by sorted member name; each
//     member keeps its lowest partitions up to its quota; every other
//     partition (a surplus still held, a free or expired lease, a departed
//     peer's lease not yet released) is dealt in partition order to the
//     members short of their quota. Carrying the target out leaves it
//     unchanged, so replicas whose views lag each other by a few writes
//     still agree: each releases exactly what the target gives to others
//     and takes exactly its own, the moment it is free. A replica
//     announces itself as soon as the bucket exists, before provisioning
//     its consumers, and a membership change is acted on once it has been
//     stable for RenewInterval/2 (departures at once), so replicas
//     starting together count each other; the spread is then even within
//     about one interval, and no partition changes owner more than once
//     per membership change. Nothing is ever taken from a live owner.
//
// A peer judges a lease (or heartbeat) expired when its revision has not
// changed for LeaseTTL since the peer first saw it, by the peer's own
// monotonic clock (see leases.go).
//
// # Fencing
//
// A replica uses a lease only until its fencing deadline: the monotonic
// time the last successful renewal was sent + LeaseTTL − Margin
// (LeaseTTL/10). No peer can judge the lease expired before then. The
// deadline is checked right before a change is handed to the handler and
// right before its verdict (Ack/Nak) is sent, and a pull is only sent while
// the lease stays usable for longer than the pull waits. Go's monotonic
// clock keeps counting while the process is stopped, so a replica resumed
// after SIGSTOP fails the check before it handles anything; its lapsed
// leases are dropped on the spot. A renewal that succeeds late still
// proves the lease unchanged, so nothing is lost by a short stall. Each
// Change carries FencingToken, the revision that acquired its lease:
// larger for every later owner, so a sink can refuse a stale owner's
// writes that were in flight when it froze.
//
// # Takeover bounds
//
// With T = LeaseTTL, I = RenewInterval and a round trip to the server of
// a few milliseconds (defaults: T = 30s, I = 10s):
//
//   - Stop (SIGTERM): the replica leaves the members at once, finishes its
//     in-flight changes (at most the slowest handler, plus up to FetchWait
//     for an outstanding pull), then deletes its leases; a departure
//     needs no settling, so the peers take each lease within a round
//     trip of its release, each the ones the target deals it;
//   - death (SIGKILL, a lost machine): the peers take the leases within
//     T of the last renewal plus a few round trips, at most T + I/2 (35s
//     by default);
//   - a pause (SIGSTOP, a GC or VM stall) longer than the lease's remaining
//     usable time: like death for the peers; the paused replica handles and
//     acknowledges nothing after its deadline, gives its leases up on
//     resuming and rejoins as a new member. A shorter pause changes nothing.
//
// A change that the dead or paused replica had fetched but not settled is
// redelivered after AckWait (at once if the replica resumes within AckWait
// and hands it back).
//
// Delivery is at least once: a handler that runs longer than AckWait, or a
// replica that dies between handling a change and acknowledging it, sees a
// change again.
package changefeed

// Package changefeed provides a change-feed processor in the manner of the
// Cosmos DB Change Feed Processor: the replicas of a worker share the
// partitions of a feed among themselves with leases, each partition being
// processed by one replica at a time, in order.
//
// Writers publish a change of key k to changes.k on the JetStream stream
// CHANGES. The stream's subject transform hashes the key into one of
// Config.Partitions partitions, storing the change as changes.<p>.k, so all
// changes of a key share a partition. Each partition has a durable consumer
// that hands out one change at a time (MaxAckPending 1); its ack floor is
// the partition's checkpoint, kept by the server, so a partition resumes
// where it stopped whichever replica picks it up.
//
// Who processes a partition is decided by leases in the key-value bucket
// changefeed-leases: key = partition, value = the owning instance's name.
// Every RenewInterval, each replica renews its leases, reads all of them and
// acquires what Balance tells it to: free or expired leases up to its fair
// share, else one lease stolen from the busiest replica. A renewal or
// acquisition names the revision it read, so two replicas can never both
// win a lease. A replica that finds its lease taken cancels that
// partition's handler at once; the change it was handling is redelivered to
// the new owner. On Stop, a replica finishes its in-flight changes and then
// deletes its leases, so that its peers take them within one
// RenewInterval; the leases of a replica that died without stopping expire
// after LeaseTTL, judged by each peer from when it first read the lease's
// last revision, so a peer takes them within LeaseTTL plus up to two
// RenewIntervals.
//
// "One replica at a time" is true up to one RenewInterval: a replica whose
// lease was stolen learns it at its next renewal, and until then both it and
// the new owner may fetch from the partition. The consumer's MaxAckPending 1
// still hands the partition's changes out one at a time and in order, so
// the overlap costs neither order nor a change.
//
// Delivery is at least once: a handler that runs longer than AckWait, or a
// replica that dies between handling a change and acknowledging it, sees a
// change again.
package changefeed

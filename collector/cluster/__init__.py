"""Vigil across hosts on NATS JetStream (`vigil.role` other than `all`): collectors publish
their journal's records to a stream partitioned by tenant shard, workers take shards through
durable consumers under a lease, the control role stores the workers' alerts. See
docs/scale-out.md."""

//! Reads the partitions that other writers own, as they append to them.
//!
//! Commands look up aggregates of any shard (an account, a deal, a delegation), and a writer
//! that takes a shard over should have little left to read: so every writer folds every
//! partition. One consumer reads them all from where the start left them; the records of
//! partitions this writer serves (or is taking or giving up) are passed over, since their
//! state moves with its own appends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Role, Writer};

/// Read a partition again from `offset`: asked by the state's `follow_from` `generation`.
pub(super) struct Seek {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub generation: u64,
}

/// A quiet spell after which the consumer's positions (which pass transaction markers,
/// never delivered as records) are taken as read, so that a lookup finds the state at the
/// log's end without reading it.
const QUIET: Duration = Duration::from_millis(20);

impl Writer {
    /// Folds the records of the partitions it follows until `shutdown`. `seeks`: partitions
    /// to read again from an offset (one this writer gave up), each with the `follow_from`
    /// of its state that asked for it: no record of the partition is folded until then, since
    /// the consumer passed over records while this writer owned it.
    pub(super) async fn follow(self: Arc<Self>, mut seeks: mpsc::UnboundedReceiver<Seek>, shutdown: CancellationToken) {
        let consumer: StreamConsumer = match tidemark_log::reader(&self.config.brokers, &format!("{}-follower", self.config.client_id())).create() {
            Ok(consumer) => consumer,
            Err(e) => return tracing::error!(error = %e, "the writer cannot follow the other writers' partitions"),
        };
        let mut assignment = TopicPartitionList::new();
        for partition in self.partitions.values() {
            let from = partition.lock().await.next_offset;
            assignment.add_partition_offset(&partition.topic, partition.partition, Offset::Offset(from)).expect("a valid partition");
        }
        if let Err(e) = consumer.assign(&assignment) {
            return tracing::error!(error = %e, "the writer cannot follow the other writers' partitions");
        }
        let consumer = tidemark_log::ClosesInBackground::new(consumer);
        // By partition, the last seek done (see `PartitionState::follow_from`).
        let mut sought: BTreeMap<(String, i32), u64> = BTreeMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(Seek { topic, partition, offset, generation }) = seeks.recv() => {
                    if let Err(e) = consumer.seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(5)) {
                        tracing::warn!(topic, partition, offset, error = %e, "cannot follow a partition again; lookups read it to its end instead");
                        continue;
                    }
                    sought.insert((topic, partition), generation);
                }
                received = tokio::time::timeout(QUIET, consumer.recv()) => match received {
                    Ok(Ok(message)) => {
                        let key = (message.topic().to_string(), message.partition());
                        let Some(partition) = self.partitions.get(&key).filter(|p| p.role() == Role::Following) else { continue };
                        let decoded = self.codec.decode(message.payload()).await;
                        if decoded.as_ref().is_err_and(|e| e.is_retryable()) {
                            // The registry is away: read it again once it answers.
                            tracing::warn!(topic = key.0, partition = key.1, "a followed record cannot be decoded yet; reading it again");
                            let _ = consumer.seek(&key.0, key.1, Offset::Offset(message.offset()), Duration::from_secs(5));
                            partition.lock().await.position_trusted = false;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            continue;
                        }
                        let mut state = partition.lock().await;
                        let current = sought.get(&key).copied().unwrap_or(0) == state.follow_from;
                        if partition.role() == Role::Following && current && message.offset() >= state.next_offset {
                            self.fold_record(&mut state, (message.topic(), message.partition(), message.offset()), message.key(), decoded);
                            state.next_offset = message.offset() + 1;
                            state.position_trusted = true;
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "following the other writers' partitions");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(_) => self.read_to_positions(&consumer).await,
                },
            }
        }
    }

    /// After a quiet spell every record delivered is folded: what lies between a followed
    /// partition's state and the consumer's position is transaction markers.
    async fn read_to_positions(&self, consumer: &StreamConsumer) {
        let followed: Vec<(String, i32)> = self.partitions.iter().filter(|(_, p)| p.role() == Role::Following).map(|(key, _)| key.clone()).collect();
        let Ok(positions): Result<BTreeMap<(String, i32), i64>, _> = tidemark_log::positions(consumer, followed) else { return };
        for (key, position) in positions {
            let partition = &self.partitions[&key];
            let mut state = partition.lock().await;
            if partition.role() == Role::Following && state.position_trusted && position > state.next_offset {
                state.next_offset = position;
            }
        }
    }
}

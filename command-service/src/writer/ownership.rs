//! Which shards this writer owns, as Kafka's group protocol decides.
//!
//! Shard k is partition k of every event topic, so that a command and the records created
//! with it (a lead's conversion) are appended by one writer in one transaction. The writers
//! form one consumer group over a topic with one partition per shard, to which nothing is
//! written: being assigned its partition k is owning shard k. Cooperative-sticky assignment
//! moves only the shards that must move, and static membership (the writer's name) lets a
//! restarted writer take its shards back without a rebalance.
//!
//! Fencing: every transaction of a writer also commits an offset of its shards in this group
//! (`fence`). The group coordinator refuses that from a member that a rebalance has left
//! behind, so a writer that lost a shard without knowing (paused, cut off) commits nothing
//! more, and its client never hears a 2xx. A transaction it committed in time lands before
//! the new owner's fence marker, which the new owner reads past before it serves.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tidemark_schemas::FenceMarker;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{append_failure, codec_failure, unavailable, CommandError, Partition, Role, Writer};
use crate::appender::{Record, Superseded};

/// How long a writer that must give shards up may take to settle their appends in flight
/// (about one commit) before the group goes on without it.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// How long the shards a starting writer serves must stay the same before it takes the
/// group to have settled (unless it serves them all).
const SETTLED: Duration = Duration::from_secs(2);

/// A change of this writer's shards, told by the group.
pub(super) enum Change {
    Gained(Vec<i32>),
    /// The group waits (up to `RELEASE_WAIT`) until `released` is answered.
    Lost { shards: Vec<i32>, released: SyncSender<()> },
    /// The member can do nothing more (its client's error is fatal): for example, its
    /// session ended while the coordinator moved, and its own new session fenced the old.
    Expelled(String),
}

struct GroupContext {
    changes: mpsc::UnboundedSender<Change>,
    /// Set when the membership is dropped: closing the consumer revokes its partitions, and
    /// nobody waits to answer.
    closing: AtomicBool,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            if self.closing.load(Ordering::SeqCst) {
                return;
            }
            let (released, wait) = sync_channel(1);
            if self.changes.send(Change::Lost { shards: shards(list), released }).is_ok() && wait.recv_timeout(RELEASE_WAIT).is_err() {
                tracing::warn!("shards given up before their appends in flight settled; the group fences them");
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => drop(self.changes.send(Change::Gained(shards(list)))),
            Rebalance::Error(e) => tracing::warn!(error = %e, "the writers' group failed to rebalance"),
            Rebalance::Revoke(_) => {}
        }
    }
}

fn shards(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

/// This writer's membership of the writers' group; it leaves when dropped.
pub(super) struct Membership {
    consumer: Arc<BaseConsumer<GroupContext>>,
    topic: String,
    stop: Arc<AtomicBool>,
}

impl Membership {
    /// Joins the group `group_id` over `topic` as member `name`; the changes of its shards
    /// come on the receiver.
    pub(super) fn join(brokers: &str, client_id: &str, group_id: &str, name: &str, topic: &str) -> Result<(Membership, mpsc::UnboundedReceiver<Change>), KafkaError> {
        let (changes, received) = mpsc::unbounded_channel();
        let consumer: BaseConsumer<GroupContext> = tidemark_log::reader(brokers, client_id)
            .set("group.id", group_id)
            .set("group.instance.id", name)
            .set("partition.assignment.strategy", "cooperative-sticky")
            // A writer that dies loses its shards after this long; the broker's minimum.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("enable.auto.commit", "false")
            .create_with_context(GroupContext { changes, closing: AtomicBool::new(false) })?;
        consumer.subscribe(&[topic])?;
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        // The group's callbacks run inside `poll`, on this thread; nothing is ever written
        // to the topic, so the polls return no records.
        let (polled, stopped) = (consumer.clone(), stop.clone());
        std::thread::Builder::new()
            .name("writer-group".into())
            .spawn(move || {
                while !stopped.load(Ordering::SeqCst) {
                    if let Some(Err(e)) = polled.poll(Duration::from_millis(100)) {
                        tracing::warn!(error = %e, "the writers' group");
                        if let Some((_, reason)) = polled.client().fatal_error() {
                            let _ = polled.context().changes.send(Change::Expelled(reason));
                            return;
                        }
                    }
                }
            })
            .expect("a thread starts");
        Ok((Membership { consumer, topic: topic.to_string(), stop }, received))
    }

    /// What a transaction on `shards` commits to the group so that the coordinator refuses
    /// it if this writer is no longer the member it was (see the module's comment). The
    /// offsets themselves mean nothing.
    pub(super) fn fence(&self, shards: impl IntoIterator<Item = i32>) -> Option<(TopicPartitionList, ConsumerGroupMetadata)> {
        let metadata = self.consumer.group_metadata()?;
        let mut offsets = TopicPartitionList::new();
        for shard in shards {
            offsets.add_partition_offset(&self.topic, shard, Offset::Offset(0)).ok()?;
        }
        Some((offsets, metadata))
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.consumer.context().closing.store(true, Ordering::SeqCst);
    }
}

/// Records this process as the one running under `name`, and says how to ask later whether
/// a newer one has taken its place (see `appender::Superseded`).
pub(super) async fn register_process(pool: &sqlx::PgPool, name: &str, process: &str) -> Result<Superseded, sqlx::Error> {
    sqlx::query!(
        "INSERT INTO writer_processes (name, process) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET process = EXCLUDED.process, started_at = clock_timestamp()",
        name,
        process,
    )
    .execute(pool)
    .await?;
    let (pool, name, process) = (pool.clone(), name.to_string(), process.to_string());
    Ok(Arc::new(move || {
        let (pool, name, process) = (pool.clone(), name.clone(), process.clone());
        Box::pin(async move {
            // Not knowing counts as superseded: two processes appending under one name is the worse mistake.
            let now = sqlx::query_scalar!("SELECT process FROM writer_processes WHERE name = $1", name).fetch_optional(&pool).await;
            !matches!(now, Ok(Some(now)) if now == process)
        })
    }))
}

impl Writer {
    /// Returns once the group's first shards are served and then every shard is, or the
    /// shards this writer serves have not changed for `SETTLED` (a cooperative rebalance
    /// hands a replaced member's shards over in a second round).
    pub(super) async fn settle_in(&self, first: oneshot::Receiver<()>) {
        let _ = first.await;
        let (mut owned, mut since) = (self.owned_shards(), Instant::now());
        while owned.len() < self.shard_count as usize && since.elapsed() < SETTLED {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.owned_shards();
            if now != owned {
                (owned, since) = (now, Instant::now());
            }
        }
    }

    /// Joins the writers' group; the changes of this writer's shards come on the receiver.
    pub(super) fn join(&self) -> Result<mpsc::UnboundedReceiver<Change>, KafkaError> {
        let config = &self.config;
        let (member, changes) = Membership::join(&config.brokers, &config.client_id(), &config.group_id, &config.name, &config.topics.writer_shards)?;
        *self.membership.write().expect("not poisoned") = Some(member);
        Ok(changes)
    }

    /// Takes and gives up shards as the group says, until `shutdown`; `first` is told once
    /// the first shards given are served.
    pub(super) async fn follow_the_group(self: Arc<Self>, mut changes: mpsc::UnboundedReceiver<Change>, first: oneshot::Sender<()>, shutdown: CancellationToken) {
        let mut first = Some(first);
        loop {
            let change = tokio::select! {
                _ = shutdown.cancelled() => break,
                change = changes.recv() => match change {
                    Some(change) => change,
                    None => break,
                },
            };
            match change {
                Change::Gained(shards) => {
                    for &shard in &shards {
                        self.set_roles(shard, Role::Taking);
                    }
                    // Taken one after the other, each as soon as it is fenced and read, so
                    // that the group's next word (giving some up) is heard meanwhile.
                    let (writer, told) = (self.clone(), first.take());
                    tokio::spawn(async move {
                        for shard in shards {
                            writer.take(shard).await;
                        }
                        if let Some(told) = told {
                            let _ = told.send(());
                        }
                    });
                }
                Change::Lost { shards, released } => {
                    for &shard in &shards {
                        self.give_up(shard).await;
                    }
                    let _ = released.send(());
                }
                Change::Expelled(reason) => {
                    tracing::warn!(%reason, "the writers' group expelled this writer; it gives up its shards and joins again");
                    // Those it is still taking too: their takes stop once they are followed.
                    for shard in 0..self.shard_count {
                        if self.shard(shard).any(|p| p.role() != Role::Following) {
                            self.give_up(shard).await;
                        }
                    }
                    *self.membership.write().expect("not poisoned") = None;
                    match self.rejoin(&shutdown).await {
                        Some(joined) => changes = joined,
                        None => break,
                    }
                }
            }
        }
        // Leaves the group: the others take the shards once its session ends.
        *self.membership.write().expect("not poisoned") = None;
    }

    /// Joins the group again, unless a newer process runs under this writer's name (it
    /// would be fenced in turn) or the writer stops.
    async fn rejoin(&self, shutdown: &CancellationToken) -> Option<mpsc::UnboundedReceiver<Change>> {
        loop {
            if (self.superseded)().await {
                let reason = "a newer process runs under this writer's name; this one stays out of the writers' group";
                tracing::error!("{reason}");
                let _ = self.replaced.set(reason.to_string());
                return None;
            }
            match self.join() {
                Ok(changes) => return Some(changes),
                Err(e) => tracing::warn!(error = %e, "joining the writers' group again failed; trying again"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn set_roles(&self, shard: i32, role: Role) {
        for partition in self.shard(shard) {
            partition.set_role(role);
        }
    }

    fn shard(&self, shard: i32) -> impl Iterator<Item = &Partition> {
        self.partitions.values().filter(move |p| p.partition == shard)
    }

    /// Fences the shard's partitions with a new epoch and reads them past the fence; then
    /// serves them. Tries again while the shard is still this writer's.
    async fn take(&self, shard: i32) {
        let began = Instant::now();
        let mut attempt = 0;
        while self.shard(shard).all(|p| p.role() == Role::Taking) {
            match self.fence_and_read(shard).await {
                // Given up again meanwhile.
                Ok(_) if !self.shard(shard).all(|p| p.role() == Role::Owned) => return,
                Ok(epoch) => {
                    tracing::info!(shard, epoch, attempts = attempt + 1, ms = began.elapsed().as_millis() as u64, "took a shard");
                    self.owned.lock().expect("not poisoned").insert(shard, epoch);
                    if let Err(e) = self.announce(shard, epoch, "owned").await {
                        tracing::warn!(shard, error = %e, "could not say where this shard's owner is; other writers answer 503 for it meanwhile");
                    }
                    return;
                }
                Err(e) => {
                    attempt += 1;
                    tracing::warn!(shard, attempt, error = %e, "taking a shard failed; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * attempt.min(10))).await;
                }
            }
        }
    }

    async fn fence_and_read(&self, shard: i32) -> Result<i64, CommandError> {
        let epoch = sqlx::query_scalar!(r#"SELECT nextval('writer_epochs') AS "epoch!""#).fetch_one(&self.pool).await.map_err(unavailable)?;
        let mut parts = Vec::new();
        for partition in self.shard(shard) {
            parts.push((partition, partition.lock().await));
        }
        let marker = FenceMarker { writer_epoch: epoch, writer_id: self.config.writer_id.clone(), fenced_at: Utc::now() };
        let mut markers = Vec::with_capacity(parts.len());
        for (partition, _) in &parts {
            let payload = self.codec.encode_fence(&partition.topic, &marker).await.map_err(codec_failure)?;
            markers.push(Record { topic: partition.topic.clone(), partition: partition.partition, key: None, payload });
        }
        self.appender.append(markers).await.map_err(append_failure)?;
        // Past the marker: whatever the previous owner committed before it is in the state.
        self.catch_up(&mut parts).await?;
        for (partition, state) in &mut parts {
            state.epoch = epoch;
            // Unless the group took it back meanwhile.
            let _ = partition.role.compare_exchange(Role::Taking as u8, Role::Owned as u8, Ordering::SeqCst, Ordering::SeqCst);
        }
        Ok(epoch)
    }

    /// Stops deciding on the shard, lets its appends in flight settle, and follows it again.
    async fn give_up(&self, shard: i32) {
        self.set_roles(shard, Role::Leaving);
        let epoch = self.owned.lock().expect("not poisoned").remove(&shard);
        let deadline = Instant::now() + RELEASE_WAIT - Duration::from_secs(1);
        for partition in self.shard(shard) {
            let mut state = partition.lock().await;
            while !state.in_flight.is_empty() && Instant::now() < deadline {
                drop(state);
                tokio::time::sleep(Duration::from_millis(2)).await;
                state = partition.lock().await;
            }
            // The follower passed over it while owned: it reads on from where the state is.
            state.follow_from += 1;
            state.position_trusted = false;
            let seek = super::follower::Seek { topic: partition.topic.clone(), partition: partition.partition, offset: state.next_offset, generation: state.follow_from };
            let _ = self.follow_from.send(seek);
            partition.set_role(Role::Following);
        }
        tracing::info!(shard, "gave up a shard");
        if let Some(epoch) = epoch {
            if let Err(e) = self.announce(shard, epoch, "released").await {
                tracing::warn!(shard, error = %e, "could not record giving up a shard");
            }
        }
    }

    /// Records the shard's change of owner, and where the owner listens.
    async fn announce(&self, shard: i32, epoch: i64, change: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        if change == "owned" {
            sqlx::query!(
                "INSERT INTO writer_shards (shard, writer, url, epoch, owned_since) VALUES ($1, $2, $3, $4, clock_timestamp())
                 ON CONFLICT (shard) DO UPDATE SET writer = EXCLUDED.writer, url = EXCLUDED.url, epoch = EXCLUDED.epoch, owned_since = EXCLUDED.owned_since
                 WHERE writer_shards.epoch < EXCLUDED.epoch",
                shard,
                self.config.name,
                self.config.advertised_url,
                epoch,
            )
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query!("INSERT INTO writer_shard_changes (shard, writer, epoch, change) VALUES ($1, $2, $3, $4)", shard, self.config.name, epoch, change)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Where the owner of `shard` listens, if another writer owns it.
    pub async fn owner_url(&self, shard: i32) -> Result<Option<String>, sqlx::Error> {
        let url = sqlx::query_scalar!("SELECT url FROM writer_shards WHERE shard = $1 AND writer <> $2", shard, self.config.name).fetch_optional(&self.pool).await?;
        Ok(url)
    }
}

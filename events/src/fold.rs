//! The stream-fold rule that every reader of the log applies, the command service when it
//! rebuilds its state as much as every projector.
//!
//! Kafka cannot check an expected version on append, so the log may hold records that a
//! correct reader must pass over: appends from a writer that lost ownership (a zombie),
//! duplicates of versions already applied, and, if something went badly wrong, gaps.

/// What a reader does with one event record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Apply,
    /// A version at or below the one applied already: a retry or a replay. Skip it.
    Duplicate,
    /// Written by an older writer after a newer one fenced the partition. Skip it.
    Fenced { record_epoch: i64, fence_epoch: i64 },
    /// A version beyond the next one: something is missing. Refuse it; never guess.
    Gap { expected: i64, found: i64 },
}

/// What a reader remembers per partition to apply the rule: the highest fence marker seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionFold {
    pub fence_epoch: i64,
}

impl PartitionFold {
    /// A fence marker appended by a new owner of the partition.
    pub fn observe_fence(&mut self, epoch: i64) {
        self.fence_epoch = self.fence_epoch.max(epoch);
    }

    /// Judges an event of `version` written under `writer_epoch`, for an aggregate whose
    /// last applied version is `applied_version` (0 when none is).
    pub fn judge(&self, writer_epoch: i64, applied_version: i64, version: i64) -> Verdict {
        if writer_epoch < self.fence_epoch {
            Verdict::Fenced { record_epoch: writer_epoch, fence_epoch: self.fence_epoch }
        } else if version <= applied_version {
            Verdict::Duplicate
        } else if version > applied_version + 1 {
            Verdict::Gap { expected: applied_version + 1, found: version }
        } else {
            Verdict::Apply
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_version_applies() {
        assert_eq!(PartitionFold::default().judge(1, 0, 1), Verdict::Apply);
        assert_eq!(PartitionFold { fence_epoch: 3 }.judge(3, 4, 5), Verdict::Apply);
    }

    #[test]
    fn replays_are_duplicates() {
        let fold = PartitionFold::default();
        assert_eq!(fold.judge(1, 5, 5), Verdict::Duplicate);
        assert_eq!(fold.judge(1, 5, 2), Verdict::Duplicate);
    }

    #[test]
    fn gaps_are_refused() {
        assert_eq!(PartitionFold::default().judge(1, 2, 4), Verdict::Gap { expected: 3, found: 4 });
    }

    #[test]
    fn a_zombie_writer_is_ignored_after_the_fence_but_not_before() {
        let mut fold = PartitionFold::default();
        assert_eq!(fold.judge(1, 0, 1), Verdict::Apply);
        fold.observe_fence(2);
        assert_eq!(fold.judge(1, 1, 2), Verdict::Fenced { record_epoch: 1, fence_epoch: 2 });
        assert_eq!(fold.judge(2, 1, 2), Verdict::Apply);
        fold.observe_fence(1);
        assert_eq!(fold.fence_epoch, 2, "an older marker never lowers the fence");
    }
}

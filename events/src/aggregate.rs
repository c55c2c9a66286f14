//! The one shape of every aggregate, as in `cqrs-es`: a command is decided against the
//! state (accepted as events, or refused with a rule), and each event evolves the state.
//! Both are pure. The shells (the writer, the projectors, the replay tools) hold any
//! aggregate as `AnyAggregate` and any event as `DomainEvent`, and reach the typed one
//! through this trait, so a new aggregate is one `impl` and one variant of each enum.

use std::fmt::Debug;

use crate::{AnyAggregate, DomainEvent, Rejection};

pub trait Aggregate: Sized + Clone + Debug {
    /// Its name in envelopes and topic names.
    const TYPE: &'static str;
    type Command: Debug + Send + 'static;
    type Event: Clone + Debug + PartialEq;

    /// The events that `command` causes in `state` (none yet: `None`), or why not.
    fn decide(state: Option<&Self>, command: &Self::Command) -> Result<Vec<Self::Event>, Rejection>;

    /// The state after `event`. Never refuses: an event is what happened.
    fn evolve(state: Option<Self>, event: &Self::Event) -> Self;

    /// This aggregate, when `any` is one of its kind.
    fn of(any: &AnyAggregate) -> Option<&Self>;

    /// This aggregate, when `any` is one of its kind, taken by value (folds move the state).
    fn from_any(any: AnyAggregate) -> Option<Self>;

    fn into_any(self) -> AnyAggregate;

    fn event_into_any(event: Self::Event) -> DomainEvent;
}

/// Folds `event` into `state` when both are `A`'s: the typed step of `crate::evolve`. A
/// state of another kind is no state of `A`'s.
pub(crate) fn step<A: Aggregate>(state: Option<AnyAggregate>, event: &A::Event) -> AnyAggregate {
    A::evolve(state.and_then(A::from_any), event).into_any()
}

/// Given/when/then tests of an aggregate, as `cqrs-es`'s test framework has them:
/// `given(events).when(command).then_expect_events(expected)`, or `then_refused(rule)`.
pub mod testing {
    use super::Aggregate;
    use crate::Rejection;

    /// The aggregate before the command.
    pub struct Given<A: Aggregate> {
        state: Option<A>,
    }

    /// The state that `events` fold into, from nothing.
    pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
        Given { state: events.into_iter().fold(None, |state, e| Some(A::evolve(state, &e))) }
    }

    /// An aggregate that does not exist yet.
    pub fn given_nothing<A: Aggregate>() -> Given<A> {
        Given { state: None }
    }

    /// An aggregate as it stands (built by earlier commands, for instance).
    pub fn given_state<A: Aggregate>(state: impl Into<Option<A>>) -> Given<A> {
        Given { state: state.into() }
    }

    impl<A: Aggregate> Given<A> {
        pub fn when(self, command: A::Command) -> Then<A> {
            let decided = A::decide(self.state.as_ref(), &command);
            Then { state: self.state, command, decided }
        }
    }

    /// What the command was decided to be.
    pub struct Then<A: Aggregate> {
        state: Option<A>,
        command: A::Command,
        decided: Result<Vec<A::Event>, Rejection>,
    }

    impl<A: Aggregate> Then<A> {
        /// Asserts that the command was accepted as exactly `expected`.
        pub fn then_expect_events(self, expected: &[A::Event]) {
            match self.decided {
                Ok(events) => assert_eq!(events, expected, "the events of {:?}", self.command),
                Err(refused) => panic!("{:?} was refused ({}: {refused}); expected {expected:?}", self.command, refused.rule()),
            }
        }

        /// Asserts that the command was refused by `rule`; the refusal, for its message.
        pub fn then_refused(self, rule: &str) -> Rejection {
            match self.decided {
                Err(refused) => {
                    assert_eq!(refused.rule(), rule, "{:?} was refused by another rule: {refused}", self.command);
                    refused
                }
                Ok(events) => panic!("{:?} was accepted as {events:?}; expected a refusal by {rule}", self.command),
            }
        }

        /// The events, or the refusal, as they were decided.
        pub fn decided(self) -> Result<Vec<A::Event>, Rejection> {
            self.decided
        }

        /// The state after the accepted command's events, or the refusal.
        pub fn outcome(self) -> Result<A, Rejection> {
            let events = self.decided?;
            Ok(events.iter().fold(self.state, |state, e| Some(A::evolve(state, e))).expect("an accepted command leaves an aggregate"))
        }

        /// The state after the command, which must have been accepted.
        pub fn then_state(self) -> A {
            let command = format!("{:?}", self.command);
            self.outcome().unwrap_or_else(|refused| panic!("{command} was refused ({}: {refused})", refused.rule()))
        }
    }
}

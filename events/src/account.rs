//! The Account aggregate: for now it only needs to exist, so opportunities can point at it.

use serde::{Deserialize, Serialize};

use crate::Rejection;

pub const AGGREGATE_TYPE: &str = "account";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    Open { name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountOpened {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AccountEvent {
    Opened(AccountOpened),
}

impl AccountEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened(_) => "AccountOpened",
        }
    }
}

fn decide(state: Option<&Account>, command: &AccountCommand) -> Result<Vec<AccountEvent>, Rejection> {
    match command {
        AccountCommand::Open { name } => {
            if state.is_some() {
                return Err(Rejection::AlreadyExists);
            }
            Ok(vec![AccountEvent::Opened(AccountOpened { name: crate::opportunity::valid_name("name", name)? })])
        }
    }
}

fn evolve(state: Option<Account>, event: &AccountEvent) -> Account {
    match (state, event) {
        (None, AccountEvent::Opened(e)) => Account { name: e.name.clone(), version: 1 },
        // An account is opened once; a second AccountOpened cannot pass `decide`, and the
        // fold rule drops replays, so keep the state as it is.
        (Some(a), AccountEvent::Opened(_)) => a,
    }
}

impl crate::Aggregate for Account {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = AccountCommand;
    type Event = AccountEvent;

    fn decide(state: Option<&Account>, command: &AccountCommand) -> Result<Vec<AccountEvent>, Rejection> {
        decide(state, command)
    }

    fn evolve(state: Option<Account>, event: &AccountEvent) -> Account {
        evolve(state, event)
    }

    fn of(any: &crate::AnyAggregate) -> Option<&Account> {
        match any {
            crate::AnyAggregate::Account(state) => Some(state),
            _ => None,
        }
    }

    fn from_any(any: crate::AnyAggregate) -> Option<Account> {
        match any {
            crate::AnyAggregate::Account(state) => Some(state),
            _ => None,
        }
    }

    fn into_any(self) -> crate::AnyAggregate {
        crate::AnyAggregate::Account(self)
    }

    fn event_into_any(event: AccountEvent) -> crate::DomainEvent {
        crate::DomainEvent::Account(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{given, given_nothing};

    #[test]
    fn an_account_opens_once() {
        let cmd = AccountCommand::Open { name: "  Acme GmbH ".into() };
        let opened = AccountEvent::Opened(AccountOpened { name: "Acme GmbH".into() });
        given_nothing::<Account>().when(cmd.clone()).then_expect_events(&[opened.clone()]);
        assert_eq!(given_nothing::<Account>().when(cmd.clone()).then_state().name, "Acme GmbH");
        given::<Account>([opened]).when(cmd).then_refused("already-exists");
        assert!(given_nothing::<Account>().when(AccountCommand::Open { name: " ".into() }).decided().is_err());
    }
}

//! The Account aggregate: for now it only needs to exist, so opportunities can point at it.

use serde::{Deserialize, Serialize};

use crate::Rejection;

pub const AGGREGATE_TYPE: &str = "account";

#[derive(Debug, Clone, PartialEq, Serialize)]
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

pub fn decide(state: Option<&Account>, command: &AccountCommand) -> Result<Vec<AccountEvent>, Rejection> {
    match command {
        AccountCommand::Open { name } => {
            if state.is_some() {
                return Err(Rejection::AlreadyExists);
            }
            Ok(vec![AccountEvent::Opened(AccountOpened { name: crate::opportunity::valid_name("name", name)? })])
        }
    }
}

pub fn evolve(state: Option<Account>, event: &AccountEvent) -> Account {
    match (state, event) {
        (None, AccountEvent::Opened(e)) => Account { name: e.name.clone(), version: 1 },
        // An account is opened once; a second AccountOpened cannot pass `decide`, and the
        // fold rule drops replays, so keep the state as it is.
        (Some(a), AccountEvent::Opened(_)) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_opens_once() {
        let cmd = AccountCommand::Open { name: "  Acme GmbH ".into() };
        let events = decide(None, &cmd).unwrap();
        let state = evolve(None, &events[0]);
        assert_eq!(state.name, "Acme GmbH");
        assert_eq!(decide(Some(&state), &cmd), Err(Rejection::AlreadyExists));
        assert!(decide(None, &AccountCommand::Open { name: " ".into() }).is_err());
    }
}

//! Why the domain refused a command. Each reason has a stable rule code that the HTTP
//! edge puts into problem+json, so clients can branch on it.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// The value breaks a constraint the API documents on the field alone (its schema).
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    /// A well-formed value that a rule refuses, by other fields or by the world: a date now
    /// past, a colleague no team has, a record that does not exist. No schema can say it.
    #[error("{field}: {message}")]
    FieldRule { field: &'static str, rule: &'static str, message: String },
    #[error("the aggregate does not exist")]
    NotFound,
    #[error("the aggregate exists already")]
    AlreadyExists,
    #[error("account {0} does not exist")]
    AccountNotFound(uuid::Uuid),
    #[error("the opportunity is closed and refuses further changes")]
    OpportunityClosed,
    #[error("the command would change nothing: {0}")]
    NoChange(&'static str),
    #[error("stage {0} is reached through the close command, which records the outcome and a reason")]
    CloseThroughCloseCommand(&'static str),
    #[error("the opportunity's currency is {fixed}; an amount in {given} cannot replace it")]
    CurrencyMismatch { fixed: String, given: String },
    #[error("the opportunity has no quote {0}")]
    QuoteNotFound(uuid::Uuid),
    /// A business rule, named by `rule`, with a sentence saying what to do instead.
    #[error("{message}")]
    Broken { rule: &'static str, message: String },
    /// The command is fine, but not this person's to give: the shell records it as a denial.
    #[error("{message}")]
    NotYours { code: &'static str, message: String },
}

impl Rejection {
    /// A stable, machine-readable name of the broken rule.
    pub fn rule(&self) -> &'static str {
        match self {
            Rejection::InvalidField { .. } => "invalid-field",
            Rejection::FieldRule { rule, .. } => rule,
            Rejection::NotFound => "not-found",
            Rejection::AlreadyExists => "already-exists",
            Rejection::AccountNotFound(_) => "account-must-exist",
            Rejection::OpportunityClosed => "closed-opportunity-is-final",
            Rejection::NoChange(_) => "no-change",
            Rejection::CloseThroughCloseCommand(_) => "close-through-close-command",
            Rejection::CurrencyMismatch { .. } => "currency-is-fixed",
            Rejection::QuoteNotFound(_) => "quote-not-found",
            Rejection::Broken { rule, .. } => rule,
            Rejection::NotYours { code, .. } => code,
        }
    }

    /// The field the refusal is about, if one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Rejection::InvalidField { field, .. } | Rejection::FieldRule { field, .. } => Some(field),
            _ => None,
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Rejection {
        Rejection::InvalidField { field, message: message.into() }
    }

    pub fn field_rule(field: &'static str, rule: &'static str, message: impl Into<String>) -> Rejection {
        Rejection::FieldRule { field, rule, message: message.into() }
    }
}

//! The Opportunity aggregate: a deal moving through the pipeline until it is won or lost.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::offline::{self, Choice, Intent, Ledger, Preference, Review, Side};
use crate::quote::{self, Quote, QuoteCommand, QuoteStatus};
use crate::{Money, Rejection};

pub const AGGREGATE_TYPE: &str = "opportunity";

/// The pipeline, in order, with each stage's default probability (percent). This table is
/// the one place where stages and probabilities are defined.
pub const STAGES: [(Stage, i32); 6] = [
    (Stage::Prospecting, 10),
    (Stage::Qualification, 20),
    (Stage::Proposal, 50),
    (Stage::Negotiation, 75),
    (Stage::ClosedWon, 100),
    (Stage::ClosedLost, 0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Stage {
    Prospecting,
    Qualification,
    Proposal,
    Negotiation,
    ClosedWon,
    ClosedLost,
}

impl Stage {
    pub const FIRST: Stage = Stage::Prospecting;

    pub fn name(self) -> &'static str {
        match self {
            Stage::Prospecting => "Prospecting",
            Stage::Qualification => "Qualification",
            Stage::Proposal => "Proposal",
            Stage::Negotiation => "Negotiation",
            Stage::ClosedWon => "Closed Won",
            Stage::ClosedLost => "Closed Lost",
        }
    }

    pub fn default_probability(self) -> i32 {
        STAGES.iter().find(|(s, _)| *s == self).map(|(_, p)| *p).expect("every stage is in STAGES")
    }

    /// Its place in the pipeline's order.
    pub fn position(self) -> usize {
        STAGES.iter().position(|(s, _)| *s == self).expect("every stage is in STAGES")
    }

    /// The open stage after this one; none after Negotiation (what follows is closing).
    pub fn next(self) -> Option<Stage> {
        STAGES.get(self.position() + 1).map(|(s, _)| *s).filter(|s| !s.is_closed())
    }

    pub fn is_closed(self) -> bool {
        matches!(self, Stage::ClosedWon | Stage::ClosedLost)
    }

    pub fn parse(name: &str) -> Option<Stage> {
        STAGES.iter().map(|(s, _)| *s).find(|s| s.name() == name)
    }

    /// Where a deal in this stage counts in the forecast; lost deals count nowhere.
    pub fn forecast_category(self) -> Option<ForecastCategory> {
        match self {
            Stage::Prospecting | Stage::Qualification => Some(ForecastCategory::Pipeline),
            Stage::Proposal => Some(ForecastCategory::BestCase),
            Stage::Negotiation => Some(ForecastCategory::Commit),
            Stage::ClosedWon => Some(ForecastCategory::Closed),
            Stage::ClosedLost => None,
        }
    }
}

crate::text_enum! {
    /// The forecast categories, from least to most certain.
    #[derive(PartialOrd, Ord)]
    pub enum ForecastCategory {
        Pipeline => "pipeline",
        BestCase => "best_case",
        Commit => "commit",
        Closed => "closed",
    }
}

impl TryFrom<String> for Stage {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        Stage::parse(&name).ok_or_else(|| {
            let known: Vec<_> = STAGES.iter().map(|(s, _)| s.name()).collect();
            format!("unknown stage '{name}'; stages are {}", known.join(", "))
        })
    }
}

impl From<Stage> for &'static str {
    fn from(s: Stage) -> &'static str {
        s.name()
    }
}

crate::text_enum! {
    pub enum Outcome {
        Won => "won",
        Lost => "lost",
    }
}

impl Outcome {
    pub fn stage(self) -> Stage {
        match self {
            Outcome::Won => Stage::ClosedWon,
            Outcome::Lost => Stage::ClosedLost,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    pub account_id: Uuid,
    pub name: String,
    pub owner_id: String,
    /// The team that owns it (managers see their team's); none for data from before teams.
    pub team_id: Option<String>,
    pub amount: Money,
    pub close_date: NaiveDate,
    pub stage: Stage,
    pub probability: i32,
    pub close_reason: Option<String>,
    /// Users it is shared with: they may read it as if it were theirs.
    pub shared_with: std::collections::BTreeSet<String>,
    /// Its quotes, oldest first, each with its approval history.
    pub quotes: Vec<Quote>,
    /// The accepted quote whose total the amount follows (one at a time).
    pub synced_quote: Option<Uuid>,
    /// Preference fields besides the close date (see `offline::Preference`).
    pub next_step: Option<String>,
    pub description: Option<String>,
    /// Conflicts of offline intents, open and resolved.
    pub reviews: Vec<Review>,
    /// Kept by the writer, to merge offline intents; readers drop it.
    pub ledger: Ledger,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Hash)]
pub enum OpportunityCommand {
    Create(NewOpportunity),
    ChangeAmount { amount: Money },
    MoveStage { stage: Stage },
    Close { outcome: Outcome, reason: String },
    Share { user_id: String },
    Unshare { user_id: String },
    Quote(QuoteCommand),
    /// Sets a preference field online, at the server's time.
    SetPreference { field: Preference, value: Option<String>, at: DateTime<Utc> },
    /// A change a client recorded offline (see `offline`).
    Offline { intent: Intent, author: String, today: NaiveDate },
    ResolveReview { review_id: Uuid, choice: Choice, edited: Option<Side>, by: String, today: NaiveDate },
}

#[derive(Debug, Clone, PartialEq, Hash)]
pub struct NewOpportunity {
    pub account_id: Uuid,
    /// An aggregate sees only its own stream; the shell looks the account up and passes the
    /// answer in, so the rule itself stays here.
    pub account_exists: bool,
    pub name: String,
    pub owner_id: String,
    pub team_id: Option<String>,
    pub amount: Money,
    pub close_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityCreated {
    pub account_id: Uuid,
    pub name: String,
    pub owner_id: String,
    /// Added in schema v2; v1 events read as none.
    #[serde(default)]
    pub team_id: Option<String>,
    pub amount: Money,
    pub close_date: NaiveDate,
    pub stage: Stage,
    pub probability: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmountChanged {
    pub amount: Money,
}

/// A close date written before close dates became preferences (`PreferenceChanged`). It has
/// no write time, so last-writer-wins counts it older than any offline intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloseDateChanged {
    pub close_date: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageMoved {
    pub from_stage: Stage,
    pub stage: Stage,
    pub probability: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    pub outcome: Outcome,
    pub reason: String,
    pub stage: Stage,
    pub probability: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shared {
    pub user_id: String,
}

/// Serializes as its payload alone: the event type travels beside it (Avro record name).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OpportunityEvent {
    Created(OpportunityCreated),
    AmountChanged(AmountChanged),
    CloseDateChanged(CloseDateChanged),
    StageMoved(StageMoved),
    Closed(Closed),
    Shared(Shared),
    Unshared(Shared),
    QuoteDrafted(quote::QuoteDrafted),
    QuoteRevised(quote::QuoteRevised),
    QuoteSubmitted(quote::QuoteSubmitted),
    QuoteApprovalDecided(quote::QuoteApprovalDecided),
    QuoteRecalled(quote::QuoteRecalled),
    QuoteAccepted(quote::QuoteAccepted),
    QuoteDeclined(quote::QuoteDeclined),
    PreferenceChanged(offline::PreferenceChanged),
    ReviewOpened(offline::ReviewOpened),
    ReviewResolved(offline::ReviewResolved),
}

impl OpportunityEvent {
    /// The quote the event is about, for quote events.
    pub fn quote_id(&self) -> Option<Uuid> {
        Some(match self {
            OpportunityEvent::QuoteDrafted(e) => e.quote_id,
            OpportunityEvent::QuoteRevised(e) => e.quote_id,
            OpportunityEvent::QuoteSubmitted(e) => e.quote_id,
            OpportunityEvent::QuoteApprovalDecided(e) => e.quote_id,
            OpportunityEvent::QuoteRecalled(e) => e.quote_id,
            OpportunityEvent::QuoteAccepted(e) => e.quote_id,
            OpportunityEvent::QuoteDeclined(e) => e.quote_id,
            _ => return None,
        })
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            OpportunityEvent::Created(_) => "OpportunityCreated",
            OpportunityEvent::AmountChanged(_) => "OpportunityAmountChanged",
            OpportunityEvent::CloseDateChanged(_) => "OpportunityCloseDateChanged",
            OpportunityEvent::StageMoved(_) => "OpportunityStageMoved",
            OpportunityEvent::Closed(_) => "OpportunityClosed",
            OpportunityEvent::Shared(_) => "OpportunityShared",
            OpportunityEvent::Unshared(_) => "OpportunityUnshared",
            OpportunityEvent::QuoteDrafted(_) => "QuoteDrafted",
            OpportunityEvent::QuoteRevised(_) => "QuoteRevised",
            OpportunityEvent::QuoteSubmitted(_) => "QuoteSubmitted",
            OpportunityEvent::QuoteApprovalDecided(_) => "QuoteApprovalDecided",
            OpportunityEvent::QuoteRecalled(_) => "QuoteRecalled",
            OpportunityEvent::QuoteAccepted(_) => "QuoteAccepted",
            OpportunityEvent::QuoteDeclined(_) => "QuoteDeclined",
            OpportunityEvent::PreferenceChanged(_) => "OpportunityPreferenceChanged",
            OpportunityEvent::ReviewOpened(_) => "OfflineReviewOpened",
            OpportunityEvent::ReviewResolved(_) => "OfflineReviewResolved",
        }
    }
}

pub const MAX_TEXT: usize = 200;

/// Trims a required short text and checks its length.
pub(crate) fn valid_name(field: &'static str, text: &str) -> Result<String, Rejection> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Rejection::invalid(field, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT {
        return Err(Rejection::invalid(field, format!("at most {MAX_TEXT} characters")));
    }
    Ok(text.to_string())
}

fn decide(state: Option<&Opportunity>, command: &OpportunityCommand) -> Result<Vec<OpportunityEvent>, Rejection> {
    let opp = match (state, command) {
        (None, OpportunityCommand::Create(new)) => return create(new),
        (Some(_), OpportunityCommand::Create(_)) => return Err(Rejection::AlreadyExists),
        (None, _) => return Err(Rejection::NotFound),
        (Some(opp), _) => opp,
    };
    decide_change(opp, command)
}

/// Decides a command on an existing opportunity.
pub(crate) fn decide_change(opp: &Opportunity, command: &OpportunityCommand) -> Result<Vec<OpportunityEvent>, Rejection> {
    // Sharing is about who may read the deal, not the deal itself: closed ones may be shared.
    match command {
        OpportunityCommand::Share { user_id } => {
            let user_id = valid_name("user_id", user_id)?;
            if user_id == opp.owner_id || opp.shared_with.contains(&user_id) {
                return Err(Rejection::NoChange("that user sees the opportunity already"));
            }
            return Ok(vec![OpportunityEvent::Shared(Shared { user_id })]);
        }
        OpportunityCommand::Unshare { user_id } => {
            if !opp.shared_with.contains(user_id) {
                return Err(Rejection::NoChange("the opportunity is not shared with that user"));
            }
            return Ok(vec![OpportunityEvent::Unshared(Shared { user_id: user_id.clone() })]);
        }
        _ => {}
    }
    if opp.stage.is_closed() {
        return Err(Rejection::OpportunityClosed);
    }
    let event = match command {
        OpportunityCommand::Create(_) => return Err(Rejection::AlreadyExists),
        OpportunityCommand::Share { .. } | OpportunityCommand::Unshare { .. } => unreachable!("handled above"),
        OpportunityCommand::Quote(command) => return quote::decide(opp, command),
        OpportunityCommand::Offline { intent, author, today } => return offline::decide(opp, intent, author, *today).map(|(events, _)| events),
        OpportunityCommand::ResolveReview { review_id, choice, edited, by, today } => {
            return offline::resolve(opp, *review_id, *choice, edited.as_ref(), by, *today)
        }
        OpportunityCommand::SetPreference { field, value, at } => {
            let value = field.valid(value.as_deref())?;
            let replaced = field.value_of(opp);
            if value == replaced {
                return Err(Rejection::NoChange("the field holds that value already"));
            }
            OpportunityEvent::PreferenceChanged(offline::PreferenceChanged { field: *field, value, replaced, written_at: *at, offline: None })
        }
        OpportunityCommand::ChangeAmount { amount } => {
            amount.validate("amount")?;
            if opp.synced_quote.is_some() {
                return Err(Rejection::Broken {
                    rule: "amount-follows-quote",
                    message: "the amount follows the accepted quote; revise the quote instead".into(),
                });
            }
            if amount.currency != opp.amount.currency {
                return Err(Rejection::CurrencyMismatch {
                    fixed: opp.amount.currency.to_string(),
                    given: amount.currency.to_string(),
                });
            }
            if amount.value == opp.amount.value {
                return Err(Rejection::NoChange("the amount is already that"));
            }
            OpportunityEvent::AmountChanged(AmountChanged { amount: amount.clone() })
        }
        OpportunityCommand::MoveStage { stage } => {
            if stage.is_closed() {
                return Err(Rejection::CloseThroughCloseCommand(stage.name()));
            }
            if *stage == opp.stage {
                return Err(Rejection::NoChange("the opportunity is already in that stage"));
            }
            // Forward one stage at a time; back to any earlier one.
            let next = opp.stage.next();
            if stage.position() > opp.stage.position() && Some(*stage) != next {
                return Err(Rejection::Broken {
                    rule: "stages-in-order",
                    message: format!(
                        "from {} the next stage is {}; stages are not skipped",
                        opp.stage.name(),
                        next.map_or("none", Stage::name)
                    ),
                });
            }
            OpportunityEvent::StageMoved(StageMoved {
                from_stage: opp.stage,
                stage: *stage,
                probability: stage.default_probability(),
            })
        }
        OpportunityCommand::Close { outcome, reason } => {
            let reason = valid_name("reason", reason)?;
            if *outcome == Outcome::Won {
                may_close_won(opp)?;
            }
            OpportunityEvent::Closed(Closed { outcome: *outcome, reason, stage: outcome.stage(), probability: outcome.stage().default_probability() })
        }
    };
    Ok(vec![event])
}

/// A deal is won on an accepted quote, when it has quotes at all, and never while one
/// awaits approval.
fn may_close_won(opp: &Opportunity) -> Result<(), Rejection> {
    if opp.quotes.iter().any(|q| q.status == QuoteStatus::PendingApproval) {
        return Err(Rejection::Broken {
            rule: "quote-pending-approval",
            message: "a quote of this opportunity is pending approval; it cannot be closed won until that is decided or recalled".into(),
        });
    }
    if !opp.quotes.is_empty() && !opp.quotes.iter().any(|q| q.status == QuoteStatus::Accepted) {
        return Err(Rejection::Broken {
            rule: "accepted-quote-required",
            message: "the opportunity has quotes, and none is accepted: record the customer's acceptance first".into(),
        });
    }
    // The pipeline's order holds for winning too (a deal may be lost from any stage).
    if opp.stage != Stage::Negotiation {
        return Err(Rejection::Broken {
            rule: "stages-in-order",
            message: format!("a deal is won from Negotiation, the last open stage; this one is in {}", opp.stage.name()),
        });
    }
    Ok(())
}

fn create(new: &NewOpportunity) -> Result<Vec<OpportunityEvent>, Rejection> {
    let name = valid_name("name", &new.name)?;
    let owner_id = valid_name("owner_id", &new.owner_id)?;
    new.amount.validate("amount")?;
    crate::dates::within_window("close_date", new.close_date)?;
    if !new.account_exists {
        return Err(Rejection::AccountNotFound(new.account_id));
    }
    Ok(vec![OpportunityEvent::Created(OpportunityCreated {
        account_id: new.account_id,
        name,
        owner_id,
        team_id: new.team_id.clone(),
        amount: new.amount.clone(),
        close_date: new.close_date,
        stage: Stage::FIRST,
        probability: Stage::FIRST.default_probability(),
    })])
}

/// Folds one event into the state. Events are facts: evolve never refuses one.
fn evolve(state: Option<Opportunity>, event: &OpportunityEvent) -> Opportunity {
    let mut opp = match (state, event) {
        (_, OpportunityEvent::Created(e)) => {
            let opp = Opportunity {
                account_id: e.account_id,
                name: e.name.clone(),
                owner_id: e.owner_id.clone(),
                team_id: e.team_id.clone(),
                amount: e.amount.clone(),
                close_date: e.close_date,
                stage: e.stage,
                probability: e.probability,
                close_reason: None,
                shared_with: Default::default(),
                quotes: Vec::new(),
                synced_quote: None,
                next_step: None,
                description: None,
                reviews: Vec::new(),
                ledger: Ledger::default(),
                version: 1,
            };
            let mut ledger = Ledger::default();
            ledger.record(&opp, event);
            return Opportunity { ledger, ..opp };
        }
        (Some(opp), _) => opp,
        (None, e) => panic!("{} before OpportunityCreated: the fold rule must refuse gaps", e.event_type()),
    };
    match event {
        OpportunityEvent::Created(_) => unreachable!("handled above"),
        OpportunityEvent::AmountChanged(e) => opp.amount = e.amount.clone(),
        OpportunityEvent::CloseDateChanged(e) => opp.close_date = e.close_date,
        OpportunityEvent::StageMoved(e) => {
            opp.stage = e.stage;
            opp.probability = e.probability;
        }
        OpportunityEvent::Closed(e) => {
            opp.stage = e.stage;
            opp.probability = e.probability;
            opp.close_reason = Some(e.reason.clone());
        }
        OpportunityEvent::Shared(e) => {
            opp.shared_with.insert(e.user_id.clone());
        }
        OpportunityEvent::Unshared(e) => {
            opp.shared_with.remove(&e.user_id);
        }
        OpportunityEvent::QuoteDrafted(_)
        | OpportunityEvent::QuoteRevised(_)
        | OpportunityEvent::QuoteSubmitted(_)
        | OpportunityEvent::QuoteApprovalDecided(_)
        | OpportunityEvent::QuoteRecalled(_)
        | OpportunityEvent::QuoteAccepted(_)
        | OpportunityEvent::QuoteDeclined(_) => quote::evolve(&mut opp, event),
        OpportunityEvent::PreferenceChanged(e) => match e.field {
            Preference::CloseDate => {
                if let Some(date) = e.value.as_deref().and_then(|d| d.parse().ok()) {
                    opp.close_date = date;
                }
            }
            Preference::NextStep => opp.next_step = e.value.clone(),
            Preference::Description => opp.description = e.value.clone(),
        },
        OpportunityEvent::ReviewOpened(e) => opp.reviews.push(Review { opened: e.clone(), resolved: None }),
        OpportunityEvent::ReviewResolved(e) => {
            if let Some(review) = opp.reviews.iter_mut().find(|r| r.opened.review_id == e.review_id) {
                review.resolved = Some(e.clone());
            }
        }
    }
    opp.version += 1;
    let mut ledger = std::mem::take(&mut opp.ledger);
    ledger.record(&opp, event);
    opp.ledger = ledger;
    opp
}

impl crate::Aggregate for Opportunity {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = OpportunityCommand;
    type Event = OpportunityEvent;

    fn decide(state: Option<&Opportunity>, command: &OpportunityCommand) -> Result<Vec<OpportunityEvent>, Rejection> {
        decide(state, command)
    }

    fn evolve(state: Option<Opportunity>, event: &OpportunityEvent) -> Opportunity {
        evolve(state, event)
    }

    fn of(any: &crate::AnyAggregate) -> Option<&Opportunity> {
        match any {
            crate::AnyAggregate::Opportunity(state) => Some(state),
            _ => None,
        }
    }

    fn from_any(any: crate::AnyAggregate) -> Option<Opportunity> {
        match any {
            crate::AnyAggregate::Opportunity(state) => Some(state),
            _ => None,
        }
    }

    fn into_any(self) -> crate::AnyAggregate {
        crate::AnyAggregate::Opportunity(self)
    }

    fn event_into_any(event: OpportunityEvent) -> crate::DomainEvent {
        crate::DomainEvent::Opportunity(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{given_nothing, given_state};
    use crate::Currency;
    use std::str::FromStr;

    fn money(v: &str, c: &str) -> Money {
        Money { value: rust_decimal::Decimal::from_str(v).unwrap(), currency: Currency::try_from(c.to_string()).unwrap() }
    }

    fn new_opportunity() -> NewOpportunity {
        NewOpportunity {
            account_id: Uuid::now_v7(),
            account_exists: true,
            name: "Fleet renewal".into(),
            owner_id: "alice".into(),
            team_id: Some("east".into()),
            amount: money("12000.00", "EUR"),
            close_date: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        }
    }

    fn run(state: Option<Opportunity>, cmd: OpportunityCommand) -> Result<Opportunity, Rejection> {
        given_state(state).when(cmd).outcome()
    }

    fn created() -> Opportunity {
        run(None, OpportunityCommand::Create(new_opportunity())).unwrap()
    }

    /// Created, then moved stage by stage to the last open one.
    fn negotiating() -> Opportunity {
        [Stage::Qualification, Stage::Proposal, Stage::Negotiation]
            .into_iter()
            .fold(created(), |opp, stage| run(Some(opp), OpportunityCommand::MoveStage { stage }).unwrap())
    }

    #[test]
    fn stages_follow_the_pipeline_forward_and_may_go_back() {
        let skip = given_state(created()).when(OpportunityCommand::MoveStage { stage: Stage::Proposal }).decided().unwrap_err();
        assert_eq!(skip.rule(), "stages-in-order");
        assert!(skip.to_string().contains("next stage is Qualification"), "{skip}");
        let back = run(Some(negotiating()), OpportunityCommand::MoveStage { stage: Stage::Qualification }).unwrap();
        assert_eq!((back.stage, back.probability), (Stage::Qualification, 20));
        let early = given_state(back.clone()).when(OpportunityCommand::Close { outcome: Outcome::Won, reason: "signed".into() }).decided().unwrap_err();
        assert_eq!(early.rule(), "stages-in-order", "won from Negotiation only");
        let lost = run(Some(created()), OpportunityCommand::Close { outcome: Outcome::Lost, reason: "no budget".into() }).unwrap();
        assert_eq!(lost.stage, Stage::ClosedLost, "lost from any stage");
    }

    #[test]
    fn a_new_opportunity_starts_at_the_first_stage() {
        let opp = created();
        assert_eq!((opp.stage, opp.probability, opp.version), (Stage::Prospecting, 10, 1));
    }

    #[test]
    fn creating_needs_an_existing_account_and_valid_fields() {
        let mut new = new_opportunity();
        new.account_exists = false;
        given_nothing::<Opportunity>().when(OpportunityCommand::Create(new)).then_refused("account-must-exist");
        let mut new = new_opportunity();
        new.name = "   ".into();
        assert_eq!(
            given_nothing::<Opportunity>().when(OpportunityCommand::Create(new)).decided(),
            Err(Rejection::invalid("name", "must not be empty"))
        );
        assert_eq!(given_state(created()).when(OpportunityCommand::Create(new_opportunity())).decided(), Err(Rejection::AlreadyExists));
    }

    #[test]
    fn commands_on_a_missing_opportunity_are_not_found() {
        let cmd = OpportunityCommand::MoveStage { stage: Stage::Proposal };
        assert_eq!(given_nothing::<Opportunity>().when(cmd.clone()).decided(), Err(Rejection::NotFound));
    }

    #[test]
    fn moving_stage_sets_the_default_probability() {
        let opp = negotiating();
        assert_eq!((opp.stage, opp.probability, opp.version), (Stage::Negotiation, 75, 4));
        let err = given_state(opp.clone()).when(OpportunityCommand::MoveStage { stage: Stage::ClosedWon }).decided().unwrap_err();
        assert_eq!(err.rule(), "close-through-close-command");
        let err = given_state(opp.clone()).when(OpportunityCommand::MoveStage { stage: Stage::Negotiation }).decided().unwrap_err();
        assert_eq!(err.rule(), "no-change");
    }

    #[test]
    fn amounts_keep_their_currency() {
        let opp = run(Some(created()), OpportunityCommand::ChangeAmount { amount: money("15000.50", "EUR") }).unwrap();
        assert_eq!(opp.amount, money("15000.50", "EUR"));
        let err = given_state(opp.clone()).when(OpportunityCommand::ChangeAmount { amount: money("1", "USD") }).decided().unwrap_err();
        assert_eq!(err.rule(), "currency-is-fixed");
        let err = given_state(opp.clone()).when(OpportunityCommand::ChangeAmount { amount: money("-1", "EUR") }).decided().unwrap_err();
        assert_eq!(err.rule(), "invalid-field");
    }

    #[test]
    fn a_closed_opportunity_refuses_every_change() {
        let won = run(Some(negotiating()), OpportunityCommand::Close { outcome: Outcome::Won, reason: "signed".into() }).unwrap();
        assert_eq!((won.stage, won.probability), (Stage::ClosedWon, 100));
        let lost = run(Some(created()), OpportunityCommand::Close { outcome: Outcome::Lost, reason: "price".into() }).unwrap();
        assert_eq!((lost.stage, lost.probability), (Stage::ClosedLost, 0));
        for cmd in [
            OpportunityCommand::MoveStage { stage: Stage::Proposal },
            OpportunityCommand::ChangeAmount { amount: money("1", "EUR") },
            OpportunityCommand::SetPreference { field: Preference::CloseDate, value: Some("2027-01-01".into()), at: chrono::Utc::now() },
            OpportunityCommand::Close { outcome: Outcome::Lost, reason: "again".into() },
        ] {
            assert_eq!(given_state(won.clone()).when(cmd.clone()).decided(), Err(Rejection::OpportunityClosed));
        }
    }

    #[test]
    fn sharing_adds_and_withdraws_readers_even_when_closed() {
        let won = run(Some(negotiating()), OpportunityCommand::Close { outcome: Outcome::Won, reason: "signed".into() }).unwrap();
        let shared = run(Some(won), OpportunityCommand::Share { user_id: "bob".into() }).unwrap();
        assert!(shared.shared_with.contains("bob"));
        given_state(shared.clone()).when(OpportunityCommand::Share { user_id: "bob".into() }).then_refused("no-change");
        given_state(shared.clone()).when(OpportunityCommand::Share { user_id: "alice".into() }).then_refused("no-change");
        let unshared = run(Some(shared), OpportunityCommand::Unshare { user_id: "bob".into() }).unwrap();
        assert!(unshared.shared_with.is_empty());
        given_state(unshared.clone()).when(OpportunityCommand::Unshare { user_id: "bob".into() }).then_refused("no-change");
    }

    #[test]
    fn closing_needs_a_reason() {
        let err = given_state(created()).when(OpportunityCommand::Close { outcome: Outcome::Won, reason: "".into() }).decided();
        assert_eq!(err, Err(Rejection::invalid("reason", "must not be empty")));
    }

    #[test]
    fn stage_names_round_trip() {
        for (stage, _) in STAGES {
            assert_eq!(Stage::parse(stage.name()), Some(stage));
        }
        assert!(Stage::try_from("Won".to_string()).unwrap_err().contains("Closed Won"));
    }
}

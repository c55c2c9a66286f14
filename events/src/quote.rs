//! Quotes: priced line items on an opportunity, and the discount approvals they need.
//!
//! A quote lives in its opportunity's stream. The opportunity is the consistency boundary
//! of its quotes, so rules that span both ("no close won while a quote awaits approval",
//! "the amount follows the accepted quote") are checked in one decision, by one writer.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::approval::{self, Acting, Approver, NotTheDecider, Step};
use crate::money::{decimal_text, validate_decimal};
use crate::opportunity::{valid_name, AmountChanged, Opportunity, OpportunityEvent};
use crate::{Currency, Money, Rejection};

pub const MAX_LINES: usize = 100;
/// More of one thing on one line is a typing error, not a deal.
pub const MAX_QUANTITY: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LineItem {
    pub product: String,
    #[serde(with = "decimal_text")]
    pub quantity: Decimal,
    #[serde(with = "decimal_text")]
    pub unit_price: Decimal,
    /// Percent off this line's list price, 0 to 100.
    #[serde(with = "decimal_text", default)]
    pub discount_percent: Decimal,
}

/// A quote's figures, computed here with exact decimals and rounded to cents per line, so
/// that the lines always add up to the total that the customer sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Totals {
    #[serde(with = "decimal_text")]
    pub list: Decimal,
    #[serde(with = "decimal_text")]
    pub discount: Decimal,
    #[serde(with = "decimal_text")]
    pub net: Decimal,
    #[serde(with = "decimal_text")]
    pub max_line_discount_percent: Decimal,
    /// The discount of the whole quote, percent of its list price (two decimals).
    #[serde(with = "decimal_text")]
    pub discount_percent: Decimal,
}

/// Rounded half away from zero to two decimals, and always written with two.
fn cents(value: Decimal) -> Decimal {
    let mut value = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    value.rescale(2);
    value
}

pub fn totals(lines: &[LineItem]) -> Totals {
    let hundred = Decimal::ONE_HUNDRED;
    let (mut list, mut net, mut max_line) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for line in lines {
        let line_list = cents(line.quantity * line.unit_price);
        list += line_list;
        net += cents(line_list * (hundred - line.discount_percent) / hundred);
        max_line = max_line.max(line.discount_percent);
    }
    let discount = list - net;
    let discount_percent = if list.is_zero() { Decimal::ZERO } else { cents(discount * hundred / list) };
    Totals { list, discount, net, max_line_discount_percent: max_line.normalize(), discount_percent }
}

crate::text_enum! {
    pub enum QuoteStatus {
        Draft => "draft",
        /// Submitted and waiting for an approver; locked against changes.
        PendingApproval => "pending_approval",
        /// Approved (or needed no approval): ready for the customer.
        Approved => "approved",
        Rejected => "rejected",
        /// The customer accepted it; final.
        Accepted => "accepted",
        /// The customer declined it; it may be revised into a new offer.
        Declined => "declined",
    }
}

crate::text_enum! {
    pub enum Decision {
        Approved => "approved",
        Rejected => "rejected",
    }
}

/// One decided approval step, kept for every revision: the approval history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub revision: i32,
    pub step: i32,
    pub approver: Approver,
    pub team: Option<String>,
    pub decision: Decision,
    pub decided_by: String,
    /// The approver the step was waiting for, when a delegate decided it.
    pub on_behalf_of: Option<String>,
    pub comment: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub id: Uuid,
    pub revision: i32,
    pub currency: Currency,
    pub lines: Vec<LineItem>,
    pub valid_until: NaiveDate,
    pub totals: Totals,
    pub status: QuoteStatus,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// The approvals the current submission needs, in order, and how many are given.
    pub chain: Vec<Step>,
    pub approved_steps: usize,
    /// Since when the current step has been waiting.
    pub waiting_since: Option<DateTime<Utc>>,
    pub history: Vec<ApprovalRecord>,
    pub decline_reason: Option<String>,
}

impl Quote {
    /// The step waiting for a decision, while the quote is pending approval.
    pub fn current_step(&self) -> Option<&Step> {
        (self.status == QuoteStatus::PendingApproval).then(|| self.chain.get(self.approved_steps)).flatten()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QuoteCommand {
    Draft { quote_id: Uuid, currency: Currency, lines: Vec<LineItem>, valid_until: NaiveDate, today: NaiveDate },
    Revise { quote_id: Uuid, lines: Vec<LineItem>, valid_until: NaiveDate, today: NaiveDate },
    Submit { quote_id: Uuid, by: String, at: DateTime<Utc> },
    Decide { quote_id: Uuid, decision: Decision, comment: Option<String>, by: Acting, at: DateTime<Utc> },
    Recall { quote_id: Uuid, by: String, at: DateTime<Utc> },
    Accept { quote_id: Uuid, at: DateTime<Utc> },
    Decline { quote_id: Uuid, reason: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteDrafted {
    pub quote_id: Uuid,
    pub revision: i32,
    pub currency: Currency,
    pub lines: Vec<LineItem>,
    pub valid_until: NaiveDate,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteRevised {
    pub quote_id: Uuid,
    pub revision: i32,
    pub lines: Vec<LineItem>,
    pub valid_until: NaiveDate,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteSubmitted {
    pub quote_id: Uuid,
    pub revision: i32,
    pub submitted_by: String,
    pub submitted_at: DateTime<Utc>,
    /// The approvals needed, in order; none means approved at once.
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteApprovalDecided {
    pub quote_id: Uuid,
    pub revision: i32,
    pub step: i32,
    pub approver: Approver,
    pub team: Option<String>,
    pub decision: Decision,
    pub decided_by: String,
    pub on_behalf_of: Option<String>,
    pub comment: Option<String>,
    pub decided_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteRecalled {
    pub quote_id: Uuid,
    pub revision: i32,
    pub recalled_by: String,
    pub recalled_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteAccepted {
    pub quote_id: Uuid,
    pub revision: i32,
    pub accepted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuoteDeclined {
    pub quote_id: Uuid,
    pub revision: i32,
    pub reason: String,
    pub declined_at: DateTime<Utc>,
}

fn broken(rule: &'static str, message: impl Into<String>) -> Rejection {
    Rejection::Broken { rule, message: message.into() }
}

fn valid_lines(lines: &[LineItem]) -> Result<Vec<LineItem>, Rejection> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(Rejection::invalid("lines", format!("a quote has 1 to {MAX_LINES} lines")));
    }
    lines
        .iter()
        .map(|line| {
            // A unit price may go below the currency's minor unit (a price per item of
            // thousands); the line totals are rounded to cents.
            validate_decimal("lines.unit_price", line.unit_price, 4)?;
            validate_decimal("lines.quantity", line.quantity, 4)?;
            if line.quantity <= Decimal::ZERO || line.quantity > Decimal::from(MAX_QUANTITY) {
                return Err(Rejection::invalid("lines.quantity", format!("must be more than 0 and at most {MAX_QUANTITY}")));
            }
            if line.discount_percent < Decimal::ZERO || line.discount_percent > Decimal::ONE_HUNDRED || line.discount_percent.scale() > 2 {
                return Err(Rejection::invalid("lines.discount_percent", "must be between 0 and 100, with at most two decimals"));
            }
            Ok(LineItem { product: valid_name("lines.product", &line.product)?, ..line.clone() })
        })
        .collect()
}

/// What submitting these lines would need, for a client to show before it submits: the
/// totals and the approval chain, from the same functions the submission calls.
pub fn preview(lines: &[LineItem], team: Option<&str>) -> Result<(Totals, Vec<Step>), Rejection> {
    let totals = totals(&valid_lines(lines)?);
    let chain = approval::chain(&totals, team);
    Ok((totals, chain))
}

fn valid_until(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, Rejection> {
    if date < today {
        return Err(Rejection::field_rule("valid_until", "date-in-the-past", format!("{date} is in the past")));
    }
    crate::dates::within_window("valid_until", date)
}

impl QuoteCommand {
    pub fn quote_id(&self) -> Uuid {
        match self {
            QuoteCommand::Draft { quote_id, .. }
            | QuoteCommand::Revise { quote_id, .. }
            | QuoteCommand::Submit { quote_id, .. }
            | QuoteCommand::Decide { quote_id, .. }
            | QuoteCommand::Recall { quote_id, .. }
            | QuoteCommand::Accept { quote_id, .. }
            | QuoteCommand::Decline { quote_id, .. } => *quote_id,
        }
    }
}

/// Decides a quote command on an open opportunity.
pub(crate) fn decide(opp: &Opportunity, command: &QuoteCommand) -> Result<Vec<OpportunityEvent>, Rejection> {
    let id = command.quote_id();
    let found = opp.quotes.iter().find(|q| q.id == id);
    if let QuoteCommand::Draft { quote_id, currency, lines, valid_until: until, today } = command {
        if found.is_some() {
            return Err(Rejection::AlreadyExists);
        }
        if *currency != opp.amount.currency {
            return Err(Rejection::CurrencyMismatch { fixed: opp.amount.currency.to_string(), given: currency.to_string() });
        }
        let lines = valid_lines(lines)?;
        return Ok(vec![OpportunityEvent::QuoteDrafted(QuoteDrafted {
            quote_id: *quote_id,
            revision: 1,
            currency: currency.clone(),
            totals: totals(&lines),
            lines,
            valid_until: valid_until(*until, *today)?,
        })]);
    }
    let quote = found.ok_or(Rejection::QuoteNotFound(id))?;
    let revision = quote.revision;
    let status = quote.status;
    let event = match command {
        QuoteCommand::Draft { .. } => unreachable!("handled above"),
        QuoteCommand::Revise { lines, valid_until: until, today, .. } => {
            match status {
                QuoteStatus::PendingApproval => {
                    return Err(broken("quote-locked", "the quote is pending approval and locked; recall it to change it"))
                }
                QuoteStatus::Accepted => return Err(broken("accepted-quote-is-final", "the customer accepted this quote; it cannot change")),
                _ => {}
            }
            let lines = valid_lines(lines)?;
            OpportunityEvent::QuoteRevised(QuoteRevised {
                quote_id: id,
                revision: revision + 1,
                totals: totals(&lines),
                lines,
                valid_until: valid_until(*until, *today)?,
            })
        }
        QuoteCommand::Submit { by, at, .. } => {
            match status {
                QuoteStatus::Draft => {}
                QuoteStatus::PendingApproval => return Err(broken("quote-locked", "the quote is pending approval already")),
                QuoteStatus::Rejected | QuoteStatus::Declined => {
                    return Err(broken("revise-before-resubmitting", format!("the quote was {}; revise it, then submit the revision", status.name())))
                }
                QuoteStatus::Approved | QuoteStatus::Accepted => return Err(Rejection::NoChange("the quote is approved already")),
            }
            if quote.valid_until < at.date_naive() {
                return Err(broken("quote-expired", format!("the quote was valid until {}; revise it with a new date", quote.valid_until)));
            }
            OpportunityEvent::QuoteSubmitted(QuoteSubmitted {
                quote_id: id,
                revision,
                submitted_by: by.clone(),
                submitted_at: *at,
                steps: approval::chain(&quote.totals, opp.team_id.as_deref()),
            })
        }
        QuoteCommand::Decide { decision, comment, by, at, .. } => {
            // Someone outside the opportunity's team, without a tenant-wide role or such a
            // delegation, learns nothing of the quote: not its state, not its approvers.
            if !by.may_know_of(opp.team_id.as_deref()) {
                return Err(Rejection::NotYours { code: "not-the-approver", message: "you may not decide this quote".into() });
            }
            let step = quote.current_step().ok_or_else(|| broken("quote-not-pending", format!("the quote is {}, not pending approval", status.name())))?;
            let comment = comment.as_deref().map(str::trim).filter(|c| !c.is_empty()).map(String::from);
            if *decision == Decision::Rejected && comment.is_none() {
                return Err(Rejection::field_rule("comment", "rejection-says-why", "a rejection says why"));
            }
            let on_behalf_of = approval::decider(step, by, quote.submitted_by.as_deref(), &opp.owner_id).map_err(|e| match e {
                NotTheDecider::OwnQuote => Rejection::NotYours { code: "own-quote", message: "nobody approves their own quote".into() },
                NotTheDecider::NotTheApprover => Rejection::NotYours { code: "not-the-approver", message: format!("this step waits for {step}") },
            })?;
            OpportunityEvent::QuoteApprovalDecided(QuoteApprovalDecided {
                quote_id: id,
                revision,
                step: quote.approved_steps as i32 + 1,
                approver: step.approver,
                team: step.team.clone(),
                decision: *decision,
                decided_by: by.user.clone(),
                on_behalf_of,
                comment,
                decided_at: *at,
            })
        }
        QuoteCommand::Recall { by, at, .. } => {
            if status != QuoteStatus::PendingApproval {
                return Err(broken("quote-not-pending", format!("the quote is {}; only a pending quote can be recalled", status.name())));
            }
            if quote.submitted_by.as_deref() != Some(by.as_str()) {
                return Err(Rejection::NotYours { code: "only-the-submitter-recalls", message: "only the person who submitted the quote may recall it".into() });
            }
            OpportunityEvent::QuoteRecalled(QuoteRecalled { quote_id: id, revision, recalled_by: by.clone(), recalled_at: *at })
        }
        QuoteCommand::Accept { at, .. } => {
            if status != QuoteStatus::Approved {
                return Err(broken("quote-not-approved", format!("the quote is {}; the customer can accept an approved quote only", status.name())));
            }
            if quote.valid_until < at.date_naive() {
                return Err(broken("quote-expired", format!("the quote was valid until {}", quote.valid_until)));
            }
            let accepted = OpportunityEvent::QuoteAccepted(QuoteAccepted { quote_id: id, revision, accepted_at: *at });
            if quote.totals.net == opp.amount.value {
                return Ok(vec![accepted]);
            }
            // The opportunity's amount follows the accepted quote, in the same decision.
            let amount = Money { value: quote.totals.net, currency: quote.currency.clone() };
            return Ok(vec![accepted, OpportunityEvent::AmountChanged(AmountChanged { amount })]);
        }
        QuoteCommand::Decline { reason, at, .. } => {
            if status != QuoteStatus::Approved {
                return Err(broken("quote-not-approved", format!("the quote is {}; the customer can decline an approved quote only", status.name())));
            }
            OpportunityEvent::QuoteDeclined(QuoteDeclined { quote_id: id, revision, reason: valid_name("reason", reason)?, declined_at: *at })
        }
    };
    Ok(vec![event])
}

/// Folds a quote event into the opportunity's quotes.
pub(crate) fn evolve(opp: &mut Opportunity, event: &OpportunityEvent) {
    evolve_quotes(&mut opp.quotes, event);
    if let OpportunityEvent::QuoteAccepted(e) = event {
        opp.synced_quote = Some(e.quote_id);
    }
}

/// Folds a quote event into a list of quotes: for readers that keep an opportunity's quotes
/// and little else of it (its documents).
pub fn evolve_quotes(quotes: &mut Vec<Quote>, event: &OpportunityEvent) {
    if let OpportunityEvent::QuoteDrafted(e) = event {
        quotes.push(Quote {
            id: e.quote_id,
            revision: e.revision,
            currency: e.currency.clone(),
            lines: e.lines.clone(),
            valid_until: e.valid_until,
            totals: e.totals.clone(),
            status: QuoteStatus::Draft,
            submitted_by: None,
            submitted_at: None,
            chain: Vec::new(),
            approved_steps: 0,
            waiting_since: None,
            history: Vec::new(),
            decline_reason: None,
        });
        return;
    }
    let Some(id) = event.quote_id() else { return };
    let Some(quote) = quotes.iter_mut().find(|q| q.id == id) else { return };
    match event {
        OpportunityEvent::QuoteRevised(e) => {
            quote.revision = e.revision;
            quote.lines = e.lines.clone();
            quote.valid_until = e.valid_until;
            quote.totals = e.totals.clone();
            quote.status = QuoteStatus::Draft;
            quote.decline_reason = None;
        }
        OpportunityEvent::QuoteSubmitted(e) => {
            quote.submitted_by = Some(e.submitted_by.clone());
            quote.submitted_at = Some(e.submitted_at);
            quote.chain = e.steps.clone();
            quote.approved_steps = 0;
            quote.status = if e.steps.is_empty() { QuoteStatus::Approved } else { QuoteStatus::PendingApproval };
            quote.waiting_since = (!e.steps.is_empty()).then_some(e.submitted_at);
        }
        OpportunityEvent::QuoteApprovalDecided(e) => {
            quote.history.push(ApprovalRecord {
                revision: e.revision,
                step: e.step,
                approver: e.approver,
                team: e.team.clone(),
                decision: e.decision,
                decided_by: e.decided_by.clone(),
                on_behalf_of: e.on_behalf_of.clone(),
                comment: e.comment.clone(),
                requested_at: quote.waiting_since.unwrap_or(e.decided_at),
                decided_at: e.decided_at,
            });
            match e.decision {
                Decision::Rejected => {
                    quote.status = QuoteStatus::Rejected;
                    quote.waiting_since = None;
                }
                Decision::Approved => {
                    quote.approved_steps += 1;
                    let done = quote.approved_steps >= quote.chain.len();
                    quote.status = if done { QuoteStatus::Approved } else { QuoteStatus::PendingApproval };
                    quote.waiting_since = (!done).then_some(e.decided_at);
                }
            }
        }
        OpportunityEvent::QuoteRecalled(_) => {
            quote.status = QuoteStatus::Draft;
            quote.waiting_since = None;
        }
        OpportunityEvent::QuoteAccepted(_) => quote.status = QuoteStatus::Accepted,
        OpportunityEvent::QuoteDeclined(e) => {
            quote.status = QuoteStatus::Declined;
            quote.decline_reason = Some(e.reason.clone());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Delegated;
    use crate::policy::Role;
    use crate::aggregate::testing::{given_nothing, given_state};
    use crate::opportunity::{NewOpportunity, OpportunityCommand, Outcome, Stage};
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn line(product: &str, quantity: &str, price: &str, discount: &str) -> LineItem {
        LineItem { product: product.into(), quantity: d(quantity), unit_price: d(price), discount_percent: d(discount) }
    }

    fn eur() -> Currency {
        Currency::try_from("EUR".to_string()).unwrap()
    }

    fn at(day: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap().and_hms_opt(9, 0, 0).unwrap().and_utc()
    }

    fn apply(opp: Opportunity, cmd: OpportunityCommand) -> Result<Opportunity, Rejection> {
        given_state(opp).when(cmd).outcome()
    }

    fn q(cmd: QuoteCommand) -> OpportunityCommand {
        OpportunityCommand::Quote(cmd)
    }

    fn person(user: &str, roles: &[Role], team: &str) -> Acting {
        Acting { user: user.into(), roles: roles.to_vec(), team: Some(team.into()), delegations: vec![] }
    }

    const ID: Uuid = Uuid::from_u128(7);

    fn opportunity() -> Opportunity {
        let new = NewOpportunity {
            account_id: Uuid::from_u128(1),
            account_exists: true,
            name: "Fleet".into(),
            owner_id: "alice".into(),
            team_id: Some("east".into()),
            amount: Money { value: d("1000"), currency: eur() },
            close_date: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        };
        let created = given_nothing::<Opportunity>().when(OpportunityCommand::Create(new)).then_state();
        // At the last open stage, from where a deal is won.
        [Stage::Qualification, Stage::Proposal, Stage::Negotiation]
            .into_iter()
            .fold(created, |opp, stage| apply(opp, OpportunityCommand::MoveStage { stage }).unwrap())
    }

    /// A quote of 10,000.00 list at `discount` percent, drafted and submitted by alice.
    fn submitted(discount: &str) -> Opportunity {
        let lines = vec![line("Trucks", "4", "2500", discount)];
        let draft = QuoteCommand::Draft { quote_id: ID, currency: eur(), lines, valid_until: at(30).date_naive(), today: at(1).date_naive() };
        let opp = apply(opportunity(), q(draft)).unwrap();
        apply(opp, q(QuoteCommand::Submit { quote_id: ID, by: "alice".into(), at: at(2) })).unwrap()
    }

    fn decide_as(opp: Opportunity, by: Acting, decision: Decision, day: u32) -> Result<Opportunity, Rejection> {
        apply(opp, q(QuoteCommand::Decide { quote_id: ID, decision, comment: Some("ok".into()), by, at: at(day) }))
    }

    #[test]
    fn totals_are_exact_and_rounded_per_line() {
        let t = totals(&[line("A", "3", "33.333", "0"), line("B", "1", "10", "12.5")]);
        assert_eq!((t.list, t.net, t.discount), (d("110.00"), d("108.75"), d("1.25")));
        assert_eq!((t.max_line_discount_percent, t.discount_percent), (d("12.5"), d("1.14")));
    }

    #[test]
    fn a_preview_says_what_the_submission_will_need() {
        let (totals, chain) = preview(&[line("Trucks", "4", "2500", "25")], Some("east")).unwrap();
        assert_eq!(totals.net, d("7500.00"));
        assert_eq!(chain.iter().map(ToString::to_string).collect::<Vec<_>>(), ["a manager of team east", "finance"]);
        // The chain a submission of the same lines fixes.
        let Some(quote) = submitted("25").quotes.into_iter().next() else { panic!("the quote") };
        assert_eq!(quote.chain, chain);
        assert_eq!(preview(&[line("Trucks", "4", "2500", "5")], Some("east")).unwrap().1, vec![]);
        assert!(matches!(preview(&[], None), Err(Rejection::InvalidField { field: "lines", .. })));
    }

    #[test]
    fn bad_lines_are_named() {
        let opp = opportunity();
        let draft = |lines| q(QuoteCommand::Draft { quote_id: ID, currency: eur(), lines, valid_until: at(30).date_naive(), today: at(1).date_naive() });
        let field = |r: Rejection| match r {
            Rejection::InvalidField { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(apply(opp.clone(), draft(vec![])).unwrap_err()), "lines");
        assert_eq!(field(apply(opp.clone(), draft(vec![line("A", "0", "1", "0")])).unwrap_err()), "lines.quantity");
        assert_eq!(field(apply(opp.clone(), draft(vec![line("A", "10000000000", "1", "0")])).unwrap_err()), "lines.quantity");
        assert!(apply(opp.clone(), draft(vec![line("A", "1000000", "1", "0")])).is_ok());
        assert_eq!(field(apply(opp.clone(), draft(vec![line("A", "1", "1", "101")])).unwrap_err()), "lines.discount_percent");
        assert_eq!(field(apply(opp.clone(), draft(vec![line(" ", "1", "1", "0")])).unwrap_err()), "lines.product");
        let usd = q(QuoteCommand::Draft {
            quote_id: ID,
            currency: Currency::try_from("USD".to_string()).unwrap(),
            lines: vec![line("A", "1", "1", "0")],
            valid_until: at(30).date_naive(),
            today: at(1).date_naive(),
        });
        assert_eq!(apply(opp, usd).unwrap_err().rule(), "currency-is-fixed");
    }

    #[test]
    fn a_small_discount_needs_no_approval() {
        let opp = submitted("10");
        assert_eq!(opp.quotes[0].status, QuoteStatus::Approved);
        assert!(opp.quotes[0].chain.is_empty());
    }

    #[test]
    fn a_large_discount_goes_to_the_manager_then_finance() {
        let opp = submitted("25");
        let quote = &opp.quotes[0];
        assert_eq!((quote.status, quote.chain.len(), quote.waiting_since), (QuoteStatus::PendingApproval, 2, Some(at(2))));
        let finance = person("fiona", &[Role::Finance, Role::Approver], "finance");
        assert_eq!(decide_as(opp.clone(), finance.clone(), Decision::Approved, 3).unwrap_err().rule(), "not-the-approver", "steps go in order");
        let outsider = decide_as(opp.clone(), person("wes", &[Role::Manager, Role::Approver], "west"), Decision::Approved, 3).unwrap_err();
        assert_eq!((outsider.rule(), outsider.to_string().contains("east")), ("not-the-approver", false), "another team learns nothing: {outsider}");
        let opp = decide_as(opp, person("mia", &[Role::Manager, Role::Approver], "east"), Decision::Approved, 3).unwrap();
        assert_eq!((opp.quotes[0].status, opp.quotes[0].waiting_since), (QuoteStatus::PendingApproval, Some(at(3))));
        let opp = decide_as(opp, finance, Decision::Approved, 5).unwrap();
        let quote = &opp.quotes[0];
        assert_eq!(quote.status, QuoteStatus::Approved);
        let steps: Vec<_> = quote.history.iter().map(|h| (h.step, h.decided_by.as_str(), h.requested_at, h.decided_at)).collect();
        assert_eq!(steps, vec![(1, "mia", at(2), at(3)), (2, "fiona", at(3), at(5))]);
    }

    #[test]
    fn nobody_approves_their_own_quote() {
        let opp = submitted("15");
        let alice = person("alice", &[Role::Manager, Role::Approver], "east");
        assert_eq!(decide_as(opp, alice, Decision::Approved, 3).unwrap_err().rule(), "own-quote");
    }

    #[test]
    fn a_delegate_decides_on_behalf_of_the_approver() {
        let opp = submitted("15");
        let mut bob = person("bob", &[Role::Rep], "east");
        assert_eq!(decide_as(opp.clone(), bob.clone(), Decision::Approved, 3).unwrap_err().rule(), "not-the-approver");
        bob.delegations.push(Delegated { delegator: "mia".into(), roles: vec![Role::Manager, Role::Approver], team: Some("east".into()) });
        let opp = decide_as(opp, bob, Decision::Approved, 3).unwrap();
        assert_eq!(opp.quotes[0].history[0].on_behalf_of.as_deref(), Some("mia"));
        assert_eq!(opp.quotes[0].status, QuoteStatus::Approved);
    }

    #[test]
    fn a_pending_quote_is_locked_and_may_be_recalled_by_its_submitter() {
        let opp = submitted("15");
        let revise = q(QuoteCommand::Revise { quote_id: ID, lines: vec![line("Trucks", "4", "2500", "5")], valid_until: at(30).date_naive(), today: at(2).date_naive() });
        assert_eq!(apply(opp.clone(), revise.clone()).unwrap_err().rule(), "quote-locked");
        assert_eq!(apply(opp.clone(), q(QuoteCommand::Recall { quote_id: ID, by: "bob".into(), at: at(3) })).unwrap_err().rule(), "only-the-submitter-recalls");
        let opp = apply(opp, q(QuoteCommand::Recall { quote_id: ID, by: "alice".into(), at: at(3) })).unwrap();
        assert_eq!(opp.quotes[0].status, QuoteStatus::Draft);
        let opp = apply(opp, revise).unwrap();
        assert_eq!((opp.quotes[0].revision, opp.quotes[0].totals.net), (2, d("9500.00")));
    }

    #[test]
    fn a_rejected_quote_is_revised_and_resubmitted() {
        let opp = submitted("15");
        let mia = person("mia", &[Role::Manager, Role::Approver], "east");
        let no_reason = q(QuoteCommand::Decide { quote_id: ID, decision: Decision::Rejected, comment: Some(" ".into()), by: mia.clone(), at: at(3) });
        assert_eq!(apply(opp.clone(), no_reason).unwrap_err().rule(), "rejection-says-why");
        let opp = decide_as(opp, mia, Decision::Rejected, 3).unwrap();
        assert_eq!(opp.quotes[0].status, QuoteStatus::Rejected);
        let submit = q(QuoteCommand::Submit { quote_id: ID, by: "alice".into(), at: at(4) });
        assert_eq!(apply(opp.clone(), submit.clone()).unwrap_err().rule(), "revise-before-resubmitting");
        let revise = q(QuoteCommand::Revise { quote_id: ID, lines: vec![line("Trucks", "4", "2500", "8")], valid_until: at(30).date_naive(), today: at(4).date_naive() });
        let opp = apply(apply(opp, revise).unwrap(), submit).unwrap();
        assert_eq!((opp.quotes[0].status, opp.quotes[0].history.len()), (QuoteStatus::Approved, 1), "history survives revisions");
    }

    #[test]
    fn winning_needs_an_accepted_quote_and_the_amount_follows_it() {
        let opp = submitted("15");
        let won = OpportunityCommand::Close { outcome: Outcome::Won, reason: "signed".into() };
        assert_eq!(apply(opp.clone(), won.clone()).unwrap_err().rule(), "quote-pending-approval");
        let opp = decide_as(opp, person("mia", &[Role::Manager, Role::Approver], "east"), Decision::Approved, 3).unwrap();
        assert_eq!(apply(opp.clone(), won.clone()).unwrap_err().rule(), "accepted-quote-required");
        let opp = apply(opp, q(QuoteCommand::Accept { quote_id: ID, at: at(4) })).unwrap();
        assert_eq!((opp.amount.value, opp.synced_quote), (d("8500.00"), Some(ID)));
        let change = OpportunityCommand::ChangeAmount { amount: Money { value: d("1"), currency: eur() } };
        assert_eq!(apply(opp.clone(), change).unwrap_err().rule(), "amount-follows-quote");
        let revise = q(QuoteCommand::Revise { quote_id: ID, lines: vec![line("A", "1", "1", "0")], valid_until: at(30).date_naive(), today: at(4).date_naive() });
        assert_eq!(apply(opp.clone(), revise).unwrap_err().rule(), "accepted-quote-is-final");
        assert_eq!(apply(opp, won).unwrap().stage, Stage::ClosedWon);
    }

    #[test]
    fn an_expired_quote_cannot_be_submitted_or_accepted() {
        let draft = QuoteCommand::Draft { quote_id: ID, currency: eur(), lines: vec![line("A", "1", "1", "0")], valid_until: at(3).date_naive(), today: at(1).date_naive() };
        let opp = apply(opportunity(), q(draft)).unwrap();
        let late = q(QuoteCommand::Submit { quote_id: ID, by: "alice".into(), at: at(4) });
        assert_eq!(apply(opp.clone(), late).unwrap_err().rule(), "quote-expired");
        let opp = apply(opp, q(QuoteCommand::Submit { quote_id: ID, by: "alice".into(), at: at(2) })).unwrap();
        assert_eq!(apply(opp, q(QuoteCommand::Accept { quote_id: ID, at: at(4) })).unwrap_err().rule(), "quote-expired");
    }
}

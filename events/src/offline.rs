//! Offline intents: changes a client recorded while it had no connection, decided against
//! an opportunity that may have moved on since the version the client saw (its base).
//!
//! How each kind of change meets a concurrent one is the rule of this module, and only here:
//! - preference fields ([`Preference`]) go to the last writer by device time;
//! - a quote's lines merge three ways against the base revision, line by line;
//! - stage and amount (money) are never merged: a concurrent change sends the intent to a
//!   review, which a person resolves with a command that names both sides.
//!
//! The writer keeps what merging needs of the past in [`Ledger`], beside the state.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::opportunity::{Opportunity, OpportunityCommand, OpportunityEvent, Stage, MAX_TEXT};
use crate::quote::{self, LineItem, QuoteCommand};
use crate::{Money, Rejection};

crate::text_enum! {
    /// The fields that say what a seller prefers rather than what the business committed to:
    /// the last writer wins them, by the time on the writer's device.
    pub enum Preference {
        CloseDate => "close_date",
        NextStep => "next_step",
        Description => "description",
    }
}

/// A description may hold a paragraph or two; other texts are short.
pub const MAX_DESCRIPTION: usize = 4000;

impl Preference {
    /// The field's value as the opportunity holds it, as text (a date in ISO 8601).
    pub fn value_of(self, opp: &Opportunity) -> Option<String> {
        match self {
            Preference::CloseDate => Some(opp.close_date.to_string()),
            Preference::NextStep => opp.next_step.clone(),
            Preference::Description => opp.description.clone(),
        }
    }

    /// The value as it will be stored, or why not: a date for the close date; trimmed text,
    /// none when empty, for the others. What a value may be depends on the field, so a
    /// refusal names the rule `preference-value`.
    pub fn valid(self, value: Option<&str>) -> Result<Option<String>, Rejection> {
        self.checked(value).map_err(|e| match e {
            Rejection::InvalidField { field, message } => Rejection::field_rule(field, "preference-value", message),
            other => other,
        })
    }

    fn checked(self, value: Option<&str>) -> Result<Option<String>, Rejection> {
        let text = value.map(str::trim).filter(|v| !v.is_empty());
        match self {
            Preference::CloseDate => {
                let text = text.ok_or_else(|| Rejection::invalid("close_date", "an opportunity always has a close date"))?;
                let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| Rejection::invalid("close_date", format!("'{text}' is not a date such as 2027-03-31")))?;
                Ok(Some(crate::dates::within_window("close_date", date)?.to_string()))
            }
            Preference::NextStep | Preference::Description => {
                let (field, max) = if self == Preference::NextStep { ("next_step", MAX_TEXT) } else { ("description", MAX_DESCRIPTION) };
                if text.is_some_and(|t| t.chars().count() > max) {
                    return Err(Rejection::invalid(field, format!("at most {max} characters")));
                }
                Ok(text.map(String::from))
            }
        }
    }
}

/// Where an offline change came from: the intent (its idempotency key), when the device
/// recorded it, and the version of the opportunity it was based on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OfflineOrigin {
    pub intent_key: String,
    pub device_time: DateTime<Utc>,
    pub base_version: i64,
}

/// A change the client recorded offline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Intent {
    pub origin: OfflineOrigin,
    pub change: Change,
    /// Names the review, should the intent need one (the shell derives it from the key).
    pub review_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    SetPreference { field: Preference, value: Option<String> },
    MoveStage { stage: Stage },
    ChangeAmount { amount: Money },
    ReviseQuote { quote_id: Uuid, base_revision: i32, lines: Vec<LineItem>, valid_until: NaiveDate },
}

/// One side of a conflict, as a review shows it and as a resolution may edit it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Stage(Stage),
    Amount(Money),
    Quote { lines: Vec<LineItem>, valid_until: NaiveDate },
}

impl Side {
    fn json(&self) -> String {
        serde_json::to_string(self).expect("a side serializes")
    }

    pub fn parse(json: &str) -> Result<Side, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}

/// A preference field set, online or from an offline intent (which it then names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferenceChanged {
    pub field: Preference,
    pub value: Option<String>,
    /// The value it replaced.
    pub replaced: Option<String>,
    /// When it was written: the device's time for an offline intent, else the server's.
    pub written_at: DateTime<Utc>,
    pub offline: Option<OfflineOrigin>,
}

/// An offline intent met a concurrent change that no rule may merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewOpened {
    pub review_id: Uuid,
    /// "stage", "amount" or "quote".
    pub subject: String,
    pub quote_id: Option<Uuid>,
    pub author: String,
    pub intent: OfflineOrigin,
    /// Each side as JSON ([`Side`]); the base is unknown when it is older than the ledger.
    pub base: Option<String>,
    pub theirs: String,
    pub mine: String,
    /// The version of the opportunity whose event made the server's side.
    pub theirs_version: i64,
    pub reason: String,
}

crate::text_enum! {
    pub enum Choice {
        Mine => "mine",
        Theirs => "theirs",
        Edit => "edit",
    }
}

/// A person resolved a review: the value chosen or edited, with lineage to both sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewResolved {
    pub review_id: Uuid,
    pub choice: Choice,
    /// The value that stands now, as JSON ([`Side`]).
    pub value: String,
    pub resolved_by: String,
    /// The offline intent (mine) and the version whose event made the server's side (theirs).
    pub intent_key: String,
    pub theirs_version: i64,
}

/// A review as the opportunity holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    pub opened: ReviewOpened,
    pub resolved: Option<ReviewResolved>,
}

/// The outcome of an accepted intent (a refused one is a [`Rejection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    /// Merged with what changed since the base, and how.
    Merged(String),
    NeedsReview(Uuid),
}

/// What the writer remembers to merge intents: the last writes of every field an intent may
/// change, and every revision of every quote. Readers of the state need none of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    writes: BTreeMap<String, Vec<Write>>,
    quote_revisions: BTreeMap<Uuid, BTreeMap<i32, Side>>,
}

/// One write of a field: at which version, its value as JSON or text, and when it was
/// written (known for preferences written since they carry it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Write {
    version: i64,
    value: Option<String>,
    written_at: Option<DateTime<Utc>>,
}

/// Enough writes of one field to find its value at a base that a device held for days.
const WRITES_KEPT: usize = 32;

impl Ledger {
    fn write(&mut self, field: &str, version: i64, value: Option<String>, written_at: Option<DateTime<Utc>>) {
        let writes = self.writes.entry(field.to_string()).or_default();
        writes.push(Write { version, value, written_at });
        if writes.len() > WRITES_KEPT {
            writes.remove(0);
        }
    }

    fn last(&self, field: &str) -> Option<&Write> {
        self.writes.get(field).and_then(|w| w.last())
    }

    /// The field's value at `version`, when the ledger still reaches back that far.
    fn at(&self, field: &str, version: i64) -> Option<Option<String>> {
        let writes = self.writes.get(field)?;
        writes.iter().rev().find(|w| w.version <= version).map(|w| w.value.clone())
    }

    /// Records what `event`, the opportunity's event number `opp.version`, wrote.
    pub(crate) fn record(&mut self, opp: &Opportunity, event: &OpportunityEvent) {
        let v = opp.version;
        let stage = || Some(Side::Stage(opp.stage).json());
        let amount = || Some(Side::Amount(opp.amount.clone()).json());
        match event {
            OpportunityEvent::Created(_) => {
                self.write("stage", v, stage(), None);
                self.write("amount", v, amount(), None);
                for field in Preference::ALL {
                    self.write(field.name(), v, field.value_of(opp), None);
                }
            }
            OpportunityEvent::StageMoved(_) | OpportunityEvent::Closed(_) => self.write("stage", v, stage(), None),
            OpportunityEvent::AmountChanged(_) => self.write("amount", v, amount(), None),
            OpportunityEvent::CloseDateChanged(_) => self.write(Preference::CloseDate.name(), v, Preference::CloseDate.value_of(opp), None),
            OpportunityEvent::PreferenceChanged(e) => self.write(e.field.name(), v, e.value.clone(), Some(e.written_at)),
            OpportunityEvent::QuoteDrafted(quote::QuoteDrafted { quote_id, revision, lines, valid_until, .. })
            | OpportunityEvent::QuoteRevised(quote::QuoteRevised { quote_id, revision, lines, valid_until, .. }) => {
                self.quote_revisions.entry(*quote_id).or_default().insert(*revision, Side::Quote { lines: lines.clone(), valid_until: *valid_until });
            }
            _ => {}
        }
    }
}

/// Decides an intent against the opportunity as it is now: its events and how it went.
pub fn decide(opp: &Opportunity, intent: &Intent, author: &str, today: NaiveDate) -> Result<(Vec<OpportunityEvent>, Verdict), Rejection> {
    if opp.stage.is_closed() {
        return Err(Rejection::OpportunityClosed);
    }
    let origin = &intent.origin;
    if origin.base_version < 1 || origin.base_version > opp.version {
        return Err(Rejection::field_rule(
            "base_version",
            "unknown-base-version",
            format!("the opportunity has versions 1 to {}; the intent names {}", opp.version, origin.base_version),
        ));
    }
    let review = |subject: &str, quote_id: Option<Uuid>, base: Option<String>, theirs: &Side, mine: &Side, theirs_version: i64, reason: String| {
        let opened = ReviewOpened {
            review_id: intent.review_id,
            subject: subject.to_string(),
            quote_id,
            author: author.to_string(),
            intent: origin.clone(),
            base,
            theirs: theirs.json(),
            mine: mine.json(),
            theirs_version,
            reason,
        };
        Ok((vec![OpportunityEvent::ReviewOpened(opened)], Verdict::NeedsReview(intent.review_id)))
    };
    let already = || Ok((Vec::new(), Verdict::Merged("the opportunity already holds this value; nothing changed".into())));
    // Nothing concurrent stands in the way: decided as the online command.
    let applied = |command: OpportunityCommand| crate::opportunity::decide_change(opp, &command).map(|events| (events, Verdict::Applied));
    match &intent.change {
        Change::SetPreference { field, value } => {
            let value = field.valid(value.as_deref())?;
            let current = field.value_of(opp);
            if value == current {
                return already();
            }
            let changed = PreferenceChanged { field: *field, value, replaced: current.clone(), written_at: origin.device_time, offline: Some(origin.clone()) };
            let event = vec![OpportunityEvent::PreferenceChanged(changed)];
            match opp.ledger.last(field.name()).filter(|w| w.version > origin.base_version) {
                None => Ok((event, Verdict::Applied)),
                Some(Write { written_at: Some(at), .. }) if *at > origin.device_time => Ok((
                    Vec::new(),
                    Verdict::Merged(format!("last writer wins: the {} written at {at} is newer than yours ({}); yours was not applied", field.name(), origin.device_time)),
                )),
                Some(w) => Ok((
                    event,
                    Verdict::Merged(format!(
                        "last writer wins: yours ({}) is newer than the {} written in version {}; it replaced {}",
                        origin.device_time,
                        field.name(),
                        w.version,
                        current.as_deref().unwrap_or("nothing")
                    )),
                )),
            }
        }
        Change::MoveStage { stage } => {
            let (mine, theirs) = (Side::Stage(*stage), Side::Stage(opp.stage));
            if mine == theirs {
                return already();
            }
            match concurrent(opp, origin, "stage") {
                None => applied(OpportunityCommand::MoveStage { stage: *stage }),
                Some((base, at)) => {
                    let reason = format!("the stage changed to {} in version {at}, after your version {}", opp.stage.name(), origin.base_version);
                    review("stage", None, base, &theirs, &mine, at, reason)
                }
            }
        }
        Change::ChangeAmount { amount } => {
            let (mine, theirs) = (Side::Amount(amount.clone()), Side::Amount(opp.amount.clone()));
            if mine == theirs {
                return already();
            }
            match concurrent(opp, origin, "amount") {
                None => applied(OpportunityCommand::ChangeAmount { amount: amount.clone() }),
                Some((base, at)) => {
                    let reason = format!("the amount changed to {} {} in version {at}, after your version {}", opp.amount.value, opp.amount.currency.as_str(), origin.base_version);
                    review("amount", None, base, &theirs, &mine, at, reason)
                }
            }
        }
        Change::ReviseQuote { quote_id, base_revision, lines, valid_until } => {
            let revise = |lines: Vec<LineItem>, valid_until: NaiveDate| QuoteCommand::Revise { quote_id: *quote_id, lines, valid_until, today };
            // What the quote refuses (locked, accepted, bad lines) it refuses offline too.
            let applied = quote::decide(opp, &revise(lines.clone(), *valid_until))?;
            let quote = opp.quotes.iter().find(|q| q.id == *quote_id).expect("decided on it");
            if quote.revision == *base_revision {
                return Ok((applied, Verdict::Applied));
            }
            let base = opp.ledger.quote_revisions.get(quote_id).and_then(|r| r.get(base_revision)).ok_or_else(|| {
                Rejection::field_rule("base_revision", "unknown-base-revision", format!("the quote has revisions 1 to {}; the intent names {base_revision}", quote.revision))
            })?;
            let Side::Quote { lines: base_lines, valid_until: base_until } = base else { unreachable!("quote revisions are quote sides") };
            let theirs = Side::Quote { lines: quote.lines.clone(), valid_until: quote.valid_until };
            let mine = Side::Quote { lines: lines.clone(), valid_until: *valid_until };
            let merged_until = merge_one(base_until, valid_until, &quote.valid_until);
            match (merge_lines(base_lines, lines, &quote.lines), merged_until) {
                (Ok(merged), Some(until)) => {
                    if merged == quote.lines && *until == quote.valid_until {
                        return Ok((Vec::new(), Verdict::Merged(format!("revision {} already holds your changes; nothing changed", quote.revision))));
                    }
                    let events = quote::decide(opp, &revise(merged, *until))?;
                    let how = format!("merged line by line with revision {}, made since your revision {base_revision}: both sides' changes kept", quote.revision);
                    Ok((events, Verdict::Merged(how)))
                }
                (lines, _) => {
                    let clash = match lines {
                        Err(products) => format!("both sides changed the line(s) {}", products.join(", ")),
                        Ok(_) => "both sides changed the validity".into(),
                    };
                    let reason = format!("{clash} since revision {base_revision}; the quote is at revision {}", quote.revision);
                    review("quote", Some(*quote_id), Some(base.json()), &theirs, &mine, opp.version, reason)
                }
            }
        }
    }
}

/// Whether someone changed `field` since the intent's base: its value at the base (when the
/// ledger still reaches back that far) and the version of the last change.
fn concurrent(opp: &Opportunity, origin: &OfflineOrigin, field: &str) -> Option<(Option<String>, i64)> {
    let last = opp.ledger.last(field).filter(|w| w.version > origin.base_version)?;
    Some((opp.ledger.at(field, origin.base_version).flatten(), last.version))
}

/// A three-way merge of one value: the side that changed it wins; `None` when both did,
/// differently.
fn merge_one<'a, T: PartialEq>(base: &T, mine: &'a T, theirs: &'a T) -> Option<&'a T> {
    match (mine == base, theirs == base) {
        (true, _) => Some(theirs),
        (false, true) => Some(mine),
        (false, false) => (mine == theirs).then_some(mine),
    }
}

/// A line is known by its product and, for a product on several lines, its place among them.
fn keyed(lines: &[LineItem]) -> Vec<((String, usize), &LineItem)> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    lines
        .iter()
        .map(|line| {
            let nth = seen.entry(line.product.as_str()).or_default();
            *nth += 1;
            ((line.product.clone(), *nth), line)
        })
        .collect()
}

/// Merges quote lines three ways: a line changed, added or removed on one side only takes
/// that side; changed on both, differently, it is a conflict (`Err` names the products).
/// The merged lines keep the server's order, with the lines only the intent added after.
pub fn merge_lines(base: &[LineItem], mine: &[LineItem], theirs: &[LineItem]) -> Result<Vec<LineItem>, Vec<String>> {
    let (base, mine, theirs) = (keyed(base), keyed(mine), keyed(theirs));
    let find = |lines: &[((String, usize), &LineItem)], key: &(String, usize)| lines.iter().find(|(k, _)| k == key).map(|(_, l)| (*l).clone());
    let mut keys: Vec<&(String, usize)> = theirs.iter().map(|(k, _)| k).collect();
    keys.extend(mine.iter().map(|(k, _)| k).filter(|k| find(&theirs, k).is_none()));
    keys.extend(base.iter().map(|(k, _)| k).filter(|k| find(&theirs, k).is_none() && find(&mine, k).is_none()));
    let (mut merged, mut conflicts) = (Vec::new(), Vec::new());
    for key in keys {
        match merge_one(&find(&base, key), &find(&mine, key), &find(&theirs, key)) {
            Some(line) => merged.extend(line.clone()),
            None => conflicts.push(key.0.clone()),
        }
    }
    if conflicts.is_empty() { Ok(merged) } else { Err(conflicts) }
}

/// Decides the resolution of an open review: the events of the value chosen (none when the
/// server's side stands) and the resolution itself.
pub fn resolve(opp: &Opportunity, review_id: Uuid, choice: Choice, edited: Option<&Side>, by: &str, today: NaiveDate) -> Result<Vec<OpportunityEvent>, Rejection> {
    let review = opp.reviews.iter().find(|r| r.opened.review_id == review_id).ok_or(Rejection::NotFound)?;
    if review.resolved.is_some() {
        return Err(Rejection::Broken { rule: "review-resolved", message: "this review is resolved already".into() });
    }
    let opened = &review.opened;
    let unreadable = |e: String| Rejection::Broken { rule: "review-unreadable", message: format!("the review's sides cannot be read: {e}") };
    let side = match (choice, edited) {
        (Choice::Theirs, None) => None,
        (Choice::Mine, None) => Some(Side::parse(&opened.mine).map_err(unreadable)?),
        (Choice::Edit, Some(side)) => Some(side.clone()),
        (Choice::Edit, None) => return Err(Rejection::field_rule("value", "resolution-value", "an edit gives the value that should stand")),
        (_, Some(_)) => return Err(Rejection::field_rule("value", "resolution-value", "only an edit gives a value")),
    };
    let mut events = match &side {
        None => Vec::new(),
        Some(side) => {
            let same_kind = matches!((side, Side::parse(&opened.mine).map_err(unreadable)?), (Side::Stage(_), Side::Stage(_)) | (Side::Amount(_), Side::Amount(_)) | (Side::Quote { .. }, Side::Quote { .. }));
            if !same_kind {
                return Err(Rejection::field_rule("value", "resolution-value", format!("this review is about the {}; the value must be one", opened.subject)));
            }
            let command = match side.clone() {
                Side::Stage(stage) => OpportunityCommand::MoveStage { stage },
                Side::Amount(amount) => OpportunityCommand::ChangeAmount { amount },
                Side::Quote { lines, valid_until } => {
                    let quote_id = opened.quote_id.ok_or_else(|| unreadable("a quote review names no quote".into()))?;
                    OpportunityCommand::Quote(QuoteCommand::Revise { quote_id, lines, valid_until, today })
                }
            };
            match crate::opportunity::decide_change(opp, &command) {
                // The value stands already: the resolution alone records the choice.
                Err(Rejection::NoChange(_)) => Vec::new(),
                other => other?,
            }
        }
    };
    let value = side.map_or_else(|| opened.theirs.clone(), |s| s.json());
    events.push(OpportunityEvent::ReviewResolved(ReviewResolved {
        review_id,
        choice,
        value,
        resolved_by: by.to_string(),
        intent_key: opened.intent.intent_key.clone(),
        theirs_version: opened.theirs_version,
    }));
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opportunity::{AmountChanged, OpportunityCreated};
    use crate::Currency;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    fn eur(value: &str) -> Money {
        Money { value: Decimal::from_str(value).unwrap(), currency: Currency::try_from("EUR".to_string()).unwrap() }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 5, hour, 0, 0).unwrap()
    }

    /// Created (version 1), then online: the next step at 10:00 (2), the amount (3).
    fn moved_on() -> Opportunity {
        let created = OpportunityEvent::Created(OpportunityCreated {
            account_id: Uuid::nil(),
            name: "Fleet".into(),
            owner_id: "alice".into(),
            team_id: None,
            amount: eur("10000.00"),
            close_date: NaiveDate::from_ymd_opt(2027, 3, 31).unwrap(),
            stage: Stage::Prospecting,
            probability: 10,
        });
        let next_step = OpportunityEvent::PreferenceChanged(PreferenceChanged { field: Preference::NextStep, value: Some("Send the brochure".into()), replaced: None, written_at: at(10), offline: None });
        let amount = OpportunityEvent::AmountChanged(AmountChanged { amount: eur("12000.00") });
        let opp = <Opportunity as crate::Aggregate>::evolve(None, &created);
        after(opp, &[next_step, amount])
    }

    fn after(opp: Opportunity, events: &[OpportunityEvent]) -> Opportunity {
        events.iter().fold(opp, |state, e| <Opportunity as crate::Aggregate>::evolve(Some(state), e))
    }

    fn offline(base_version: i64, device_time: DateTime<Utc>, change: Change) -> Intent {
        Intent { origin: OfflineOrigin { intent_key: "k".into(), device_time, base_version }, change, review_id: Uuid::from_u128(7) }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()
    }

    #[test]
    fn the_last_writer_of_a_preference_wins_by_device_time() {
        let opp = moved_on();
        let set = |hour| offline(1, at(hour), Change::SetPreference { field: Preference::NextStep, value: Some("Call Bob".into()) });
        let (events, verdict) = decide(&opp, &set(9), "alice", today()).unwrap();
        assert!(events.is_empty() && matches!(verdict, Verdict::Merged(ref how) if how.contains("newer than yours")), "{verdict:?}");
        let (events, verdict) = decide(&opp, &set(11), "alice", today()).unwrap();
        assert!(matches!(verdict, Verdict::Merged(_)));
        let [OpportunityEvent::PreferenceChanged(e)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!((e.replaced.as_deref(), e.written_at, e.offline.as_ref().map(|o| o.intent_key.as_str())), (Some("Send the brochure"), at(11), Some("k")));
        let description = offline(1, at(9), Change::SetPreference { field: Preference::Description, value: Some("Twelve trucks".into()) });
        assert_eq!(decide(&opp, &description, "alice", today()).unwrap().1, Verdict::Applied, "nobody else wrote it");
    }

    #[test]
    fn money_changed_on_both_sides_goes_to_review_and_is_resolved_with_lineage() {
        let opp = moved_on();
        let change = Change::ChangeAmount { amount: eur("9000.00") };
        let (events, verdict) = decide(&opp, &offline(1, at(11), change.clone()), "alice", today()).unwrap();
        assert_eq!(verdict, Verdict::NeedsReview(Uuid::from_u128(7)));
        let [OpportunityEvent::ReviewOpened(opened)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!((Side::parse(opened.base.as_deref().unwrap()), opened.theirs_version), (Ok(Side::Amount(eur("10000.00"))), 3));
        assert_eq!(decide(&opp, &offline(3, at(11), change), "alice", today()).unwrap().1, Verdict::Applied, "based on the latest: no conflict");

        let reviewed = after(opp, &events);
        let resolved = resolve(&reviewed, Uuid::from_u128(7), Choice::Mine, None, "mia", today()).unwrap();
        assert!(matches!(&resolved[0], OpportunityEvent::AmountChanged(a) if a.amount == eur("9000.00")), "{resolved:?}");
        let OpportunityEvent::ReviewResolved(r) = &resolved[1] else { panic!("{resolved:?}") };
        assert_eq!((r.intent_key.as_str(), r.theirs_version, r.resolved_by.as_str()), ("k", 3, "mia"));
        let done = after(reviewed, &resolved);
        assert_eq!(resolve(&done, Uuid::from_u128(7), Choice::Theirs, None, "mia", today()).unwrap_err().rule(), "review-resolved");
    }

    fn line(product: &str, quantity: &str) -> LineItem {
        LineItem { product: product.into(), quantity: Decimal::from_str(quantity).unwrap(), unit_price: Decimal::from(100), discount_percent: Decimal::ZERO }
    }

    #[test]
    fn different_lines_changed_on_each_side_both_survive() {
        let base = [line("Truck", "1"), line("Trailer", "1"), line("Service", "1")];
        let mine = [line("Truck", "2"), line("Trailer", "1"), line("Service", "1"), line("Tyres", "4")];
        let theirs = [line("Truck", "1"), line("Trailer", "3")];
        let merged = merge_lines(&base, &mine, &theirs).unwrap();
        assert_eq!(merged, vec![line("Truck", "2"), line("Trailer", "3"), line("Tyres", "4")], "adjacent lines merge; their removal of Service stands");
    }

    #[test]
    fn the_same_line_changed_on_both_sides_is_a_conflict() {
        let base = [line("Truck", "1"), line("Trailer", "1")];
        let err = merge_lines(&base, &[line("Truck", "2"), line("Trailer", "1")], &[line("Truck", "5"), line("Trailer", "2")]).unwrap_err();
        assert_eq!(err, vec!["Truck".to_string()]);
        let same = merge_lines(&base, &[line("Truck", "2"), line("Trailer", "1")], &[line("Truck", "2"), line("Trailer", "1")]).unwrap();
        assert_eq!(same, vec![line("Truck", "2"), line("Trailer", "1")], "the same change on both sides is no conflict");
        let removed = merge_lines(&base, &[line("Trailer", "1")], &[line("Truck", "3"), line("Trailer", "1")]).unwrap_err();
        assert_eq!(removed, vec!["Truck".to_string()], "removed on one side, changed on the other");
    }

    #[test]
    fn a_product_on_several_lines_is_known_by_its_place() {
        let base = [line("Truck", "1"), line("Truck", "2")];
        let merged = merge_lines(&base, &[line("Truck", "7"), line("Truck", "2")], &[line("Truck", "1"), line("Truck", "9")]).unwrap();
        assert_eq!(merged, vec![line("Truck", "7"), line("Truck", "9")]);
    }

    #[test]
    fn preferences_are_text_dates_or_nothing() {
        assert_eq!(Preference::NextStep.valid(Some("  call Bob ")), Ok(Some("call Bob".into())));
        assert_eq!(Preference::Description.valid(Some("   ")), Ok(None));
        assert!(Preference::CloseDate.valid(None).is_err());
        assert!(Preference::CloseDate.valid(Some("31.3.2027")).is_err());
        assert_eq!(Preference::CloseDate.valid(Some("2027-03-31")), Ok(Some("2027-03-31".into())));
        assert_eq!(Preference::NextStep.valid(Some(&"x".repeat(MAX_TEXT + 1))).unwrap_err().rule(), "preference-value");
    }
}

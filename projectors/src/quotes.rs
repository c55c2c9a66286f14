//! Quotes as the `opportunities` read model stores them (its `quotes` column) and the query
//! API serves them: types of their own, apart from the domain's `Quote`. A renamed domain
//! field is then a compile error in the conversions below, never a silent change of the
//! stored rows or of the public API; the test at the bottom pins the format itself.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tidemark_events::approval::{Approver, Step};
use tidemark_events::quote::{ApprovalRecord, Decision, LineItem, Quote, QuoteStatus, Totals};
use tidemark_events::Currency;
use utoipa::ToSchema;
use uuid::Uuid;

/// A quote with its lines, totals, status, approval chain and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuoteView {
    pub id: Uuid,
    pub revision: i32,
    pub currency: String,
    pub lines: Vec<LineView>,
    pub valid_until: NaiveDate,
    pub totals: TotalsView,
    /// draft, pending_approval, approved, rejected, accepted or declined
    pub status: String,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// The approvals the current submission needs, in order.
    pub chain: Vec<StepView>,
    /// How many steps of the chain are approved.
    pub approved_steps: usize,
    /// Since when the current step has been waiting.
    pub waiting_since: Option<DateTime<Utc>>,
    /// Every decided step, of every revision.
    pub history: Vec<DecisionView>,
    pub decline_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    pub product: String,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "3")]
    pub quantity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "1000.00")]
    pub unit_price: Decimal,
    /// Percent off this line's list price.
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "10")]
    pub discount_percent: Decimal,
}

/// Exact decimal strings, two places for money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TotalsView {
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "3000.00")]
    pub list: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "300.00")]
    pub discount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "2700.00")]
    pub net: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "10")]
    pub max_line_discount_percent: Decimal,
    /// The discount of the whole quote, percent of its list price.
    #[serde(with = "rust_decimal::serde::str")]
    #[schema(value_type = String, example = "10.00")]
    pub discount_percent: Decimal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StepView {
    /// manager or finance
    pub approver: String,
    /// The team whose manager approves.
    pub team: Option<String>,
}

/// One decided approval step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionView {
    pub revision: i32,
    pub step: i32,
    /// manager or finance
    pub approver: String,
    pub team: Option<String>,
    /// approved or rejected
    pub decision: String,
    pub decided_by: String,
    /// The approver the step was waiting for, when a delegate decided it.
    pub on_behalf_of: Option<String>,
    pub comment: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
}

impl From<&Quote> for QuoteView {
    fn from(q: &Quote) -> QuoteView {
        QuoteView {
            id: q.id,
            revision: q.revision,
            currency: q.currency.to_string(),
            lines: q.lines.iter().map(LineView::from).collect(),
            valid_until: q.valid_until,
            totals: TotalsView::from(&q.totals),
            status: q.status.name().to_string(),
            submitted_by: q.submitted_by.clone(),
            submitted_at: q.submitted_at,
            chain: q.chain.iter().map(StepView::from).collect(),
            approved_steps: q.approved_steps,
            waiting_since: q.waiting_since,
            history: q.history.iter().map(DecisionView::from).collect(),
            decline_reason: q.decline_reason.clone(),
        }
    }
}

impl From<&LineItem> for LineView {
    fn from(l: &LineItem) -> LineView {
        LineView { product: l.product.clone(), quantity: l.quantity, unit_price: l.unit_price, discount_percent: l.discount_percent }
    }
}

impl From<&Totals> for TotalsView {
    fn from(t: &Totals) -> TotalsView {
        TotalsView { list: t.list, discount: t.discount, net: t.net, max_line_discount_percent: t.max_line_discount_percent, discount_percent: t.discount_percent }
    }
}

impl From<&Step> for StepView {
    fn from(s: &Step) -> StepView {
        StepView { approver: s.approver.name().to_string(), team: s.team.clone() }
    }
}

impl From<&ApprovalRecord> for DecisionView {
    fn from(r: &ApprovalRecord) -> DecisionView {
        DecisionView {
            revision: r.revision,
            step: r.step,
            approver: r.approver.name().to_string(),
            team: r.team.clone(),
            decision: r.decision.name().to_string(),
            decided_by: r.decided_by.clone(),
            on_behalf_of: r.on_behalf_of.clone(),
            comment: r.comment.clone(),
            requested_at: r.requested_at,
            decided_at: r.decided_at,
        }
    }
}

/// Back to the domain's quote, to fold further events into it. A stored value the domain
/// does not know (a status, a currency) is a corrupt row.
impl TryFrom<QuoteView> for Quote {
    type Error = String;

    fn try_from(q: QuoteView) -> Result<Quote, String> {
        Ok(Quote {
            id: q.id,
            revision: q.revision,
            currency: Currency::try_from(q.currency)?,
            lines: q.lines.into_iter().map(|l| LineItem { product: l.product, quantity: l.quantity, unit_price: l.unit_price, discount_percent: l.discount_percent }).collect(),
            valid_until: q.valid_until,
            totals: Totals {
                list: q.totals.list,
                discount: q.totals.discount,
                net: q.totals.net,
                max_line_discount_percent: q.totals.max_line_discount_percent,
                discount_percent: q.totals.discount_percent,
            },
            status: QuoteStatus::try_from(q.status)?,
            submitted_by: q.submitted_by,
            submitted_at: q.submitted_at,
            chain: q.chain.into_iter().map(|s| Ok(Step { approver: Approver::try_from(s.approver)?, team: s.team })).collect::<Result<_, String>>()?,
            approved_steps: q.approved_steps,
            waiting_since: q.waiting_since,
            history: q
                .history
                .into_iter()
                .map(|r| {
                    Ok(ApprovalRecord {
                        revision: r.revision,
                        step: r.step,
                        approver: Approver::try_from(r.approver)?,
                        team: r.team,
                        decision: Decision::try_from(r.decision)?,
                        decided_by: r.decided_by,
                        on_behalf_of: r.on_behalf_of,
                        comment: r.comment,
                        requested_at: r.requested_at,
                        decided_at: r.decided_at,
                    })
                })
                .collect::<Result<_, String>>()?,
            decline_reason: q.decline_reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;

    fn at(hour: u32) -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap().and_hms_opt(hour, 0, 0).unwrap().and_utc()
    }

    fn quote() -> Quote {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let lines = vec![LineItem { product: "Fleet licence".into(), quantity: d("3"), unit_price: d("1000.00"), discount_percent: d("10") }];
        Quote {
            id: Uuid::from_u128(7),
            revision: 2,
            currency: Currency::try_from("EUR".to_string()).unwrap(),
            totals: tidemark_events::quote::totals(&lines),
            lines,
            valid_until: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            status: QuoteStatus::PendingApproval,
            submitted_by: Some("alice".into()),
            submitted_at: Some(at(9)),
            chain: vec![Step { approver: Approver::Manager, team: Some("east".into()) }, Step { approver: Approver::Finance, team: None }],
            approved_steps: 1,
            waiting_since: Some(at(10)),
            history: vec![ApprovalRecord {
                revision: 2,
                step: 1,
                approver: Approver::Manager,
                team: Some("east".into()),
                decision: Decision::Approved,
                decided_by: "bob".into(),
                on_behalf_of: Some("mia".into()),
                comment: Some("fine".into()),
                requested_at: at(9),
                decided_at: at(10),
            }],
            decline_reason: None,
        }
    }

    /// The stored and served format, written out: a change here changes the database and
    /// the API, and needs a migration and a note to API clients.
    #[test]
    fn the_stored_and_served_format_is_this() {
        let view = serde_json::to_value(QuoteView::from(&quote())).unwrap();
        assert_eq!(
            view,
            json!({
                "id": "00000000-0000-0000-0000-000000000007", "revision": 2, "currency": "EUR",
                "lines": [{"product": "Fleet licence", "quantity": "3", "unit_price": "1000.00", "discount_percent": "10"}],
                "valid_until": "2026-12-31",
                "totals": {"list": "3000.00", "discount": "300.00", "net": "2700.00", "max_line_discount_percent": "10", "discount_percent": "10.00"},
                "status": "pending_approval", "submitted_by": "alice", "submitted_at": "2026-11-21T09:00:00Z",
                "chain": [{"approver": "manager", "team": "east"}, {"approver": "finance", "team": null}],
                "approved_steps": 1, "waiting_since": "2026-11-21T10:00:00Z",
                "history": [{
                    "revision": 2, "step": 1, "approver": "manager", "team": "east", "decision": "approved", "decided_by": "bob",
                    "on_behalf_of": "mia", "comment": "fine", "requested_at": "2026-11-21T09:00:00Z", "decided_at": "2026-11-21T10:00:00Z"
                }],
                "decline_reason": null
            })
        );
    }

    #[test]
    fn a_stored_quote_reads_back_as_the_same_domain_quote() {
        let stored = serde_json::to_value(QuoteView::from(&quote())).unwrap();
        let view: QuoteView = serde_json::from_value(stored).unwrap();
        assert_eq!(Quote::try_from(view).unwrap(), quote());
    }

    #[test]
    fn a_value_the_domain_does_not_know_is_refused() {
        let mut view = QuoteView::from(&quote());
        view.status = "lost".into();
        assert!(Quote::try_from(view).unwrap_err().contains("lost"));
    }
}

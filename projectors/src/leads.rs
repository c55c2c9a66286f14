//! `leads`: one row per lead, with its owner, status, assignment latency and what its
//! conversion created. The columns hold the lead; what a conversion was made with is a
//! `conversion` document of a type of its own ([`ConversionView`]), apart from the domain's
//! event, so that a renamed domain field is a compile error here, never a silent change of
//! the stored rows.

use std::collections::HashMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgConnection;
use tidemark_events::lead::{Lead, LeadConverted, LeadStatus};
use tidemark_events::{Aggregate, Currency, DomainEvent, EventRecord, Money, Topics};
use uuid::Uuid;

use crate::{column, Change, Projection};

pub struct Leads;

/// The lead as the domain folds it, so the projection can fold on.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRow {
    tenant_id: String,
    state: Lead,
}

/// What a lead was converted with, as the `conversion` column stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionView {
    pub account_id: Uuid,
    pub new_account: bool,
    pub contact_id: Uuid,
    pub opportunity_id: Uuid,
    pub opportunity_name: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: String,
    pub close_date: NaiveDate,
    pub converted_by: String,
    pub correlation_id: String,
}

impl From<&LeadConverted> for ConversionView {
    fn from(c: &LeadConverted) -> ConversionView {
        ConversionView {
            account_id: c.account_id,
            new_account: c.new_account,
            contact_id: c.contact_id,
            opportunity_id: c.opportunity_id,
            opportunity_name: c.opportunity_name.clone(),
            amount: c.amount.value,
            currency: c.amount.currency.to_string(),
            close_date: c.close_date,
            converted_by: c.converted_by.clone(),
            correlation_id: c.correlation_id.clone(),
        }
    }
}

/// Back to the domain's payload; a currency the domain does not know is a corrupt row.
impl TryFrom<ConversionView> for LeadConverted {
    type Error = String;

    fn try_from(c: ConversionView) -> Result<LeadConverted, String> {
        Ok(LeadConverted {
            account_id: c.account_id,
            new_account: c.new_account,
            contact_id: c.contact_id,
            opportunity_id: c.opportunity_id,
            opportunity_name: c.opportunity_name,
            amount: Money { value: c.amount, currency: Currency::try_from(c.currency)? },
            close_date: c.close_date,
            converted_by: c.converted_by,
            correlation_id: c.correlation_id,
        })
    }
}

impl Projection for Leads {
    const NAME: &'static str = "leads";
    const TABLES: &'static [&'static str] = &["leads"];
    type Row = LeadRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.lead.clone()]
    }

    fn version(row: &LeadRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&LeadRow>, record: &EventRecord) -> Result<Option<LeadRow>, String> {
        let DomainEvent::Lead(event) = &record.event else { return Ok(None) };
        let mut state = Lead::evolve(row.map(|r| r.state.clone()), event);
        state.captured_at = crate::as_stored(state.captured_at);
        state.assigned_at = state.assigned_at.map(crate::as_stored);
        state.erased_at = state.erased_at.map(crate::as_stored);
        Ok(Some(LeadRow { tenant_id: record.envelope.tenant_id.clone(), state }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, LeadRow>> {
        let rows = sqlx::query!(
            r#"SELECT id, tenant_id, name, company, email, phone, territory, segment, source, captured_at, owner_id, team_id, assigned_at,
                      status, disqualify_reason, conversion AS "conversion: Json<ConversionView>", erased_at, version
               FROM leads WHERE id = ANY($1)"#,
            ids,
        )
        .fetch_all(db)
        .await?;
        let corrupt = |e: String| sqlx::Error::Decode(format!("lead: {e}").into());
        rows.into_iter()
            .map(|r| {
                let state = Lead {
                    name: r.name,
                    company: r.company,
                    email: r.email,
                    phone: r.phone,
                    territory: r.territory,
                    segment: r.segment,
                    source: r.source,
                    captured_at: r.captured_at,
                    owner_id: r.owner_id,
                    team_id: r.team_id,
                    assigned_at: r.assigned_at,
                    status: LeadStatus::try_from(r.status).map_err(corrupt)?,
                    disqualify_reason: r.disqualify_reason,
                    conversion: r.conversion.map(|c| LeadConverted::try_from(c.0)).transpose().map_err(corrupt)?,
                    erased_at: r.erased_at,
                    version: r.version,
                };
                Ok((r.id, LeadRow { tenant_id: r.tenant_id, state }))
            })
            .collect()
    }

    async fn store(db: &mut PgConnection, changes: &[Change<LeadRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO leads (id, tenant_id, name, company, email, phone, territory, segment, source, captured_at, owner_id, team_id,
                                assigned_at, assignment_latency_ms, status, disqualify_reason, account_id, contact_id, opportunity_id,
                                version, conversion, erased_at)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                                  $10::timestamptz[], $11::text[], $12::text[], $13::timestamptz[], $14::bigint[], $15::text[], $16::text[],
                                  $17::uuid[], $18::uuid[], $19::uuid[], $20::bigint[], $21::jsonb[], $22::timestamptz[])
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, phone = EXCLUDED.phone,
                 erased_at = EXCLUDED.erased_at, owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, assigned_at = EXCLUDED.assigned_at,
                 assignment_latency_ms = EXCLUDED.assignment_latency_ms, status = EXCLUDED.status,
                 disqualify_reason = EXCLUDED.disqualify_reason, account_id = EXCLUDED.account_id, contact_id = EXCLUDED.contact_id,
                 opportunity_id = EXCLUDED.opportunity_id, version = EXCLUDED.version, conversion = EXCLUDED.conversion",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.state.name.clone()),
            &column(changes, |r| r.state.company.clone()),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &column(changes, |r| r.state.email.clone()) as _,
            &column(changes, |r| r.state.phone.clone()) as _,
            &column(changes, |r| r.state.territory.clone()),
            &column(changes, |r| r.state.segment.clone()),
            &column(changes, |r| r.state.source.clone()),
            &column(changes, |r| r.state.captured_at),
            &column(changes, |r| r.state.owner_id.clone()) as _,
            &column(changes, |r| r.state.team_id.clone()) as _,
            &column(changes, |r| r.state.assigned_at) as _,
            &column(changes, |r| r.state.assigned_at.map(|a| (a - r.state.captured_at).num_milliseconds())) as _,
            &column(changes, |r| r.state.status.name().to_string()),
            &column(changes, |r| r.state.disqualify_reason.clone()) as _,
            &column(changes, |r| r.state.conversion.as_ref().map(|c| c.account_id)) as _,
            &column(changes, |r| r.state.conversion.as_ref().map(|c| c.contact_id)) as _,
            &column(changes, |r| r.state.conversion.as_ref().map(|c| c.opportunity_id)) as _,
            &column(changes, |r| r.state.version),
            &column(changes, |r| r.state.conversion.as_ref().map(|c| serde_json::json!(ConversionView::from(c)))) as _,
            &column(changes, |r| r.state.erased_at) as _,
        )
        .execute(db)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The stored format, written out: a change here changes the database, and needs a
    /// migration that rewrites the stored documents.
    #[test]
    fn the_stored_conversion_is_this() {
        let converted = LeadConverted {
            account_id: Uuid::from_u128(1),
            new_account: true,
            contact_id: Uuid::from_u128(2),
            opportunity_id: Uuid::from_u128(3),
            opportunity_name: "Fleet renewal".into(),
            amount: Money { value: "12000.00".parse().unwrap(), currency: Currency::try_from("EUR".to_string()).unwrap() },
            close_date: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            converted_by: "alice".into(),
            correlation_id: "c-1".into(),
        };
        let stored = serde_json::to_value(ConversionView::from(&converted)).unwrap();
        assert_eq!(
            stored,
            json!({
                "account_id": "00000000-0000-0000-0000-000000000001", "new_account": true,
                "contact_id": "00000000-0000-0000-0000-000000000002", "opportunity_id": "00000000-0000-0000-0000-000000000003",
                "opportunity_name": "Fleet renewal", "amount": "12000.00", "currency": "EUR", "close_date": "2026-12-31",
                "converted_by": "alice", "correlation_id": "c-1"
            })
        );
        let back: ConversionView = serde_json::from_value(stored).unwrap();
        assert_eq!(LeadConverted::try_from(back), Ok(converted));
    }

    #[test]
    fn an_unknown_currency_is_a_corrupt_row() {
        let mut view: ConversionView = serde_json::from_value(json!({
            "account_id": Uuid::from_u128(1), "new_account": false, "contact_id": Uuid::from_u128(2), "opportunity_id": Uuid::from_u128(3),
            "opportunity_name": "x", "amount": "1.00", "currency": "EUR", "close_date": "2026-12-31", "converted_by": "a", "correlation_id": "c"
        }))
        .unwrap();
        view.currency = "euro".into();
        assert!(LeadConverted::try_from(view).is_err());
    }
}

//! `opportunities`: one row per opportunity with its current fields, folded with the same
//! `evolve` the command service uses.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use tidemark_events::approval::Step;
use sqlx::types::Json;
use tidemark_events::offline::{Review, ReviewOpened, ReviewResolved};
use tidemark_events::opportunity::{Opportunity, OpportunityEvent, Stage};
use tidemark_events::quote::Quote;
use tidemark_events::{Aggregate, Currency, DomainEvent, EventRecord, Money, Topics};
use uuid::Uuid;

use crate::quotes::{DecisionView, QuoteView};
use crate::{column, Change, Projection};

pub struct Opportunities;

/// An opportunity as the read model keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpportunityRow {
    tenant_id: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// When its first quote was submitted: time to quote starts at `created_at`.
    first_quoted_at: Option<DateTime<Utc>>,
    state: Opportunity,
}

impl Projection for Opportunities {
    const NAME: &'static str = "opportunities";
    const TABLES: &'static [&'static str] = &["opportunities", "pending_approvals", "approval_decisions", "offline_reviews"];
    type Row = OpportunityRow;

    fn topics(topics: &Topics) -> Vec<String> {
        vec![topics.opportunity.clone()]
    }

    fn version(row: &OpportunityRow) -> i64 {
        row.state.version
    }

    fn evolve(row: Option<&OpportunityRow>, record: &EventRecord) -> Result<Option<OpportunityRow>, String> {
        let DomainEvent::Opportunity(event) = &record.event else { return Ok(None) };
        let env = &record.envelope;
        let mut state = Opportunity::evolve(row.map(|r| r.state.clone()), event);
        // What merging offline intents needs of the past is the writer's, not the reader's.
        state.ledger = Default::default();
        let submitted = match event {
            OpportunityEvent::QuoteSubmitted(e) => Some(crate::as_stored(e.submitted_at)),
            _ => None,
        };
        Ok(Some(OpportunityRow {
            tenant_id: env.tenant_id.clone(),
            created_at: row.map_or(crate::as_stored(env.recorded_at), |r| r.created_at),
            updated_at: crate::as_stored(env.recorded_at),
            first_quoted_at: row.and_then(|r| r.first_quoted_at).or(submitted),
            state,
        }))
    }

    async fn load(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, OpportunityRow>> {
        let rows = sqlx::query!(
            "SELECT id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage, probability, close_reason,
                    version, team_id, shared_with, quotes, synced_quote_id, created_at, updated_at, first_quoted_at,
                    next_step, description
             FROM opportunities WHERE id = ANY($1)",
            ids,
        )
        .fetch_all(&mut *db)
        .await?;
        let mut reviews = load_reviews(db, ids).await?;
        let corrupt = |what: String| sqlx::Error::Decode(what.into());
        rows.into_iter()
            .map(|row| {
                let state = Opportunity {
                    account_id: row.account_id,
                    name: row.name,
                    owner_id: row.owner_id,
                    team_id: row.team_id,
                    amount: Money { value: row.amount, currency: Currency::try_from(row.currency).map_err(corrupt)? },
                    close_date: row.close_date,
                    stage: Stage::try_from(row.stage).map_err(corrupt)?,
                    probability: row.probability,
                    close_reason: row.close_reason,
                    shared_with: row.shared_with.into_iter().collect(),
                    quotes: serde_json::from_value::<Vec<QuoteView>>(row.quotes)
                        .map_err(|e| e.to_string())
                        .and_then(|quotes| quotes.into_iter().map(Quote::try_from).collect())
                        .map_err(|e| corrupt(format!("quotes: {e}")))?,
                    synced_quote: row.synced_quote_id,
                    next_step: row.next_step,
                    description: row.description,
                    reviews: reviews.remove(&row.id).unwrap_or_default(),
                    ledger: Default::default(),
                    version: row.version,
                };
                let r = OpportunityRow {
                    tenant_id: row.tenant_id,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                    first_quoted_at: row.first_quoted_at,
                    state,
                };
                Ok((row.id, r))
            })
            .collect()
    }

    async fn store(db: &mut PgConnection, changes: &[Change<OpportunityRow>]) -> sqlx::Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "INSERT INTO opportunities (id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage,
                                        probability, close_reason, version, created_at, updated_at, team_id, shared_with,
                                        quotes, synced_quote_id, first_quoted_at, next_step, description)
             SELECT id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage, probability, close_reason,
                    version, created_at, updated_at, team_id, ARRAY(SELECT jsonb_array_elements_text(shared_with)), quotes, synced_quote_id,
                    first_quoted_at, next_step, description
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::numeric[], $7::text[], $8::date[],
                         $9::text[], $10::int[], $11::text[], $12::bigint[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::jsonb[],
                         $17::jsonb[], $18::uuid[], $19::timestamptz[], $20::text[], $21::text[])
                  AS u(id, tenant_id, account_id, name, owner_id, amount, currency, close_date, stage, probability, close_reason,
                       version, created_at, updated_at, team_id, shared_with, quotes, synced_quote_id, first_quoted_at, next_step, description)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, owner_id = EXCLUDED.owner_id, amount = EXCLUDED.amount,
                 currency = EXCLUDED.currency, close_date = EXCLUDED.close_date, stage = EXCLUDED.stage,
                 probability = EXCLUDED.probability, close_reason = EXCLUDED.close_reason, version = EXCLUDED.version,
                 updated_at = EXCLUDED.updated_at, shared_with = EXCLUDED.shared_with, quotes = EXCLUDED.quotes,
                 synced_quote_id = EXCLUDED.synced_quote_id, first_quoted_at = EXCLUDED.first_quoted_at,
                 next_step = EXCLUDED.next_step, description = EXCLUDED.description",
            &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
            &column(changes, |r| r.tenant_id.clone()),
            &column(changes, |r| r.state.account_id),
            &column(changes, |r| r.state.name.clone()),
            &column(changes, |r| r.state.owner_id.clone()),
            &column(changes, |r| r.state.amount.value),
            &column(changes, |r| r.state.amount.currency.to_string()),
            &column(changes, |r| r.state.close_date),
            &column(changes, |r| r.state.stage.name().to_string()),
            &column(changes, |r| r.state.probability),
            // `as _`: the macro takes an array's elements to be not null, and these may be null.
            &column(changes, |r| r.state.close_reason.clone()) as _,
            &column(changes, |r| r.state.version),
            &column(changes, |r| r.created_at),
            &column(changes, |r| r.updated_at),
            &column(changes, |r| r.state.team_id.clone()) as _,
            // A list per row: arrays of arrays must be rectangular in PostgreSQL, JSON need not be.
            &column(changes, |r| serde_json::json!(r.state.shared_with)),
            &column(changes, |r| serde_json::json!(r.state.quotes.iter().map(QuoteView::from).collect::<Vec<_>>())),
            &column(changes, |r| r.state.synced_quote) as _,
            &column(changes, |r| r.first_quoted_at) as _,
            &column(changes, |r| r.state.next_step.clone()) as _,
            &column(changes, |r| r.state.description.clone()) as _,
        )
        .execute(&mut *db)
        .await?;
        store_reviews(db, changes).await?;
        store_pending_approvals(db, changes).await?;
        store_approval_decisions(db, changes).await
    }
}

/// The reviews of these opportunities, by opportunity, in the order they were opened.
async fn load_reviews(db: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, Vec<Review>>> {
    let rows = sqlx::query!(
        r#"SELECT opportunity_id, opened AS "opened: Json<ReviewOpened>", resolved AS "resolved: Json<ReviewResolved>"
           FROM offline_reviews WHERE opportunity_id = ANY($1) ORDER BY opportunity_id, position"#,
        ids,
    )
    .fetch_all(db)
    .await?;
    let mut reviews: HashMap<Uuid, Vec<Review>> = HashMap::new();
    for row in rows {
        reviews.entry(row.opportunity_id).or_default().push(Review { opened: row.opened.0, resolved: row.resolved.map(|r| r.0) });
    }
    Ok(reviews)
}

/// Writes the reviews of the changed opportunities that have any (a review never goes away).
async fn store_reviews(db: &mut PgConnection, changes: &[Change<OpportunityRow>]) -> sqlx::Result<()> {
    let reviews: Vec<(Uuid, &str, i32, &Review)> = changes
        .iter()
        .flat_map(|c| c.after.state.reviews.iter().enumerate().map(move |(i, r)| (c.id, c.after.tenant_id.as_str(), i as i32, r)))
        .collect();
    if reviews.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO offline_reviews (review_id, opportunity_id, tenant_id, position, author, open, opened, resolved)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::bool[], $7::jsonb[], $8::jsonb[])
         ON CONFLICT (review_id) DO UPDATE SET open = EXCLUDED.open, resolved = EXCLUDED.resolved",
        &reviews.iter().map(|r| r.3.opened.review_id).collect::<Vec<_>>(),
        &reviews.iter().map(|r| r.0).collect::<Vec<_>>(),
        &reviews.iter().map(|r| r.1.to_string()).collect::<Vec<_>>(),
        &reviews.iter().map(|r| r.2).collect::<Vec<_>>(),
        &reviews.iter().map(|r| r.3.opened.author.clone()).collect::<Vec<_>>(),
        &reviews.iter().map(|r| r.3.resolved.is_none()).collect::<Vec<_>>(),
        &reviews.iter().map(|r| serde_json::json!(r.3.opened)).collect::<Vec<_>>(),
        &reviews.iter().map(|r| r.3.resolved.as_ref().map(|e| serde_json::json!(e))).collect::<Vec<_>>() as _,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces the pending approval steps of the changed opportunities.
async fn store_pending_approvals(db: &mut PgConnection, changes: &[Change<OpportunityRow>]) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM pending_approvals WHERE opportunity_id = ANY($1)",
        &changes.iter().map(|c| c.id).collect::<Vec<_>>(),
    )
    .execute(&mut *db)
    .await?;
    let pending: Vec<(Uuid, &OpportunityRow, &Quote, &Step)> = changes
        .iter()
        .flat_map(|c| c.after.state.quotes.iter().filter_map(move |q| Some((c.id, &c.after, q, q.current_step()?))))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&(Uuid, &OpportunityRow, &Quote, &Step)) -> String| pending.iter().map(f).collect::<Vec<_>>();
    let amount = |f: &dyn Fn(&Quote) -> Decimal| pending.iter().map(|p| f(p.2)).collect::<Vec<_>>();
    sqlx::query!(
        "INSERT INTO pending_approvals (quote_id, opportunity_id, tenant_id, opportunity_name, account_id, owner_id, revision, step,
                                        steps, approver, approver_team, requested_by, submitted_at, waiting_since, currency,
                                        list_amount, net_amount, discount_percent, max_line_discount_percent)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::int[], $8::int[], $9::int[],
                              $10::text[], $11::text[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::text[],
                              $16::numeric[], $17::numeric[], $18::numeric[], $19::numeric[])",
        &pending.iter().map(|p| p.2.id).collect::<Vec<_>>(),
        &pending.iter().map(|p| p.0).collect::<Vec<_>>(),
        &col(&|p| p.1.tenant_id.clone()),
        &col(&|p| p.1.state.name.clone()),
        &pending.iter().map(|p| p.1.state.account_id).collect::<Vec<_>>(),
        &col(&|p| p.1.state.owner_id.clone()),
        &pending.iter().map(|p| p.2.revision).collect::<Vec<_>>(),
        &pending.iter().map(|p| p.2.approved_steps as i32 + 1).collect::<Vec<_>>(),
        &pending.iter().map(|p| p.2.chain.len() as i32).collect::<Vec<_>>(),
        &col(&|p| p.3.approver.name().to_string()),
        &pending.iter().map(|p| p.3.team.clone()).collect::<Vec<_>>() as _,
        &col(&|p| p.2.submitted_by.clone().unwrap_or_default()),
        &pending.iter().map(|p| p.2.submitted_at).collect::<Vec<_>>() as _,
        &pending.iter().map(|p| p.2.waiting_since).collect::<Vec<_>>() as _,
        &col(&|p| p.2.currency.to_string()),
        &amount(&|q| q.totals.list),
        &amount(&|q| q.totals.net),
        &amount(&|q| q.totals.discount_percent),
        &amount(&|q| q.totals.max_line_discount_percent),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces the decided approval steps of the changed opportunities.
async fn store_approval_decisions(db: &mut PgConnection, changes: &[Change<OpportunityRow>]) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM approval_decisions WHERE opportunity_id = ANY($1)", &changes.iter().map(|c| c.id).collect::<Vec<_>>())
        .execute(&mut *db)
        .await?;
    let decided: Vec<(Uuid, &str, Uuid, DecisionView)> = changes
        .iter()
        .flat_map(|c| c.after.state.quotes.iter().flat_map(move |q| q.history.iter().map(move |r| (c.id, c.after.tenant_id.as_str(), q.id, DecisionView::from(r)))))
        .collect();
    if decided.is_empty() {
        return Ok(());
    }
    let text = |f: &dyn Fn(&DecisionView) -> String| decided.iter().map(|d| f(&d.3)).collect::<Vec<_>>();
    let maybe = |f: &dyn Fn(&DecisionView) -> Option<String>| decided.iter().map(|d| f(&d.3)).collect::<Vec<_>>();
    let time = |f: &dyn Fn(&DecisionView) -> DateTime<Utc>| decided.iter().map(|d| f(&d.3)).collect::<Vec<_>>();
    sqlx::query!(
        "INSERT INTO approval_decisions (opportunity_id, tenant_id, quote_id, revision, step, approver, team, decision, decided_by,
                                         on_behalf_of, comment, requested_at, decided_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::int[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[],
                              $10::text[], $11::text[], $12::timestamptz[], $13::timestamptz[])",
        &decided.iter().map(|d| d.0).collect::<Vec<_>>(),
        &decided.iter().map(|d| d.1.to_string()).collect::<Vec<_>>(),
        &decided.iter().map(|d| d.2).collect::<Vec<_>>(),
        &decided.iter().map(|d| d.3.revision).collect::<Vec<_>>(),
        &decided.iter().map(|d| d.3.step).collect::<Vec<_>>(),
        &text(&|d| d.approver.clone()),
        // `as _`: the macro takes an array's elements to be not null, and these may be null.
        &maybe(&|d| d.team.clone()) as _,
        &text(&|d| d.decision.clone()),
        &text(&|d| d.decided_by.clone()),
        &maybe(&|d| d.on_behalf_of.clone()) as _,
        &maybe(&|d| d.comment.clone()) as _,
        &time(&|d| d.requested_at),
        &time(&|d| d.decided_at),
    )
    .execute(db)
    .await?;
    Ok(())
}

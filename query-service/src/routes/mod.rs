//! One module per resource: its routes, its queries (with their SQL) and its answers.

pub(crate) mod accounts;
pub(crate) mod activities;
pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod contacts;
pub(crate) mod forecast;
pub(crate) mod leads;
pub(crate) mod lineage;
pub(crate) mod observability;
pub(crate) mod operations;
pub(crate) mod opportunities;
pub(crate) mod pipeline;
pub(crate) mod quotes;
pub(crate) mod reviews;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every route of the service.
pub(crate) fn all(router: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    router
        .merge(opportunities::routes())
        .merge(pipeline::routes())
        .merge(quotes::routes())
        .merge(approvals::routes())
        .merge(forecast::routes())
        .merge(activities::routes())
        .merge(contacts::routes())
        .merge(accounts::routes())
        .merge(leads::routes())
        .merge(reviews::routes())
        .merge(audit::routes())
        .merge(lineage::routes())
        .merge(observability::routes())
        .merge(operations::routes())
}

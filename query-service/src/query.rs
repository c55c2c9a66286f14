//! Every read this service answers, as one type: a query names its answer in the cache
//! (`cache.rs`), so whatever decides who sees what (the subject, the scope) is a field of
//! the resource's query struct, and so part of the key. Some fields only shape the key
//! (where another projection stood).
//!
//! A new query is a struct with a `run` in its resource's module and one line here.

use sqlx::PgConnection;

use crate::cache::Cached;
use crate::read::Refusal;
use crate::routes::{accounts, activities, approvals, audit, contacts, forecast, leads, opportunities, pipeline, quotes, reviews};

macro_rules! queries {
    ($($variant:ident($query:ty),)*) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub(crate) enum Query {
            $($variant($query),)*
        }

        $(impl From<$query> for Query {
            fn from(query: $query) -> Query {
                Query::$variant(query)
            }
        })*

        impl Query {
            /// Answers the query from `db`, in the caller's snapshot.
            pub(crate) async fn run(&self, db: &mut PgConnection, tenant: &str) -> Result<Cached, Refusal> {
                match self {
                    $(Query::$variant(query) => query.run(db, tenant).await,)*
                }
            }
        }
    };
}

queries! {
    Opportunity(opportunities::One),
    Opportunities(opportunities::Page),
    Pipeline(pipeline::Cells),
    Forecast(forecast::Rows),
    MyApprovals(approvals::Mine),
    ApprovalTurnaround(approvals::Turnaround),
    TimeToQuote(quotes::TimeToQuote),
    MyTasks(activities::MyTasks),
    Contact(contacts::One),
    Contacts(contacts::Page),
    Account(accounts::Overview),
    Lead(leads::One),
    Leads(leads::Page),
    LeadLatency(leads::Latency),
    AutomatedEdits(audit::AutomatedEdits),
    MyReviews(reviews::Mine),
    Review(reviews::One),
}

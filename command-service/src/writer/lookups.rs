//! What commands on one aggregate need to know of others (does the account exist, who owns
//! the opportunity, who delegated to whom), read without the others' partition locks.
//!
//! One index, fed by the writer's fold with every aggregate's state after each event. What
//! of each kind is kept for others to look up is said once, in `Looked::of`; kinds that no
//! other command consults are not kept.

use std::sync::RwLock;

use chrono::NaiveDate;
use tidemark_events::approval::Delegated;
use tidemark_events::delegation::Delegation;
use tidemark_events::{account, contact, AnyAggregate};
use uuid::Uuid;

/// What other aggregates' commands need to know of an opportunity (an activity's target).
#[derive(Debug, Clone)]
pub struct OpportunityCard {
    pub tenant_id: String,
    pub owner_id: String,
    pub team_id: Option<String>,
    pub shared_with: Vec<String>,
    pub closed: bool,
}

/// An aggregate as others look it up.
enum Looked {
    /// An account or a contact: that it exists (they are never removed).
    Exists(&'static str),
    Opportunity(OpportunityCard),
    /// Approvals on any partition consult delegations.
    Delegation(Delegation),
}

impl Looked {
    fn of(tenant_id: &str, state: &AnyAggregate) -> Option<Looked> {
        match state {
            AnyAggregate::Account(_) => Some(Looked::Exists(account::AGGREGATE_TYPE)),
            AnyAggregate::Contact(_) => Some(Looked::Exists(contact::AGGREGATE_TYPE)),
            AnyAggregate::Opportunity(o) => Some(Looked::Opportunity(OpportunityCard {
                tenant_id: tenant_id.to_string(),
                owner_id: o.owner_id.clone(),
                team_id: o.team_id.clone(),
                shared_with: o.shared_with.iter().cloned().collect(),
                closed: o.stage.is_closed(),
            })),
            AnyAggregate::Delegation(d) => Some(Looked::Delegation(d.clone())),
            AnyAggregate::Activity(_) | AnyAggregate::Lead(_) | AnyAggregate::Engagement(_) => None,
        }
    }
}

#[derive(Default)]
pub struct Lookups {
    /// By aggregate id: its tenant and what others see of it.
    index: RwLock<super::ById<(String, Looked)>>,
    /// Delegations apart: every approval searches them all, which in `index` meant passing
    /// every account and deal too.
    delegations: RwLock<super::ById<(String, Delegation)>>,
}

impl Lookups {
    /// Makes room for `more` aggregates at once: a start from snapshots would otherwise
    /// grow the index by doubling, copying it each time.
    pub fn reserve(&self, more: usize) {
        self.index.write().expect("not poisoned").reserve(more);
    }

    /// Keeps what others may look up of aggregate `id`, as it stands after an event.
    pub fn fed(&self, tenant_id: &str, id: Uuid, state: &AnyAggregate) {
        self.fed_all(std::iter::once((tenant_id, id, state)));
    }

    /// Keeps what others may look up of many aggregates at once (a restored snapshot), under
    /// one lock of each index rather than one per aggregate.
    pub fn fed_all<'a>(&self, states: impl Iterator<Item = (&'a str, Uuid, &'a AnyAggregate)>) {
        let (mut delegations, mut others) = (Vec::new(), Vec::new());
        for (tenant_id, id, state) in states {
            match Looked::of(tenant_id, state) {
                Some(Looked::Delegation(d)) => delegations.push((id, (tenant_id.to_string(), d))),
                Some(looked) => others.push((id, (tenant_id.to_string(), looked))),
                None => {}
            }
        }
        if !delegations.is_empty() {
            self.delegations.write().expect("not poisoned").extend(delegations);
        }
        if !others.is_empty() {
            self.index.write().expect("not poisoned").extend(others);
        }
    }

    /// Whether the account (or contact: `aggregate_type`) exists in the tenant.
    pub fn exists(&self, tenant_id: &str, aggregate_type: &str, id: Uuid) -> bool {
        let index = self.index.read().expect("not poisoned");
        matches!(index.get(&id), Some((tenant, Looked::Exists(kind))) if tenant == tenant_id && *kind == aggregate_type)
    }

    /// The opportunity's owner, team, readers and whether it is closed, in the tenant.
    pub fn opportunity_card(&self, tenant_id: &str, id: Uuid) -> Option<OpportunityCard> {
        match self.index.read().expect("not poisoned").get(&id) {
            Some((tenant, Looked::Opportunity(card))) if tenant == tenant_id => Some(card.clone()),
            _ => None,
        }
    }

    /// The approval authority delegated to `user` for `day`, by whom, in the tenant.
    pub fn delegated_to(&self, tenant_id: &str, user: &str, day: NaiveDate) -> Vec<Delegated> {
        let delegations = self.delegations.read().expect("not poisoned");
        let mut found: Vec<Delegated> = delegations
            .values()
            .filter(|(tenant, d)| tenant == tenant_id && d.delegate == user && d.active_on(day))
            .map(|(_, d)| d.authority())
            .collect();
        // The same answer whatever the map's order, so decisions are reproducible.
        found.sort_by(|a, b| a.delegator.cmp(&b.delegator));
        found
    }
}

//! Who may read what. Each refusal is recorded (`denials`) before it is answered; the rules
//! themselves are the domain's (`tidemark_events::policy`).

use tidemark_events::policy::{self, Action, Denial, Scope};
use tidemark_http::{denials, Principal, Problem};

use crate::AppState;

/// The SQL filter of a scope: (owner, team) that rows must have, when they must.
pub(crate) fn scope_filter(scope: &Scope) -> (Option<&str>, Option<&str>) {
    match scope {
        Scope::Own(user) => (Some(user.as_str()), None),
        Scope::Team(team) => (None, Some(team.as_str())),
        Scope::Tenant | Scope::Nothing => (None, None),
    }
}

/// The scope a list of opportunities is read in; a subject that may see none is refused.
pub(crate) async fn list_scope(state: &AppState, who: &Principal) -> Result<Scope, Problem> {
    match policy::opportunity_scope(&who.subject()) {
        Scope::Nothing => {
            let denial = Denial { code: "role-may-not", reason: "these roles may not read opportunities".into() };
            Err(denials::deny(&state.pool, who, "read-opportunities", "opportunities", denial).await)
        }
        scope => Ok(scope),
    }
}

/// Refuses those who may not read contacts; says whether the caller sees personal fields.
pub(crate) async fn contact_reader(state: &AppState, who: &Principal, target: &str) -> Result<bool, Problem> {
    let subject = who.subject();
    if let Err(denial) = policy::authorize(&subject, &Action::ReadContacts) {
        return Err(denials::deny(&state.pool, who, "read-contacts", target, denial).await);
    }
    Ok(policy::may_see_personal_fields(&subject))
}

/// Who may read leads, in which scope, and whether with personal fields.
pub(crate) async fn lead_reader(state: &AppState, who: &Principal, target: &str) -> Result<(Scope, bool), Problem> {
    let subject = who.subject();
    if let Err(denial) = policy::authorize(&subject, &Action::ReadLeads) {
        return Err(denials::deny(&state.pool, who, "read-leads", target, denial).await);
    }
    Ok((policy::opportunity_scope(&subject), policy::may_see_personal_fields(&subject)))
}

/// A row's personal fields as a caller sees them, and the word that says so: "erased" once
/// the person was erased (for everyone), "shown" to whom the policy lets see them
/// (`personal`), otherwise "withheld", blanked by `withhold`.
pub(crate) fn personal_fields<R>(row: R, erased: bool, personal: bool, withhold: impl FnOnce(R) -> R) -> (R, &'static str) {
    match personal {
        _ if erased => (row, "erased"),
        true => (row, "shown"),
        false => (withhold(row), "withheld"),
    }
}

/// Refuses (and records) whoever is not an auditor.
pub(crate) async fn auditor(state: &AppState, who: &Principal, target: &str) -> Result<(), Problem> {
    match policy::authorize(&who.subject(), &Action::ReadAudit) {
        Ok(()) => Ok(()),
        Err(denial) => Err(denials::deny(&state.pool, who, "read-audit", target, denial).await),
    }
}

/// Refuses, and records the refusal, unless `who` sees more than their own deals (managers,
/// finance, admins): for figures across the tenant, such as approval turnaround.
pub(crate) async fn tenant_wide(state: &AppState, who: &Principal, action: &str, target: &str, what: &str) -> Result<(), Problem> {
    if let Scope::Own(_) | Scope::Nothing = policy::opportunity_scope(&who.subject()) {
        let denial = Denial { code: "role-may-not", reason: format!("{what} across the tenant is for managers, finance and admins") };
        return Err(denials::deny(&state.pool, who, action, target, denial).await);
    }
    Ok(())
}

/// Refuses, and records the refusal, unless `who` operates the deployment.
pub(crate) async fn operator(state: &AppState, who: &Principal, action: &str, resource: &str) -> Result<(), Problem> {
    denials::operator(&state.pool, who, action, resource).await
}

//! The discount approval policy: from a quote's figures, which approvals it needs, in which
//! order, and who may give each. The one place where these thresholds live; a change here
//! is a change of `POLICY_VERSION`.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::policy::{Role, Subject};
use crate::quote::Totals;

/// Up to this discount (percent, of any line or of the whole quote) no approval is needed.
pub const FREE_DISCOUNT: Decimal = Decimal::from_parts(10, 0, 0, false, 0);
/// Up to this discount the owner's manager approves; beyond it, finance approves too.
pub const MANAGER_DISCOUNT: Decimal = Decimal::from_parts(20, 0, 0, false, 0);
/// Quotes of at least this net amount (in their currency) need finance, whatever the discount.
pub const FINANCE_AMOUNT: Decimal = Decimal::from_parts(500_000, 0, 0, false, 0);

crate::text_enum! {
    /// Who approves one step.
    pub enum Approver {
        /// A manager of the opportunity's team.
        Manager => "manager",
        Finance => "finance",
    }
}

/// One step of an approval chain, as the quote's submission fixed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Step {
    pub approver: Approver,
    /// The team whose manager approves (manager steps of opportunities that have a team).
    pub team: Option<String>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.approver, &self.team) {
            (Approver::Manager, Some(team)) => write!(f, "a manager of team {team}"),
            (Approver::Manager, None) => f.write_str("a manager"),
            (Approver::Finance, _) => f.write_str("finance"),
        }
    }
}

/// The approvals a quote needs, in order: none up to 10% discount; the manager up to 20%;
/// the manager, then finance, beyond; and finance for any quote of 500,000 or more.
pub fn chain(totals: &Totals, team: Option<&str>) -> Vec<Step> {
    let discount = totals.max_line_discount_percent.max(totals.discount_percent);
    let manager = Step { approver: Approver::Manager, team: team.map(String::from) };
    let finance = Step { approver: Approver::Finance, team: None };
    let mut steps = Vec::new();
    if discount > FREE_DISCOUNT {
        steps.push(manager);
    }
    if discount > MANAGER_DISCOUNT || totals.net >= FINANCE_AMOUNT {
        steps.push(finance);
    }
    steps
}

/// Whether someone with these roles and team may decide `step`. Only approvers approve:
/// a manager of the step's team, or finance.
fn may_decide(step: &Step, roles: &[Role], team: Option<&str>) -> bool {
    if !roles.contains(&Role::Approver) {
        return false;
    }
    match step.approver {
        Approver::Manager => roles.contains(&Role::Manager) && (step.team.is_none() || step.team.as_deref() == team),
        Approver::Finance => roles.contains(&Role::Finance),
    }
}

/// Someone who acts on an approval step, with the authority delegated to them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acting {
    pub user: String,
    pub roles: Vec<Role>,
    pub team: Option<String>,
    /// Approvers who delegated to this user, for a period that includes now.
    pub delegations: Vec<Delegated>,
}

impl Acting {
    /// `subject`, with the roles its token grants (none to an automation).
    pub fn new(subject: &Subject, delegations: Vec<Delegated>) -> Acting {
        Acting { user: subject.user.clone(), roles: subject.granted_roles().to_vec(), team: subject.team.clone(), delegations }
    }

    /// Whether this person, or someone who delegated to them, works with the team's
    /// opportunities: in the team, or with a role that spans the tenant.
    pub(crate) fn may_know_of(&self, team: Option<&str>) -> bool {
        let near = |roles: &[Role], own: Option<&str>| roles.iter().any(|r| matches!(r, Role::Finance | Role::Admin)) || (own.is_some() && own == team);
        near(&self.roles, self.team.as_deref()) || self.delegations.iter().any(|d| near(&d.roles, d.team.as_deref()))
    }
}

/// The authority of an approver who delegated: their roles and team when they delegated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delegated {
    pub delegator: String,
    pub roles: Vec<Role>,
    pub team: Option<String>,
}

/// Why someone may not decide a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotTheDecider {
    /// They submitted the quote or own the opportunity.
    OwnQuote,
    /// Neither they nor anyone who delegated to them is the step's approver.
    NotTheApprover,
}

/// Who decides `step` when `acting` does, on a quote `submitter` submitted on `owner`'s
/// opportunity: `Ok(None)` themselves, `Ok(Some(delegator))` on behalf of an approver who
/// delegated to them. Nobody decides a step of their own quote, and no delegate decides
/// one of the delegator's own. The command that decides and "my approvals" both ask this.
pub fn decider(step: &Step, acting: &Acting, submitter: Option<&str>, owner: &str) -> Result<Option<String>, NotTheDecider> {
    let own = |user: &str| Some(user) == submitter || user == owner;
    if own(&acting.user) {
        return Err(NotTheDecider::OwnQuote);
    }
    if may_decide(step, &acting.roles, acting.team.as_deref()) {
        return Ok(None);
    }
    acting
        .delegations
        .iter()
        .find(|d| !own(&d.delegator) && may_decide(step, &d.roles, d.team.as_deref()))
        .map(|d| Some(d.delegator.clone()))
        .ok_or(NotTheDecider::NotTheApprover)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn totals(max_line: &str, overall: &str, net: &str) -> Totals {
        let d = |s| Decimal::from_str(s).unwrap();
        Totals { list: d(net), discount: Decimal::ZERO, net: d(net), max_line_discount_percent: d(max_line), discount_percent: d(overall) }
    }

    #[test]
    fn the_discount_decides_the_chain() {
        let approvers = |t: &Totals| chain(t, Some("east")).iter().map(|s| s.approver).collect::<Vec<_>>();
        assert_eq!(approvers(&totals("10", "10", "1000")), vec![]);
        assert_eq!(approvers(&totals("10.01", "5", "1000")), vec![Approver::Manager], "one line above 10% is enough");
        assert_eq!(approvers(&totals("20", "20", "1000")), vec![Approver::Manager]);
        assert_eq!(approvers(&totals("25", "12", "1000")), vec![Approver::Manager, Approver::Finance]);
        assert_eq!(approvers(&totals("0", "0", "500000")), vec![Approver::Finance], "large deals go to finance");
        assert_eq!(chain(&totals("15", "15", "1"), Some("east"))[0], Step { approver: Approver::Manager, team: Some("east".into()) });
    }

    #[test]
    fn only_the_right_approver_decides_a_step() {
        let step = Step { approver: Approver::Manager, team: Some("east".into()) };
        assert!(may_decide(&step, &[Role::Manager, Role::Approver], Some("east")));
        assert!(!may_decide(&step, &[Role::Manager, Role::Approver], Some("west")), "another team's manager");
        assert!(!may_decide(&step, &[Role::Manager], Some("east")), "managers without the approver role");
        assert!(!may_decide(&step, &[Role::Finance, Role::Approver], Some("east")));
        let finance = Step { approver: Approver::Finance, team: None };
        assert!(may_decide(&finance, &[Role::Finance, Role::Approver], None));
        assert!(!may_decide(&finance, &[Role::Admin], None), "admins are not approvers");
    }

    #[test]
    fn who_decides_a_step_over_roles_teams_and_delegations() {
        use NotTheDecider::*;
        let manager_east = Step { approver: Approver::Manager, team: Some("east".into()) };
        let finance = Step { approver: Approver::Finance, team: None };
        let (mia, fiona, wes) = ([Role::Manager, Role::Approver], [Role::Finance, Role::Approver], [Role::Manager, Role::Approver]);
        let from = |delegator: &str, roles: &[Role], team: Option<&str>| Delegated { delegator: delegator.into(), roles: roles.to_vec(), team: team.map(String::from) };
        let cases: Vec<(&str, &Step, &str, &[Role], Option<&str>, Vec<Delegated>, Result<Option<&str>, NotTheDecider>)> = vec![
            ("the team's manager", &manager_east, "mia", &mia, Some("east"), vec![], Ok(None)),
            ("another team's manager", &manager_east, "wes", &wes, Some("west"), vec![], Err(NotTheApprover)),
            ("a manager who is no approver", &manager_east, "max", &[Role::Manager], Some("east"), vec![], Err(NotTheApprover)),
            ("finance on a manager step", &manager_east, "fiona", &fiona, None, vec![], Err(NotTheApprover)),
            ("finance on a finance step", &finance, "fiona", &fiona, None, vec![], Ok(None)),
            ("an admin", &finance, "root", &[Role::Admin], None, vec![], Err(NotTheApprover)),
            ("a rep as the manager's delegate", &manager_east, "bob", &[Role::Rep], Some("east"), vec![from("mia", &mia, Some("east"))], Ok(Some("mia"))),
            ("a rep as finance's delegate", &finance, "bob", &[Role::Rep], Some("east"), vec![from("fiona", &fiona, None)], Ok(Some("fiona"))),
            ("a delegate of the wrong approver", &finance, "bob", &[Role::Rep], Some("east"), vec![from("mia", &mia, Some("east"))], Err(NotTheApprover)),
            ("a delegate of the owner", &manager_east, "bob", &[Role::Rep], Some("east"), vec![from("olga", &mia, Some("east"))], Err(NotTheApprover)),
            ("the submitter, though a manager", &manager_east, "sam", &mia, Some("east"), vec![], Err(OwnQuote)),
            ("the owner, though a delegate", &manager_east, "olga", &[Role::Rep], Some("east"), vec![from("mia", &mia, Some("east"))], Err(OwnQuote)),
            ("the first delegator who may", &manager_east, "bob", &[Role::Rep], None, vec![from("wes", &wes, Some("west")), from("mia", &mia, Some("east"))], Ok(Some("mia"))),
        ];
        for (case, step, user, roles, team, delegations, expected) in cases {
            let acting = Acting { user: user.into(), roles: roles.to_vec(), team: team.map(String::from), delegations };
            let found = decider(step, &acting, Some("sam"), "olga");
            assert_eq!(found, expected.map(|d| d.map(String::from)), "{case}");
        }
    }

    #[test]
    fn a_token_grants_an_automation_no_role() {
        let robot = Subject { user: "lead-router".into(), kind: crate::ActorKind::Automation, roles: vec![Role::Manager, Role::Approver], team: Some("east".into()) };
        let step = Step { approver: Approver::Manager, team: Some("east".into()) };
        assert_eq!(decider(&step, &Acting::new(&robot, vec![]), Some("sam"), "olga"), Err(NotTheDecider::NotTheApprover));
    }
}

//! The discount approval policy: from a quote's figures, which approvals it needs, in which
//! order, and who may give each. The one place where these thresholds live; a change here
//! is a change of `POLICY_VERSION`.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::policy::Role;
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
pub fn may_decide(step: &Step, roles: &[Role], team: Option<&str>) -> bool {
    if !roles.contains(&Role::Approver) {
        return false;
    }
    match step.approver {
        Approver::Manager => roles.contains(&Role::Manager) && (step.team.is_none() || step.team.as_deref() == team),
        Approver::Finance => roles.contains(&Role::Finance),
    }
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
}

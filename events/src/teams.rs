//! Who works in which team, per tenant: configuration that the shells read, so that a
//! command naming a colleague (a task's assignee) names someone the tenant has.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub tenant: String,
    pub team: String,
    pub members: Vec<String>,
}

/// Every tenant's teams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Teams(pub Vec<Team>);

impl Teams {
    /// Whether some team of `tenant` has `user` as a member.
    pub fn knows(&self, tenant: &str, user: &str) -> bool {
        self.0.iter().any(|t| t.tenant == tenant && t.members.iter().any(|m| m == user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_known_in_their_tenant_only() {
        let teams = Teams(vec![Team { tenant: "acme".into(), team: "east".into(), members: vec!["alice".into()] }]);
        assert!(teams.knows("acme", "alice"));
        assert!(!teams.knows("acme", "mallory"));
        assert!(!teams.knows("globex", "alice"), "another tenant's alice is another person");
    }
}

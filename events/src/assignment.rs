//! Lead assignment rules: the first rule that matches a lead's territory and segment names
//! a team, and the team's members take leads in turn (round robin). Rules are
//! configuration; choosing by them is pure.

use serde::{Deserialize, Serialize};

use crate::lead::Lead;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Matches leads of this territory (any when absent).
    pub territory: Option<String>,
    /// Matches leads of this segment (any when absent).
    pub segment: Option<String>,
    pub team: String,
    /// Who takes the team's leads, in turn.
    pub members: Vec<String>,
}

/// Who gets a lead, and why, in words an auditor can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub owner_id: String,
    pub team_id: String,
    pub rationale: String,
}

/// Chooses an owner for `lead`; `assigned_to_team(team)` counts the leads the team was
/// given before (the turn). `None` when no rule matches.
pub fn assign(rules: &[Rule], lead: &Lead, assigned_to_team: impl Fn(&str) -> u64) -> Option<Assignment> {
    let matches = |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(value));
    let (number, rule) = rules
        .iter()
        .enumerate()
        .find(|(_, r)| !r.members.is_empty() && matches(&r.territory, &lead.territory) && matches(&r.segment, &lead.segment))?;
    let turn = assigned_to_team(&rule.team);
    let owner = &rule.members[(turn % rule.members.len() as u64) as usize];
    let matched: Vec<String> = [("territory", &rule.territory), ("segment", &rule.segment)]
        .iter()
        .filter_map(|(what, v)| v.as_ref().map(|v| format!("{what} {v}")))
        .collect();
    let matched = if matched.is_empty() { "any lead".to_string() } else { matched.join(", ") };
    Some(Assignment {
        owner_id: owner.clone(),
        team_id: rule.team.clone(),
        rationale: format!("rule {} ({matched}) gives the lead to team {}; round robin: {owner}, lead {} of the team", number + 1, rule.team, turn + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::given_nothing;
    use crate::lead::{LeadCommand, NewLead};

    fn lead(territory: &str, segment: &str) -> Lead {
        let new = NewLead {
            name: "Jane".into(),
            company: "Initech".into(),
            email: None,
            phone: None,
            territory: territory.into(),
            segment: segment.into(),
            source: "web".into(),
            at: chrono::Utc::now(),
        };
        given_nothing::<Lead>().when(LeadCommand::Capture(new)).then_state()
    }

    fn rules() -> Vec<Rule> {
        let rule = |territory: Option<&str>, segment: Option<&str>, team: &str, members: &[&str]| Rule {
            territory: territory.map(String::from),
            segment: segment.map(String::from),
            team: team.into(),
            members: members.iter().map(|m| m.to_string()).collect(),
        };
        vec![rule(None, Some("enterprise"), "north", &["gina", "hank"]), rule(Some("east"), None, "east", &["alice", "bob"]), rule(None, None, "west", &["carol"])]
    }

    #[test]
    fn the_first_matching_rule_names_the_team_and_its_members_take_turns() {
        let a = assign(&rules(), &lead("east", "smb"), |_| 0).unwrap();
        assert_eq!((a.owner_id.as_str(), a.team_id.as_str()), ("alice", "east"));
        assert_eq!(a.rationale, "rule 2 (territory east) gives the lead to team east; round robin: alice, lead 1 of the team");
        assert_eq!(assign(&rules(), &lead("East", "smb"), |_| 3).unwrap().owner_id, "bob");
        assert_eq!(assign(&rules(), &lead("east", "enterprise"), |_| 0).unwrap().team_id, "north", "rules go in order");
        assert_eq!(assign(&rules(), &lead("south", "smb"), |_| 0).unwrap().team_id, "west", "a catch-all rule");
        assert_eq!(assign(&rules()[..2], &lead("south", "smb"), |_| 0), None);
    }
}

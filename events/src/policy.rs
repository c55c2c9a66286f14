//! Who may do what: one pure, versioned module. Every accepted event carries
//! `POLICY_VERSION`, so an auditor can tell which rules allowed it; every denial carries it
//! too. Change a rule, change the version.
//!
//! Tenants are not decided here: a record of another tenant is never found at all (404),
//! so its existence does not leak. This module decides within one tenant.

use rust_decimal::Decimal;

use crate::{ActorKind, Money};

pub const POLICY_VERSION: &str = "2026-12.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Rep,
    Manager,
    Approver,
    Finance,
    Analyst,
    Auditor,
    Admin,
    /// Runs the deployment (the schema registry, the metrics), and nothing inside a tenant.
    Operator,
}

impl Role {
    pub const ALL: [Role; 8] = [Role::Rep, Role::Manager, Role::Approver, Role::Finance, Role::Analyst, Role::Auditor, Role::Admin, Role::Operator];

    pub fn name(self) -> &'static str {
        match self {
            Role::Rep => "rep",
            Role::Manager => "manager",
            Role::Approver => "approver",
            Role::Finance => "finance",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::Operator => "operator",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// What an automation principal may do, granted here by name (a token cannot grant it).
#[derive(Debug, Clone, PartialEq)]
pub struct AutomationPolicy {
    pub may_open_accounts: bool,
    pub may_create_opportunities: bool,
    /// May assign leads (by the assignment rules).
    pub may_assign_leads: bool,
    /// Largest amount it may create or set an opportunity to.
    pub max_amount: Option<Decimal>,
    pub may_read: bool,
    pub may_see_personal_fields: bool,
    /// May state why it acted (`X-Rationale`), which its events then carry.
    pub may_state_rationale: bool,
    /// May record that a contact opened an email (a mail tracker).
    pub may_record_email_opens: bool,
    /// May record the sequences it detected (the sequence detector).
    pub may_record_detections: bool,
}

impl AutomationPolicy {
    /// Nothing allowed: each policy below says what it adds.
    const NOTHING: AutomationPolicy = AutomationPolicy {
        may_open_accounts: false,
        may_create_opportunities: false,
        may_assign_leads: false,
        max_amount: None,
        may_read: false,
        may_see_personal_fields: false,
        may_state_rationale: false,
        may_record_email_opens: false,
        may_record_detections: false,
    };
}

/// The automation principals this policy version knows.
pub fn automation_policy(principal: &str) -> Option<AutomationPolicy> {
    match principal {
        // Routes inbound leads into opportunities; small deals only, and it reads nothing.
        "lead-router" => Some(AutomationPolicy {
            may_open_accounts: true,
            may_create_opportunities: true,
            may_assign_leads: true,
            max_amount: Some(Decimal::from(50_000)),
            may_read: false,
            may_see_personal_fields: false,
            may_state_rationale: true,
            ..AutomationPolicy::NOTHING
        }),
        // A mail tracker's webhook: records openings, and reads nothing.
        "mail-tracker" => Some(AutomationPolicy { may_record_email_opens: true, ..AutomationPolicy::NOTHING }),
        // Finds sequences in the log and records them, saying which two events it saw.
        "sequence-detector" => Some(AutomationPolicy { may_record_detections: true, may_state_rationale: true, ..AutomationPolicy::NOTHING }),
        _ => None,
    }
}

/// Who asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub user: String,
    pub kind: ActorKind,
    pub roles: Vec<Role>,
    pub team: Option<String>,
}

impl Subject {
    /// The roles that count: a token's roles grant an automation nothing (an automation
    /// acts under its own policy), so that a leaked automation token is no admin's.
    pub fn granted_roles(&self) -> &[Role] {
        match self.kind {
            ActorKind::User => &self.roles,
            _ => &[],
        }
    }

    fn has(&self, role: Role) -> bool {
        self.granted_roles().contains(&role)
    }

    fn in_team(&self, team: Option<&str>) -> bool {
        team.is_some() && self.team.as_deref() == team
    }

    fn automation(&self) -> Option<AutomationPolicy> {
        (self.kind == ActorKind::Automation).then(|| automation_policy(&self.user)).flatten()
    }
}

/// The owner and team of an existing record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Owned<'a> {
    pub owner: &'a str,
    pub team: Option<&'a str>,
    /// Users it is shared with, who may read it.
    pub shared_with: &'a [String],
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action<'a> {
    OpenAccount,
    CreateOpportunity { owner: &'a str, amount: &'a Money },
    /// Any change to an existing opportunity; `amount` when the change sets one.
    ChangeOpportunity { record: Owned<'a>, amount: Option<&'a Money> },
    ReadOpportunity { record: Owned<'a> },
    /// Capture a lead (sellers, and whoever feeds leads in).
    CaptureLead,
    /// Assign a lead by the rules.
    AssignLead,
    /// Qualify, disqualify or convert a lead; `record` is its owner and team (none: unassigned).
    WorkLead { record: Option<Owned<'a>> },
    /// Read leads.
    ReadLeads,
    /// Create or change a contact (contacts have no owner: every seller of the tenant works with them).
    ChangeContact,
    /// Read contacts; personal fields only with `may_see_personal_fields`.
    ReadContacts,
    /// Log a call, email, meeting or task; `record` is the opportunity it is about, if any.
    LogActivity { record: Option<Owned<'a>> },
    ReadAudit,
    /// Erase a person's data (contact or lead): admins only.
    ErasePersonalData,
    /// Record that a contact opened an email.
    RecordEmailOpened,
    /// Record a detected sequence of events.
    RecordDetection,
}

impl Action<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Action::OpenAccount => "open-account",
            Action::CreateOpportunity { .. } => "create-opportunity",
            Action::ChangeOpportunity { .. } => "change-opportunity",
            Action::ReadOpportunity { .. } => "read-opportunity",
            Action::LogActivity { .. } => "log-activity",
            Action::ChangeContact => "change-contact",
            Action::CaptureLead => "capture-lead",
            Action::AssignLead => "assign-lead",
            Action::WorkLead { .. } => "work-lead",
            Action::ReadLeads => "read-leads",
            Action::ReadContacts => "read-contacts",
            Action::ReadAudit => "read-audit",
            Action::ErasePersonalData => "erase-personal-data",
            Action::RecordEmailOpened => "record-email-opened",
            Action::RecordDetection => "record-detection",
        }
    }
}

/// A refusal with a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: &'static str,
    pub reason: String,
}

fn deny(code: &'static str, reason: impl Into<String>) -> Result<(), Denial> {
    Err(Denial { code, reason: reason.into() })
}

/// Which rows of a read model a subject sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Nothing,
    Own(String),
    Team(String),
    Tenant,
}

/// The opportunities (and pipeline cells) a subject may read.
pub fn opportunity_scope(s: &Subject) -> Scope {
    if s.has(Role::Admin) || s.has(Role::Finance) || s.has(Role::Analyst) {
        Scope::Tenant
    } else if let (true, Some(team)) = (s.has(Role::Manager), &s.team) {
        Scope::Team(team.clone())
    } else if s.has(Role::Rep) || s.has(Role::Manager) {
        Scope::Own(s.user.clone())
    } else {
        Scope::Nothing
    }
}

/// Whether personal fields (a contact's name, email, phone) are shown to the subject in
/// any answer, aggregates included. Analysts work on anonymous data; auditors see lineage,
/// not people; automations only when their policy says so.
pub fn may_see_personal_fields(s: &Subject) -> bool {
    match s.kind {
        ActorKind::Automation => s.automation().is_some_and(|p| p.may_see_personal_fields),
        ActorKind::System => false,
        ActorKind::User => [Role::Rep, Role::Manager, Role::Approver, Role::Finance, Role::Admin].iter().any(|r| s.has(*r)),
    }
}

/// Whether the subject may state a rationale for its command. An event's rationale says
/// why an automation acted, under a policy that allows it; a person's word is not one.
pub fn may_state_rationale(s: &Subject) -> bool {
    s.automation().is_some_and(|p| p.may_state_rationale)
}

/// Whether the subject may operate Tidemark itself: change the schema registry (shared by
/// every tenant), read the metrics (which show every tenant's traffic). Operators, and
/// Tidemark's own system principal; not a tenant's admin.
pub fn may_operate(s: &Subject) -> bool {
    s.kind == ActorKind::System || s.has(Role::Operator)
}

pub fn authorize(s: &Subject, action: &Action<'_>) -> Result<(), Denial> {
    if let Some(policy) = s.automation() {
        return authorize_automation(s, &policy, action);
    }
    if s.kind == ActorKind::Automation {
        return deny("no-automation-policy", format!("automation principal {} has no policy in {POLICY_VERSION}", s.user));
    }
    if s.has(Role::Admin) {
        return Ok(());
    }
    let sellers = s.has(Role::Rep) || s.has(Role::Manager);
    match action {
        Action::OpenAccount if sellers => Ok(()),
        Action::CreateOpportunity { owner, .. } if s.has(Role::Manager) || (s.has(Role::Rep) && *owner == s.user) => Ok(()),
        Action::CreateOpportunity { .. } if s.has(Role::Rep) => {
            deny("reps-create-their-own", "a rep creates opportunities owned by themselves; a manager assigns them to others")
        }
        Action::ChangeOpportunity { record, .. } | Action::ReadOpportunity { record } if can_touch(s, record) => Ok(()),
        Action::ReadOpportunity { record } if sellers && record.shared_with.contains(&s.user) => Ok(()),
        Action::ReadOpportunity { .. } if opportunity_scope(s) == Scope::Tenant => Ok(()),
        Action::ChangeContact | Action::CaptureLead if sellers => Ok(()),
        // A lead is worked by its owner and their team's managers; an unassigned one by managers.
        Action::WorkLead { record: Some(record) } if can_touch(s, record) => Ok(()),
        Action::WorkLead { record: None } if s.has(Role::Manager) => Ok(()),
        Action::ReadLeads if sellers => Ok(()),
        // Whoever reads opportunities reads contacts (analysts without their personal fields).
        Action::ReadContacts if opportunity_scope(s) != Scope::Nothing => Ok(()),
        // Sellers log on accounts and contacts, and on the opportunities they see.
        Action::LogActivity { record: None } if sellers => Ok(()),
        Action::LogActivity { record: Some(record) } if sellers && (can_touch(s, record) || record.shared_with.contains(&s.user)) => Ok(()),
        Action::ChangeOpportunity { .. } | Action::ReadOpportunity { .. } | Action::LogActivity { record: Some(_) } | Action::WorkLead { record: Some(_) }
            if sellers =>
        {
            not_yours(s.has(Role::Manager), if matches!(action, Action::WorkLead { .. }) { "lead" } else { "opportunity" })
        }
        Action::ReadAudit if s.has(Role::Auditor) => Ok(()),
        _ => deny(
            "role-may-not",
            format!("roles [{}] may not {}", s.roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "), action.name()),
        ),
    }
}

/// The refusal of someone else's record; it names neither the owner nor the team, which
/// the caller may not know.
fn not_yours(manager: bool, what: &str) -> Result<(), Denial> {
    let whose = if manager { "neither yours nor your team's" } else { "not yours" };
    deny("not-your-record", format!("this {what} is {whose}"))
}

/// Whether a record of `owner` and `team` lies in `scope`; the refusal when it does not.
pub fn within(scope: &Scope, (owner, team): (Option<&str>, Option<&str>), what: &str) -> Result<(), Denial> {
    let inside = match scope {
        Scope::Tenant => true,
        Scope::Team(mine) => team == Some(mine.as_str()),
        Scope::Own(me) => owner == Some(me.as_str()),
        Scope::Nothing => false,
    };
    if inside { Ok(()) } else { not_yours(matches!(scope, Scope::Team(_)), what) }
}

/// Reps touch their own records; managers their team's too.
fn can_touch(s: &Subject, record: &Owned<'_>) -> bool {
    ((s.has(Role::Rep) || s.has(Role::Manager)) && record.owner == s.user) || (s.has(Role::Manager) && s.in_team(record.team))
}

fn authorize_automation(s: &Subject, policy: &AutomationPolicy, action: &Action<'_>) -> Result<(), Denial> {
    let within_limit = |amount: Option<&Money>| match (policy.max_amount, amount) {
        (Some(max), Some(m)) if m.value > max => {
            deny("automation-limit", format!("{} may set amounts up to {max}, not {} {}", s.user, m.value, m.currency))
        }
        _ => Ok(()),
    };
    match action {
        Action::OpenAccount if policy.may_open_accounts => Ok(()),
        Action::CreateOpportunity { amount, .. } if policy.may_create_opportunities => within_limit(Some(amount)),
        Action::ReadOpportunity { .. } | Action::ReadContacts if policy.may_read => Ok(()),
        Action::CaptureLead | Action::AssignLead if policy.may_assign_leads => Ok(()),
        Action::RecordEmailOpened if policy.may_record_email_opens => Ok(()),
        Action::RecordDetection if policy.may_record_detections => Ok(()),
        _ => deny("automation-may-not", format!("the policy of {} does not allow {}", s.user, action.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Currency;

    fn user(name: &str, roles: &[Role], team: &str) -> Subject {
        Subject { user: name.into(), kind: ActorKind::User, roles: roles.to_vec(), team: Some(team.into()) }
    }

    fn eur(v: i64) -> Money {
        Money { value: Decimal::from(v), currency: Currency::try_from("EUR".to_string()).unwrap() }
    }

    const ALICES: Owned = Owned { owner: "alice", team: Some("east"), shared_with: &[] };
    const CAROLS: Owned = Owned { owner: "carol", team: Some("west"), shared_with: &[] };

    #[test]
    fn reps_work_on_their_own_records() {
        let alice = user("alice", &[Role::Rep], "east");
        let bob = user("bob", &[Role::Rep], "east");
        assert!(authorize(&alice, &Action::ChangeOpportunity { record: ALICES, amount: None }).is_ok());
        assert_eq!(authorize(&bob, &Action::ChangeOpportunity { record: ALICES, amount: None }).unwrap_err().code, "not-your-record");
        assert_eq!(authorize(&bob, &Action::CreateOpportunity { owner: "alice", amount: &eur(1) }).unwrap_err().code, "reps-create-their-own");
        assert!(authorize(&bob, &Action::CreateOpportunity { owner: "bob", amount: &eur(1) }).is_ok());
        assert_eq!(opportunity_scope(&bob), Scope::Own("bob".into()));
    }

    #[test]
    fn a_share_lets_a_seller_read_but_not_change() {
        let shared = ["bob".to_string()];
        let record = Owned { owner: "alice", team: Some("east"), shared_with: &shared };
        let bob = user("bob", &[Role::Rep], "east");
        assert!(authorize(&bob, &Action::ReadOpportunity { record }).is_ok());
        assert_eq!(authorize(&bob, &Action::ChangeOpportunity { record, amount: None }).unwrap_err().code, "not-your-record");
        assert!(authorize(&user("andy-auditor", &[Role::Auditor], "x"), &Action::ReadOpportunity { record: Owned { shared_with: &["andy-auditor".into()], ..record } }).is_err());
    }

    #[test]
    fn managers_work_on_their_teams_records() {
        let mia = user("mia", &[Role::Manager], "east");
        assert!(authorize(&mia, &Action::ChangeOpportunity { record: ALICES, amount: None }).is_ok());
        assert!(authorize(&mia, &Action::CreateOpportunity { owner: "alice", amount: &eur(1) }).is_ok());
        assert_eq!(authorize(&mia, &Action::ReadOpportunity { record: CAROLS }).unwrap_err().code, "not-your-record");
        assert_eq!(opportunity_scope(&mia), Scope::Team("east".into()));
    }

    #[test]
    fn read_only_roles_read_and_never_write() {
        for role in [Role::Finance, Role::Analyst] {
            let s = user("x", &[role], "hq");
            assert!(authorize(&s, &Action::ReadOpportunity { record: CAROLS }).is_ok());
            assert_eq!(authorize(&s, &Action::ChangeOpportunity { record: CAROLS, amount: None }).unwrap_err().code, "role-may-not");
            assert_eq!(authorize(&s, &Action::OpenAccount).unwrap_err().code, "role-may-not");
        }
        let auditor = user("aud", &[Role::Auditor], "hq");
        assert!(authorize(&auditor, &Action::ReadAudit).is_ok());
        assert_eq!(opportunity_scope(&auditor), Scope::Nothing);
        assert!(authorize(&user("x", &[Role::Rep], "east"), &Action::ReadAudit).is_err());
    }

    #[test]
    fn personal_fields_are_for_the_people_who_work_with_customers() {
        assert!(may_see_personal_fields(&user("alice", &[Role::Rep], "east")));
        assert!(may_see_personal_fields(&user("root", &[Role::Admin], "hq")));
        assert!(!may_see_personal_fields(&user("andy", &[Role::Analyst], "hq")));
        assert!(!may_see_personal_fields(&user("audrey", &[Role::Auditor], "hq")));
        let router = Subject { user: "lead-router".into(), kind: ActorKind::Automation, roles: vec![Role::Admin], team: None };
        assert!(!may_see_personal_fields(&router));
    }

    #[test]
    fn admins_may_do_anything_in_their_tenant() {
        let root = user("root", &[Role::Admin], "hq");
        assert!(authorize(&root, &Action::ChangeOpportunity { record: CAROLS, amount: None }).is_ok());
        assert!(authorize(&root, &Action::ReadAudit).is_ok());
        assert!(!may_operate(&root), "the deployment is not a tenant's");
    }

    #[test]
    fn only_automations_whose_policy_allows_it_state_a_rationale() {
        let router = Subject { user: "lead-router".into(), kind: ActorKind::Automation, roles: vec![], team: None };
        assert!(may_state_rationale(&router));
        assert!(!may_state_rationale(&user("root", &[Role::Admin], "hq")));
        let stranger = Subject { user: "unknown-bot".into(), kind: ActorKind::Automation, roles: vec![], team: None };
        assert!(!may_state_rationale(&stranger));
    }

    #[test]
    fn operators_run_the_deployment_and_see_no_tenant() {
        let ops = user("ops", &[Role::Operator], "hq");
        assert!(may_operate(&ops));
        assert!(authorize(&ops, &Action::ReadOpportunity { record: ALICES }).is_err());
        assert!(authorize(&ops, &Action::OpenAccount).is_err());
        let bot = Subject { user: "lead-router".into(), kind: ActorKind::Automation, roles: vec![Role::Operator], team: None };
        assert!(!may_operate(&bot), "roles in a token grant an automation nothing");
    }

    #[test]
    fn automations_do_what_their_policy_says() {
        let router = Subject { user: "lead-router".into(), kind: ActorKind::Automation, roles: vec![Role::Admin], team: None };
        assert!(authorize(&router, &Action::CreateOpportunity { owner: "bob", amount: &eur(50_000) }).is_ok());
        assert_eq!(authorize(&router, &Action::CreateOpportunity { owner: "bob", amount: &eur(50_001) }).unwrap_err().code, "automation-limit");
        assert_eq!(authorize(&router, &Action::ReadOpportunity { record: ALICES }).unwrap_err().code, "automation-may-not");
        assert_eq!(opportunity_scope(&router), Scope::Nothing, "roles in a token grant an automation nothing");
        let stranger = Subject { user: "unknown-bot".into(), kind: ActorKind::Automation, roles: vec![], team: None };
        assert_eq!(authorize(&stranger, &Action::OpenAccount).unwrap_err().code, "no-automation-policy");
    }
}

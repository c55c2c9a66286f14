//! The Activity aggregate: a call, an email or a meeting logged on an account, a contact or
//! an opportunity, or a task with a due date and an assignee that is completed (and may be
//! reopened).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::opportunity::valid_name;
use crate::Rejection;

pub const AGGREGATE_TYPE: &str = "activity";

crate::text_enum! {
    pub enum Kind {
        Call => "call",
        Email => "email",
        Meeting => "meeting",
        Task => "task",
    }
}

crate::text_enum! {
    /// What an activity is about.
    pub enum About {
        Account => "account",
        Contact => "contact",
        Opportunity => "opportunity",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub kind: Kind,
    pub about: About,
    pub about_id: Uuid,
    pub subject: String,
    pub logged_by: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub due_date: Option<NaiveDate>,
    pub assignee: Option<String>,
    pub done: bool,
    pub version: i64,
}

/// What the shell found out about the record the activity is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Missing,
    Open,
    /// A closed opportunity.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewActivity {
    pub kind: Kind,
    pub about: About,
    pub about_id: Uuid,
    pub target: Target,
    /// The caller said they mean to log on a closed opportunity.
    pub on_closed: bool,
    pub subject: String,
    pub logged_by: String,
    /// Calls, emails, meetings: when it happened (default: now).
    pub occurred_at: Option<DateTime<Utc>>,
    /// Tasks: when it is due and who does it (default: whoever logs it).
    pub due_date: Option<NaiveDate>,
    pub assignee: Option<String>,
    /// The shell found the assignee among the members of the tenant's teams.
    pub assignee_known: bool,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActivityCommand {
    Log(NewActivity),
    Complete { by: String, at: DateTime<Utc> },
    Reopen { by: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityLogged {
    pub kind: Kind,
    pub about: About,
    pub about_id: Uuid,
    pub subject: String,
    pub logged_by: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub due_date: Option<NaiveDate>,
    pub assignee: Option<String>,
    /// Logged on a closed opportunity, on purpose.
    pub on_closed_opportunity: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatusChanged {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Serializes as its payload alone, like every event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ActivityEvent {
    Logged(ActivityLogged),
    TaskCompleted(TaskStatusChanged),
    TaskReopened(TaskStatusChanged),
}

impl ActivityEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            ActivityEvent::Logged(_) => "ActivityLogged",
            ActivityEvent::TaskCompleted(_) => "TaskCompleted",
            ActivityEvent::TaskReopened(_) => "TaskReopened",
        }
    }
}

fn broken(rule: &'static str, message: impl Into<String>) -> Rejection {
    Rejection::Broken { rule, message: message.into() }
}

fn decide(state: Option<&Activity>, command: &ActivityCommand) -> Result<Vec<ActivityEvent>, Rejection> {
    let activity = match (state, command) {
        (None, ActivityCommand::Log(new)) => return log(new),
        (Some(_), ActivityCommand::Log(_)) => return Err(Rejection::AlreadyExists),
        (None, _) => return Err(Rejection::NotFound),
        (Some(a), _) => a,
    };
    if activity.kind != Kind::Task {
        return Err(broken("only-tasks-are-done", format!("a {} happened; only a task is completed or reopened", activity.kind.name())));
    }
    let by = match command {
        ActivityCommand::Log(_) => unreachable!("handled above"),
        ActivityCommand::Complete { by, .. } | ActivityCommand::Reopen { by, .. } => by,
    };
    if Some(by) != activity.assignee.as_ref() && *by != activity.logged_by {
        return Err(Rejection::NotYours { code: "not-your-task", message: "a task is completed or reopened by its assignee or by whoever set it".into() });
    }
    match command {
        ActivityCommand::Log(_) => unreachable!("handled above"),
        ActivityCommand::Complete { by, at } if !activity.done => Ok(vec![ActivityEvent::TaskCompleted(TaskStatusChanged { by: by.clone(), at: *at })]),
        ActivityCommand::Reopen { by, at } if activity.done => Ok(vec![ActivityEvent::TaskReopened(TaskStatusChanged { by: by.clone(), at: *at })]),
        ActivityCommand::Complete { .. } => Err(Rejection::NoChange("the task is completed already")),
        ActivityCommand::Reopen { .. } => Err(Rejection::NoChange("the task is open")),
    }
}

fn log(new: &NewActivity) -> Result<Vec<ActivityEvent>, Rejection> {
    let subject = valid_name("subject", &new.subject)?;
    match new.target {
        Target::Missing => return Err(Rejection::field_rule("about_id", "must-exist", format!("no {} {}", new.about.name(), new.about_id))),
        Target::Closed if !new.on_closed => {
            return Err(broken(
                "closed-opportunity-needs-intent",
                "the opportunity is closed; to log on it anyway, say so with \"on_closed_opportunity\": true",
            ))
        }
        _ => {}
    }
    let (occurred_at, due_date, assignee) = match new.kind {
        Kind::Task => {
            let due = new.due_date.ok_or_else(|| Rejection::field_rule("due_date", "task-needs-due-date", "a task has a due date"))?;
            let due = crate::dates::within_window("due_date", due)?;
            let assignee = valid_name("assignee", new.assignee.as_deref().unwrap_or(&new.logged_by))?;
            // Whoever sets a task is known (they signed in); a colleague must be a team's.
            if assignee != new.logged_by && !new.assignee_known {
                return Err(Rejection::field_rule("assignee", "assignee-must-be-known", format!("{assignee} is a member of no team of this tenant")));
            }
            (None, Some(due), Some(assignee))
        }
        _ => {
            if new.due_date.is_some() || new.assignee.is_some() {
                return Err(Rejection::field_rule("due_date", "only-tasks-are-due", "only tasks have a due date and an assignee"));
            }
            let at = new.occurred_at.unwrap_or(new.now);
            if at > new.now {
                return Err(Rejection::field_rule("occurred_at", "logged-once-it-happened", "a call, an email or a meeting is logged once it happened"));
            }
            (Some(at), None, None)
        }
    };
    Ok(vec![ActivityEvent::Logged(ActivityLogged {
        kind: new.kind,
        about: new.about,
        about_id: new.about_id,
        subject,
        logged_by: new.logged_by.clone(),
        occurred_at,
        due_date,
        assignee,
        on_closed_opportunity: new.target == Target::Closed,
    })])
}

fn evolve(state: Option<Activity>, event: &ActivityEvent) -> Activity {
    match (state, event) {
        (_, ActivityEvent::Logged(e)) => Activity {
            kind: e.kind,
            about: e.about,
            about_id: e.about_id,
            subject: e.subject.clone(),
            logged_by: e.logged_by.clone(),
            occurred_at: e.occurred_at,
            due_date: e.due_date,
            assignee: e.assignee.clone(),
            done: false,
            version: 1,
        },
        (Some(a), ActivityEvent::TaskCompleted(_)) => Activity { done: true, version: a.version + 1, ..a },
        (Some(a), ActivityEvent::TaskReopened(_)) => Activity { done: false, version: a.version + 1, ..a },
        (None, e) => panic!("{} before ActivityLogged: the fold rule must refuse gaps", e.event_type()),
    }
}

impl crate::Aggregate for Activity {
    const TYPE: &'static str = AGGREGATE_TYPE;
    type Command = ActivityCommand;
    type Event = ActivityEvent;

    fn decide(state: Option<&Activity>, command: &ActivityCommand) -> Result<Vec<ActivityEvent>, Rejection> {
        decide(state, command)
    }

    fn evolve(state: Option<Activity>, event: &ActivityEvent) -> Activity {
        evolve(state, event)
    }

    fn of(any: &crate::AnyAggregate) -> Option<&Activity> {
        match any {
            crate::AnyAggregate::Activity(state) => Some(state),
            _ => None,
        }
    }

    fn from_any(any: crate::AnyAggregate) -> Option<Activity> {
        match any {
            crate::AnyAggregate::Activity(state) => Some(state),
            _ => None,
        }
    }

    fn into_any(self) -> crate::AnyAggregate {
        crate::AnyAggregate::Activity(self)
    }

    fn event_into_any(event: ActivityEvent) -> crate::DomainEvent {
        crate::DomainEvent::Activity(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::testing::{given_nothing, given_state};

    fn now() -> DateTime<Utc> {
        NaiveDate::from_ymd_opt(2026, 11, 21).unwrap().and_hms_opt(12, 0, 0).unwrap().and_utc()
    }

    fn new(kind: Kind, target: Target) -> NewActivity {
        NewActivity {
            kind,
            about: About::Opportunity,
            about_id: Uuid::from_u128(1),
            target,
            on_closed: false,
            subject: "Follow up on the proposal".into(),
            logged_by: "alice".into(),
            occurred_at: None,
            due_date: (kind == Kind::Task).then(|| now().date_naive()),
            assignee: None,
            assignee_known: false,
            now: now(),
        }
    }

    fn run(state: Option<Activity>, cmd: &ActivityCommand) -> Result<Activity, Rejection> {
        given_state(state).when(cmd.clone()).outcome()
    }

    #[test]
    fn a_task_is_completed_and_reopened() {
        let task = run(None, &ActivityCommand::Log(new(Kind::Task, Target::Open))).unwrap();
        assert_eq!((task.assignee.as_deref(), task.done), (Some("alice"), false), "the logger does it unless told otherwise");
        let done = run(Some(task), &ActivityCommand::Complete { by: "alice".into(), at: now() }).unwrap();
        assert!(done.done);
        given_state(done.clone()).when(ActivityCommand::Complete { by: "alice".into(), at: now() }).then_refused("no-change");
        given_state(done.clone()).when(ActivityCommand::Reopen { by: "bob".into(), at: now() }).then_refused("not-your-task");
        assert!(!run(Some(done), &ActivityCommand::Reopen { by: "alice".into(), at: now() }).unwrap().done);
    }

    #[test]
    fn a_call_happened_and_is_not_a_task() {
        let call = run(None, &ActivityCommand::Log(new(Kind::Call, Target::Open))).unwrap();
        assert_eq!(call.occurred_at, Some(now()));
        given_state(call.clone()).when(ActivityCommand::Complete { by: "alice".into(), at: now() }).then_refused("only-tasks-are-done");
        let mut future = new(Kind::Meeting, Target::Open);
        future.occurred_at = Some(now() + chrono::Days::new(1));
        assert!(matches!(given_nothing::<Activity>().when(ActivityCommand::Log(future)).decided(), Err(Rejection::FieldRule { field: "occurred_at", .. })));
        let mut unknown = new(Kind::Task, Target::Open);
        unknown.assignee = Some("mallory".into());
        assert!(matches!(given_nothing::<Activity>().when(ActivityCommand::Log(unknown.clone())).decided(), Err(Rejection::FieldRule { field: "assignee", .. })));
        unknown.assignee_known = true;
        assert!(given_nothing::<Activity>().when(ActivityCommand::Log(unknown)).decided().is_ok(), "a member of a team");
        let mut no_due = new(Kind::Task, Target::Open);
        no_due.due_date = None;
        assert!(matches!(given_nothing::<Activity>().when(ActivityCommand::Log(no_due)).decided(), Err(Rejection::FieldRule { field: "due_date", .. })));
    }

    #[test]
    fn a_closed_opportunity_takes_activities_only_when_asked_explicitly() {
        let refused = given_nothing::<Activity>().when(ActivityCommand::Log(new(Kind::Call, Target::Closed))).decided().unwrap_err();
        assert_eq!(refused.rule(), "closed-opportunity-needs-intent");
        let mut meant = new(Kind::Call, Target::Closed);
        meant.on_closed = true;
        assert!(run(None, &ActivityCommand::Log(meant)).is_ok());
        assert!(matches!(given_nothing::<Activity>().when(ActivityCommand::Log(new(Kind::Call, Target::Missing))).decided(), Err(Rejection::FieldRule { field: "about_id", .. })));
    }
}

//! Avro compatibility levels as Confluent's registry defines them. This file is also
//! compiled into `build.rs`, so it may use nothing but `apache_avro` and `std`.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

pub const DEFAULT_LEVEL: Level = Level::BackwardTransitive;

impl Level {
    pub const ALL: [Level; 7] = [
        Level::None,
        Level::Backward,
        Level::BackwardTransitive,
        Level::Forward,
        Level::ForwardTransitive,
        Level::Full,
        Level::FullTransitive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }

    fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }

    fn backward(self) -> bool {
        matches!(self, Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive)
    }

    fn forward(self) -> bool {
        matches!(self, Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive)
    }
}

/// Checks `candidate` against the versions already registered, oldest first. Returns one
/// message per broken promise; an empty list means compatible.
pub fn check(level: Level, candidate: &Schema, existing: &[Schema]) -> Vec<String> {
    let against: &[Schema] = match existing.len() {
        0 => &[],
        n if level.transitive() => &existing[..n],
        n => &existing[n - 1..],
    };
    let first_version = existing.len() - against.len() + 1;
    let mut problems = Vec::new();
    for (i, old) in against.iter().enumerate() {
        let version = first_version + i;
        if level.backward() {
            if let Err(e) = SchemaCompatibility::can_read(old, candidate) {
                problems.push(format!("the new schema cannot read data written with version {version}: {e}"));
            }
        }
        if level.forward() {
            if let Err(e) = SchemaCompatibility::can_read(candidate, old) {
                problems.push(format!("version {version} cannot read data written with the new schema: {e}"));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)).unwrap()
    }

    #[test]
    fn levels_round_trip_by_name() {
        for level in Level::ALL {
            assert_eq!(Level::parse(level.name()), Some(level));
        }
        assert_eq!(Level::parse("backward"), None);
    }

    #[test]
    fn adding_a_field_with_a_default_is_fully_compatible() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let v2 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#);
        assert!(check(Level::FullTransitive, &v2, &[v1]).is_empty());
    }

    #[test]
    fn adding_a_required_field_breaks_backward_but_not_forward() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let v2 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        assert_eq!(check(Level::Backward, &v2, std::slice::from_ref(&v1)).len(), 1);
        assert!(check(Level::Forward, &v2, std::slice::from_ref(&v1)).is_empty());
        assert!(check(Level::None, &v2, &[v1]).is_empty());
    }

    #[test]
    fn transitive_levels_check_every_earlier_version() {
        let v1 = record(r#"{"name":"a","type":"string"}"#);
        let v2b = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":1}"#);
        let v3 = record(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#);
        assert!(check(Level::Backward, &v3, &[v1.clone(), v2b.clone()]).is_empty(), "v3 reads v2b");
        let problems = check(Level::BackwardTransitive, &v3, &[v1, v2b]);
        assert_eq!(problems.len(), 1, "v3 cannot read v1, which has no b: {problems:?}");
        assert!(problems[0].contains("version 1"));
    }
}

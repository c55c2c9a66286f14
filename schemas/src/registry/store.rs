//! The registry's PostgreSQL tables.

use apache_avro::Schema;
use sqlx::PgPool;

use super::RegistryError;
use crate::compatibility::{self, Level};

const GLOBAL: &str = "";

pub struct Store {
    pool: PgPool,
}

pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema: String,
}

impl Store {
    pub fn new(pool: PgPool) -> Store {
        Store { pool }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    pub async fn schema_by_id(&self, id: i32) -> Result<Option<String>, RegistryError> {
        Ok(sqlx::query_scalar!("SELECT schema FROM registry_schemas WHERE id = $1", id).fetch_optional(&self.pool).await?)
    }

    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        Ok(sqlx::query_scalar!("SELECT DISTINCT subject FROM registry_subject_versions ORDER BY subject").fetch_all(&self.pool).await?)
    }

    /// All versions of a subject, oldest first; an error when the subject does not exist.
    pub async fn versions(&self, subject: &str) -> Result<Vec<SubjectVersion>, RegistryError> {
        let rows = sqlx::query!(
            "SELECT v.version, v.schema_id, s.schema FROM registry_subject_versions v
             JOIN registry_schemas s ON s.id = v.schema_id WHERE v.subject = $1 ORDER BY v.version",
            subject,
        )
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(rows
            .into_iter()
            .map(|r| SubjectVersion { subject: subject.to_string(), version: r.version, id: r.schema_id, schema: r.schema })
            .collect())
    }

    pub async fn level(&self, subject: Option<&str>) -> Result<Option<Level>, RegistryError> {
        let name = sqlx::query_scalar!("SELECT compatibility FROM registry_config WHERE subject = $1", subject.unwrap_or(GLOBAL))
            .fetch_optional(&self.pool)
            .await?;
        Ok(name.and_then(|n| Level::parse(&n)))
    }

    /// The level that applies to a subject: its own, else the global one, else the default.
    pub async fn effective_level(&self, subject: &str) -> Result<Level, RegistryError> {
        Ok(match self.level(Some(subject)).await? {
            Some(level) => level,
            None => self.level(None).await?.unwrap_or(compatibility::DEFAULT_LEVEL),
        })
    }

    pub async fn set_level(&self, subject: Option<&str>, level: Level) -> Result<(), RegistryError> {
        sqlx::query!(
            "INSERT INTO registry_config (subject, compatibility) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
            subject.unwrap_or(GLOBAL),
            level.name(),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Registers `schema` under `subject` and returns its id. A schema the subject already
    /// has returns its existing id; an incompatible one is refused with the reasons.
    pub async fn register(&self, subject: &str, text: &str, schema: &Schema) -> Result<i32, RegistryError> {
        let canonical = schema.canonical_form();
        let mut tx = self.pool.begin().await?;
        // One registration per subject at a time, so versions stay 1..N and checks see all.
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('tidemark-registry:' || $1))", subject).execute(&mut *tx).await?;
        let existing = sqlx::query!(
            "SELECT v.version, s.id, s.schema, s.canonical FROM registry_subject_versions v
             JOIN registry_schemas s ON s.id = v.schema_id WHERE v.subject = $1 ORDER BY v.version",
            subject,
        )
        .fetch_all(&mut *tx)
        .await?;
        if let Some(row) = existing.iter().find(|r| r.canonical == canonical) {
            return Ok(row.id);
        }
        let history = existing
            .iter()
            .map(|r| Schema::parse_str(&r.schema))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RegistryError::Internal(format!("a stored schema no longer parses: {e}")))?;
        let level = self.effective_level(subject).await?;
        let problems = compatibility::check(level, schema, &history);
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible { subject: subject.to_string(), level, problems });
        }
        let id = sqlx::query_scalar!(
            "INSERT INTO registry_schemas (schema, canonical) VALUES ($1, $2)
             ON CONFLICT (canonical) DO UPDATE SET canonical = EXCLUDED.canonical RETURNING id",
            text,
            canonical,
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO registry_subject_versions (subject, version, schema_id) VALUES ($1, $2, $3)",
            subject,
            existing.len() as i32 + 1,
            id,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}

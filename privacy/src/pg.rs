//! The embedded default key store: one row per subject in PostgreSQL.

use sqlx::PgPool;

use crate::{Key, KeyError, KeyStore};

#[derive(Clone)]
pub struct PgKeyStore {
    pool: PgPool,
}

impl PgKeyStore {
    pub fn new(pool: PgPool) -> PgKeyStore {
        PgKeyStore { pool }
    }

    /// This crate's table. Crates share one migration history, so each ignores the others'.
    pub fn migrator() -> sqlx::migrate::Migrator {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator
    }
}

fn store(e: sqlx::Error) -> KeyError {
    KeyError::Store(e.to_string())
}

#[async_trait::async_trait]
impl KeyStore for PgKeyStore {
    async fn key_for_sealing(&self, tenant_id: &str, subject: &str) -> Result<Key, KeyError> {
        let key = Key::generate();
        sqlx::query!(
            "INSERT INTO personal_data_keys (tenant_id, subject, key) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            tenant_id,
            subject,
            key.as_bytes(),
        )
        .execute(&self.pool)
            .await
            .map_err(store)?;
        self.key_for_opening(tenant_id, subject).await?.ok_or_else(|| KeyError::Erased(subject.to_string()))
    }

    async fn key_for_opening(&self, tenant_id: &str, subject: &str) -> Result<Option<Key>, KeyError> {
        // No row: no key yet; a row without a key: erased.
        let key = sqlx::query_scalar!("SELECT key FROM personal_data_keys WHERE tenant_id = $1 AND subject = $2", tenant_id, subject)
            .fetch_optional(&self.pool)
            .await
            .map_err(store)?;
        key.flatten().map(|bytes| Key::from_bytes(&bytes).ok_or(KeyError::Store(format!("the key of {subject} is not 32 bytes")))).transpose()
    }

    async fn destroy(&self, tenant_id: &str, subject: &str) -> Result<(), KeyError> {
        // The row stays, keyless, so that no new key is ever made for an erased subject.
        sqlx::query!(
            "INSERT INTO personal_data_keys (tenant_id, subject, key, erased_at) VALUES ($1, $2, NULL, now())
             ON CONFLICT (tenant_id, subject) DO UPDATE SET key = NULL, erased_at = COALESCE(personal_data_keys.erased_at, now())",
            tenant_id,
            subject,
        )
        .execute(&self.pool)
        .await
        .map_err(store)?;
        // The old row version keeps the key bytes until a vacuum removes it.
        if let Err(e) = sqlx::query("VACUUM personal_data_keys").execute(&self.pool).await {
            tracing::warn!(error = %e, "could not vacuum personal_data_keys; a destroyed key stays on disk until autovacuum runs");
        }
        Ok(())
    }
}

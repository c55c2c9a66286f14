//! `tidemark-baseline`: the monolithic baseline's HTTP API, for the benchmarks.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sqlx::migrate::MigrateDatabase;
use tidemark_http::auth::Authenticator;
use tidemark_http::{Gate, Rate};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tidemark-baseline", about = "Tidemark's HTTP API as plain CRUD on PostgreSQL: the benchmarks' baseline")]
struct Args {
    #[arg(long, env = "BASELINE_DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/tidemark_baseline")]
    database_url: String,
    #[arg(long, env = "BASELINE_ADDR", default_value = "127.0.0.1:8090")]
    addr: std::net::SocketAddr,
    /// The same secret as Tidemark's, so that the load generator's tokens work on both.
    #[arg(long, env = "TIDEMARK_JWT_SECRET", default_value = "tidemark-local-development-secret", hide_default_value = true)]
    jwt_secret: String,
    #[arg(long, env = "TIDEMARK_RATE_PER_PRINCIPAL", default_value_t = 50)]
    rate_per_principal: u32,
    #[arg(long, env = "TIDEMARK_RATE_PER_TENANT", default_value_t = 500)]
    rate_per_tenant: u32,
    /// Connections to PostgreSQL.
    #[arg(long, default_value_t = 20)]
    pool_size: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TIDEMARK_LOG").unwrap_or_else(|_| "warn".into())).init();
    let args = Args::parse();
    if !sqlx::Postgres::database_exists(&args.database_url).await.with_context(|| format!("cannot reach PostgreSQL at {}", args.database_url))? {
        sqlx::Postgres::create_database(&args.database_url).await?;
    }
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(args.pool_size).connect(&args.database_url).await?;
    tidemark_baseline::migrator().run(&pool).await.context("migrating the baseline's database")?;
    let rate = |per_second: u32| Rate { per_second, burst: per_second.saturating_mul(2) };
    let gate = Arc::new(Gate::new(Authenticator::shared_secret(&args.jwt_secret), rate(args.rate_per_principal), rate(args.rate_per_tenant)));
    let listener = tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    eprintln!("baseline listening on http://{}", listener.local_addr()?);
    axum::serve(listener, tidemark_baseline::router(pool, gate)).await?;
    Ok(())
}

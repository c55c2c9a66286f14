//! `tidemark replay rebuild`: rebuilds a projection from the log beside the live one and
//! swaps it in (see `tidemark_projectors::rebuild`), showing progress and the speed reached.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;
use tidemark_projectors::rebuild::{CatchUp, Rebuild};
use tidemark_projectors::{Named, Projection};

use tidemark_history::Replayer;

pub async fn rebuild(replayer: &Replayer, pool: &PgPool, projection: &str, restart: bool, batch_size: Option<usize>) -> anyhow::Result<()> {
    struct Rebuilding<'a>(&'a Replayer, &'a PgPool, bool, Option<usize>);
    impl<'a> Named for Rebuilding<'a> {
        type Output = futures::future::BoxFuture<'a, anyhow::Result<()>>;
        fn run<P: Projection>(self) -> Self::Output {
            Box::pin(run::<P>(self.0, self.1, self.2, self.3))
        }
    }
    tidemark_projectors::with_named(projection, Rebuilding(replayer, pool, restart, batch_size)).map_err(anyhow::Error::msg)?.await
}

async fn run<P: Projection>(replayer: &Replayer, pool: &PgPool, restart: bool, batch_size: Option<usize>) -> anyhow::Result<()> {
    let (mut rebuild, start) = Rebuild::prepare::<P>(pool, &replayer.brokers, &replayer.topics, restart).await.context("preparing the rebuild")?;
    if let Some(size) = batch_size {
        rebuild.batch_size = size;
    }
    eprintln!(
        "rebuild {}: {} into schema {}; {} records to apply",
        P::NAME,
        if start.resumed { "resuming an interrupted rebuild" } else { "building new tables" },
        rebuild.schema,
        start.remaining
    );
    // Ctrl-C finishes the batch at hand and stops; the next run resumes from there.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    let bar = ProgressBar::new(start.remaining as u64).with_style(
        ProgressStyle::with_template("{spinner} {wide_bar} {pos}/{len} records, {per_sec}, eta {eta}").expect("a valid template"),
    );
    let began = Instant::now();
    let mut applied = CatchUp::default();
    let mut switched = false;
    while !interrupted.load(Ordering::SeqCst) {
        let done = rebuild
            .catch_up::<P>(&replayer.brokers, &replayer.codec, &replayer.topics, |count| {
                bar.inc(count as u64);
                if interrupted.load(Ordering::SeqCst) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })
            .await?;
        applied.records += done.records;
        applied.reading += done.reading;
        applied.writing += done.writing;
        // The live projector keeps going meanwhile; when it got ahead, catch up once more.
        let ahead = rebuild.switch_over::<P>().await?;
        if ahead.is_empty() {
            switched = true;
            break;
        }
    }
    ctrl_c.abort();
    bar.finish_and_clear();
    let seconds = began.elapsed().as_secs_f64();
    eprintln!(
        "rebuild {}: {} records applied in {:.2} s ({:.0} events/s; reading and decoding {:.1} s, writing {:.1} s); {}",
        P::NAME,
        applied.records,
        seconds,
        applied.records as f64 / seconds.max(0.001),
        applied.reading.as_secs_f64(),
        applied.writing.as_secs_f64(),
        if switched { "switched over: the rebuilt tables are live".to_string() } else { format!("interrupted; run it again to resume from schema {}", rebuild.schema) }
    );
    Ok(())
}

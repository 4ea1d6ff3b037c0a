//! The heal pass: every bucket and every object, checked and rebuilt where some
//! drive lacks it (a node that was down while it was written, a replaced drive).
//! Run by a node after it joins a running cluster, and on demand (`basalt admin
//! heal`). One object at a time, so it never crowds out client requests.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::{ListOptions, ObjectLayer};
use crate::drive::DriveOp;
use crate::error::Result;
use crate::runtime::CoreCtx;

/// How long a node that just started waits for write quorum before its heal pass
/// gives up (the pass can be run again with `basalt admin heal`).
const START_PASS_WAIT: Duration = Duration::from_secs(60);

/// What a heal pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealSummary {
    pub buckets: usize,
    pub objects_scanned: usize,
    /// Objects rewritten on at least one drive.
    pub objects_healed: usize,
    /// Shards (object x drive) rewritten.
    pub shards_healed: usize,
    /// Objects that could not be healed (too few good shards, drives offline).
    pub objects_failed: usize,
    pub errors: Vec<String>,
}

/// Errors kept in a summary; more are only counted.
const SUMMARY_ERRORS_MAX: usize = 20;

impl ObjectLayer {
    /// Heals every bucket on every drive and every object of every bucket.
    pub async fn heal_all(&self) -> Result<HealSummary> {
        let mut summary = HealSummary::default();
        for bucket in self.list_buckets().await? {
            summary.buckets += 1;
            let op = DriveOp::HealVolume { volume: bucket.name.clone(), created_ns: bucket.created_ns };
            join_all(self.sets.iter().flat_map(|s| s.drives.iter()).map(|d| d.call(op.clone()))).await;
            let mut options = ListOptions { max_keys: 1000, ..Default::default() };
            loop {
                let page = self.list_objects(&bucket.name, &options).await?;
                for o in &page.objects {
                    summary.objects_scanned += 1;
                    match self.heal_object(&bucket.name, &o.key).await {
                        Ok(r) => {
                            if !r.healed.is_empty() {
                                summary.objects_healed += 1;
                                summary.shards_healed += r.healed.len();
                            }
                            if !r.failed.is_empty() {
                                summary.objects_failed += 1;
                            }
                        }
                        Err(e) => {
                            summary.objects_failed += 1;
                            if summary.errors.len() < SUMMARY_ERRORS_MAX {
                                summary.errors.push(format!("{}/{}: {e}", bucket.name, o.key));
                            }
                        }
                    }
                }
                match (page.is_truncated, page.next_marker) {
                    (true, Some(m)) => options.start_after = m,
                    _ => break,
                }
            }
        }
        Ok(summary)
    }
}

/// The pass a cluster node runs once it has joined: whatever was written while
/// it was away is rebuilt onto its drives.
pub async fn heal_pass_after_start(ctx: Rc<CoreCtx>) {
    let objects = ctx.objects.clone();
    let waited = std::time::Instant::now();
    while !objects.has_quorum(true) {
        if waited.elapsed() > START_PASS_WAIT {
            tracing::warn!("no write quorum after start; skipping the heal pass (run `basalt admin heal` later)");
            return;
        }
        glommio::timer::sleep(Duration::from_secs(1)).await;
    }
    match objects.heal_all().await {
        Ok(s) if s.shards_healed > 0 || s.objects_failed > 0 => tracing::info!(
            objects = s.objects_scanned,
            healed = s.objects_healed,
            shards = s.shards_healed,
            failed = s.objects_failed,
            "heal pass after start finished"
        ),
        Ok(s) => tracing::debug!(objects = s.objects_scanned, "heal pass after start: nothing to heal"),
        Err(e) => tracing::warn!(error = %e, "heal pass after start failed"),
    }
}

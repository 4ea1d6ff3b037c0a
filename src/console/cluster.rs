//! The cluster page's data: nodes, erasure sets, drives (online, free space),
//! quorum state and version, as one JSON document built by [`snapshot`].
//!
//! Everything the page shows about the deployment comes from this one function,
//! so a new kind of drive or node (remote drives of a cluster) is added here and
//! nowhere else in the console.

use std::rc::Rc;

use futures_util::future::join_all;
use serde::Serialize;

use super::Console;
use crate::drive::{DriveError, DriveOp, DriveReply};
use crate::runtime::CoreCtx;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub version: &'static str,
    pub deployment_id: String,
    pub uptime_secs: u64,
    /// Seconds since the Unix epoch when this snapshot was taken.
    pub taken_at: i64,
    pub nodes: Vec<Node>,
    pub sets: Vec<Set>,
    pub drives_online: usize,
    pub drives_total: usize,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Every set can serve reads (read quorum of its drives online).
    pub can_read: bool,
    /// Every set can accept writes.
    pub can_write: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub endpoint: String,
    pub online: bool,
    pub drives_online: usize,
    pub drives_total: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Set {
    pub index: usize,
    pub data: usize,
    pub parity: usize,
    pub read_quorum: usize,
    pub write_quorum: usize,
    pub drives_online: usize,
    /// `ok` (every drive online), `degraded` (writes still reach quorum),
    /// `read-only` (reads only) or `unavailable`.
    pub status: &'static str,
    pub drives: Vec<Drive>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    pub index: usize,
    pub endpoint: String,
    pub node: String,
    pub online: bool,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Why the drive is not online, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Asks every drive of every set for its state and space, in parallel.
pub async fn snapshot(ctx: &Rc<CoreCtx>, console: &Console) -> Snapshot {
    let layout = ctx.objects.layout();
    let node = console.settings.endpoint.clone();
    let mut sets = Vec::with_capacity(layout.sets.len());
    for (index, members) in layout.sets.iter().enumerate() {
        let handles: Vec<_> = members.iter().map(|&i| ctx.core.drive_handle(i)).collect();
        let infos = join_all(handles.iter().map(|h| h.call(DriveOp::DiskInfo))).await;
        let drives: Vec<Drive> = members
            .iter()
            .zip(infos)
            .map(|(&i, info)| {
                let endpoint = console.settings.drives.get(i).cloned().unwrap_or_else(|| format!("drive {i}"));
                let mut d = Drive {
                    index: i,
                    endpoint,
                    node: node.clone(),
                    online: false,
                    total_bytes: 0,
                    free_bytes: 0,
                    error: None,
                };
                match info {
                    Ok(DriveReply::Info(info)) => {
                        d.online = true;
                        d.total_bytes = info.total_bytes;
                        d.free_bytes = info.free_bytes;
                    }
                    Ok(other) => d.error = Some(format!("unexpected answer {other:?}")),
                    Err(DriveError::Offline) => d.error = Some("offline".into()),
                    Err(e) => d.error = Some(e.to_string()),
                }
                d
            })
            .collect();
        let online = drives.iter().filter(|d| d.online).count();
        let (read_quorum, write_quorum) = (layout.read_quorum(), layout.write_quorum());
        let status = if online == drives.len() {
            "ok"
        } else if online >= write_quorum {
            "degraded"
        } else if online >= read_quorum {
            "read-only"
        } else {
            "unavailable"
        };
        sets.push(Set {
            index,
            data: layout.data,
            parity: layout.parity,
            read_quorum,
            write_quorum,
            drives_online: online,
            status,
            drives,
        });
    }
    let all = || sets.iter().flat_map(|s| s.drives.iter());
    let drives_online = all().filter(|d| d.online).count();
    let drives_total = all().count();
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        deployment_id: console.deployment_id.clone(),
        uptime_secs: console.started.elapsed().as_secs(),
        taken_at: crate::http::date::now_secs(),
        // One node until the cluster arrives: this one, answering.
        nodes: vec![Node { endpoint: node, online: true, drives_online, drives_total }],
        drives_online,
        drives_total,
        total_bytes: all().map(|d| d.total_bytes).sum(),
        free_bytes: all().map(|d| d.free_bytes).sum(),
        can_read: sets.iter().all(|s| s.drives_online >= s.read_quorum),
        can_write: sets.iter().all(|s| s.drives_online >= s.write_quorum),
        sets,
    }
}
